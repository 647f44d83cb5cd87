"""Peer models for the benchmarks, built with the peers' public APIs at a matched parameter count.

* diffusers' ``UNet2DModel`` laid out as genbench's UNet (Ho et al. 2020): the same widths per
  level, residual blocks per level, attention resolutions, GroupNorm groups and one attention
  head, which gives exactly genbench's parameter count (627,433 for fmnist, 35,746,307 for the
  CIFAR-10 model).
* lucidrains' ``Unet`` (denoising-diffusion-pytorch) with its own block design (RMSNorm, linear
  attention on the outer levels, full attention inside) and genbench's ``ch_mult``; its base width
  ``dim`` is the even number whose parameter count is closest to genbench's (fmnist: dim 20,
  599,089, -4.5%; CIFAR-10: dim 144, 35,969,475, +0.6%).

Imported by ``throughput.py`` and ``quality_budget.py`` (run as scripts from this folder).
"""

from __future__ import annotations

import torch
from torch import nn

from genbench.nets import count_params


def diffusers_unet(net_cfg, shape: tuple[int, ...]) -> nn.Module:
    from diffusers import UNet2DModel

    c, h, _ = shape
    widths = [net_cfg.ch * m for m in net_cfg.ch_mult]
    attn = [h // 2**i in net_cfg.attn_resolutions for i in range(len(widths))]
    return UNet2DModel(
        sample_size=h, in_channels=c, out_channels=c, block_out_channels=tuple(widths),
        layers_per_block=net_cfg.num_res_blocks, norm_num_groups=net_cfg.groups, dropout=net_cfg.dropout,
        attention_head_dim=None,   # one head of the full width, as genbench's num_heads=1
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn),
        up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)))


def lucidrains_unet(net_cfg, shape: tuple[int, ...], target: int) -> tuple[nn.Module, int]:
    """lucidrains' Unet with the even base width ``dim`` whose parameter count is closest to ``target``."""
    from denoising_diffusion_pytorch import Unet

    def build(dim: int, device: str = "meta") -> nn.Module:
        with torch.device(device):   # on "meta" nothing is allocated: counting is instant
            return Unet(dim=dim, dim_mults=tuple(net_cfg.ch_mult), channels=shape[0], dropout=net_cfg.dropout)

    # dim must be even (its sinusoidal time embedding has 2 * (dim // 2) features)
    lo, hi = 2, 4 * net_cfg.ch
    while lo < hi:   # smallest dim/2 with at least target parameters (the count grows with dim)
        mid = (lo + hi) // 2
        if count_params(build(2 * mid)) >= target:
            hi = mid
        else:
            lo = mid + 1
    best = min((2 * k for k in (lo - 1, lo) if k >= 2), key=lambda d: abs(count_params(build(d)) - target))
    return build(best, "cpu"), best


class DiffusersVelocity(nn.Module):
    """A diffusers UNet2DModel as a velocity field ``v(t, x)`` with t in [0, 1] (torchcfm's and
    torchdiffeq's argument order); the time embedding sees 1000 t, as genbench's UNet does."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        t = t.expand(x.shape[0]) if t.dim() == 0 else t
        return self.unet(x, t * 1000).sample
