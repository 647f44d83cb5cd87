"""Exponential moving average of the sampled network (torch.optim.swa_utils.AveragedModel).

With ``rampup`` the half-life grows with training: at most rampup x the images seen so far
(Karras et al. 2020, StyleGAN2-ADA's ``ema_rampup``; R3GAN ramps its half-life from 0 as well), so that
the early, fast-changing generator is not averaged over a long past."""

from __future__ import annotations

import itertools

import torch
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


def ramped_decay(cfg: EMAConfig, batch_size: int, images_seen: int) -> float:
    """Per-step decay with the half-life min(halflife_kimg * 1000, rampup * images_seen) images."""
    halflife = min(cfg.halflife_kimg * 1000, cfg.rampup * images_seen)
    return 0.5 ** (batch_size / max(halflife, 1e-8))


def make_ema(net: nn.Module, cfg: EMAConfig, batch_size: int) -> AveragedModel | None:
    decay = ema_decay(cfg, batch_size)
    if decay is None:
        return None
    ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    ema.requires_grad_(False)
    if cfg.rampup is not None:   # the decay of each update is computed from the images seen (update_ema)
        ema.ramp = lambda images_seen: ramped_decay(cfg, batch_size, images_seen)
    return ema


def update_ema(ema: AveragedModel, net: nn.Module, images_seen: int = 0) -> None:
    """``ema.update_parameters(net)``, the same arithmetic, without its per-step host-device traffic.

    AveragedModel keeps its step counter on the CPU and copies it to the GPU at every update (a
    host wait per step); the EMA rule ignores the counter, so it is read only on the host here.
    """
    pairs = list(zip(itertools.chain(ema.module.parameters(), ema.module.buffers()),
                     itertools.chain(net.parameters(), net.buffers()), strict=True))
    if int(ema.n_averaged) == 0:   # a CPU buffer: no device wait
        for p_ema, p in pairs:
            p_ema.detach().copy_(p.detach())
    else:
        groups: dict = {}
        for p_ema, p in pairs:
            a, b = groups.setdefault((p_ema.device, p_ema.dtype), ([], []))
            a.append(p_ema.detach())
            b.append(p.detach().to(p_ema.device))
        ramp = getattr(ema, "ramp", None)
        for a, b in groups.values():
            if ramp is None:
                ema.multi_avg_fn(a, b, ema.n_averaged)
            elif a[0].is_floating_point():   # get_ema_multi_avg_fn's arithmetic with this step's decay
                torch._foreach_lerp_(a, b, 1 - ramp(images_seen))
            else:
                decay = ramp(images_seen)
                for p_ema, p in zip(a, b, strict=True):
                    p_ema.copy_(p_ema * decay + p * (1 - decay))
    ema.n_averaged += 1
