"""Exponential moving average of the sampled network (torch.optim.swa_utils.AveragedModel)."""

from __future__ import annotations

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from genbench.config import EMAConfig


def ema_decay(cfg: EMAConfig, batch_size: int) -> float | None:
    """Per-step decay; a half-life of H kimg means the weight of a step halves every H*1000 images
    (Karras et al. 2022, App. F.3: beta = 0.5 ** (batch / (halflife_kimg * 1000)))."""
    if cfg.decay is not None:
        return cfg.decay
    if cfg.halflife_kimg is not None:
        return 0.5 ** (batch_size / (cfg.halflife_kimg * 1000))
    return None


def make_ema(net: nn.Module, cfg: EMAConfig, batch_size: int) -> AveragedModel | None:
    decay = ema_decay(cfg, batch_size)
    if decay is None:
        return None
    ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    ema.requires_grad_(False)
    return ema
