"""The time-conditioned UNet of Ho et al. 2020 (DDPM, Appendix B), optionally class-conditioned.

With the CIFAR-10 settings (``UNetConfig()``: ch=128, ch_mult 1,2,2,2, two residual blocks per
level, attention at 16x16, dropout 0.1) it has 35,746,307 parameters, the 35.7M of the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genbench.config import UNetConfig
from genbench.errors import GenbenchError
from genbench.nets.embedding import IntervalEmbedding, as_time, refuse_second_time, timestep_embedding
from genbench.nets.shapes import image_shape
from genbench.nets.unet_blocks import Downsample, ResAttn, Upsample, group_norm, init_xavier, zero_


def _check(cfg: UNetConfig, h: int, w: int) -> list[int]:
    """Refuse configurations the UNet cannot be built for; return the resolution of each level."""
    levels = len(cfg.ch_mult)
    if levels == 0 or min(cfg.ch_mult) < 1:
        raise GenbenchError(
            f"unet ch_mult must be a non-empty list of positive ints, got {cfg.ch_mult}",
            "use e.g. ch_mult=[1,2,2]",
        )
    factor = 2 ** (levels - 1)
    if h % factor or w % factor:
        raise GenbenchError(
            f"unet with {levels} levels (ch_mult={cfg.ch_mult}) halves the image {levels - 1} times, "
            f"so {h}x{w} must be divisible by {factor}",
            f"use fewer levels (e.g. ch_mult=[1,2,2] for 28x28) or an image size divisible by {factor}",
        )
    widths = sorted({cfg.ch * m for m in [1, *cfg.ch_mult]})
    bad = [wd for wd in widths if wd % cfg.groups]
    if bad:
        raise GenbenchError(
            f"unet groups={cfg.groups} does not divide the channel counts {bad} (ch={cfg.ch}, ch_mult={cfg.ch_mult})",
            "choose groups that divides ch * every ch_mult, e.g. a power of two no larger than ch",
        )
    resolutions = [h // 2**i for i in range(levels)]
    missing = [r for r in cfg.attn_resolutions if r not in resolutions]
    if missing:
        raise GenbenchError(
            f"unet attn_resolutions {missing} match no level of a {h}x{w} image (levels: {resolutions})",
            f"pick attn_resolutions from {resolutions}, or [] for no attention",
        )
    attn_widths = [
        cfg.ch * m for m, r in zip(cfg.ch_mult, resolutions, strict=True) if r in cfg.attn_resolutions
    ]
    attn_widths.append(cfg.ch * cfg.ch_mult[-1])  # the middle block always attends
    bad = sorted({wd for wd in attn_widths if wd % cfg.num_heads})
    if bad:
        raise GenbenchError(
            f"unet num_heads={cfg.num_heads} does not divide the attention widths {bad}",
            "choose num_heads that divides ch * ch_mult at the attention levels",
        )
    return resolutions


class UNet(nn.Module):
    """``forward(x, t, y=None, r=None)``: x of the data shape, t of shape (N,) in [0, 1] -> output of x's
    shape; with ``second_time`` also r (MeanFlow's u(z, r, t), :class:`IntervalEmbedding`).

    Layout (Ho et al. 2020, Appendix B): conv_in; per level ``num_res_blocks`` residual blocks
    (self-attention after each at ``attn_resolutions``) and a stride-2 downsampling conv between
    levels; a middle res-attn-res; an up path of ``num_res_blocks + 1`` blocks per level that each
    take one concatenated skip, with nearest upsampling + conv between levels; GroupNorm, SiLU,
    conv_out. ``num_classes`` adds a learned class embedding to the time embedding; its extra last
    row is a "no label" token used when ``y`` is None, so the same net serves classifier-free
    guidance. An unconditional net ignores ``y``.
    """

    def __init__(self, cfg: UNetConfig, data_shape: tuple[int, ...], num_classes: int | None = None):
        super().__init__()
        c_img, h, w = image_shape(data_shape, "unet")
        resolutions = _check(cfg, h, w)
        ch, nrb, groups, heads = cfg.ch, cfg.num_res_blocks, cfg.groups, cfg.num_heads
        self.ch = ch
        t_dim = 4 * ch
        self.time_mlp = nn.Sequential(nn.Linear(ch, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        init_xavier(self.time_mlp)
        self.num_classes = num_classes
        self.class_emb = nn.Embedding(num_classes + 1, t_dim) if num_classes else None

        self.conv_in = nn.Conv2d(c_img, ch, 3, padding=1)
        init_xavier(self.conv_in)

        def block(c_in: int, c_out: int, res: int) -> ResAttn:
            return ResAttn(c_in, c_out, t_dim, groups, cfg.dropout, res in cfg.attn_resolutions, heads)

        # Down path; skip_widths records the width of every tensor the up path will concatenate.
        self.down = nn.ModuleList()
        skip_widths, width = [ch], ch
        for i, (mult, res) in enumerate(zip(cfg.ch_mult, resolutions, strict=True)):
            level = nn.Module()
            level.blocks = nn.ModuleList()
            for _ in range(nrb):
                level.blocks.append(block(width, ch * mult, res))
                width = ch * mult
                skip_widths.append(width)
            level.down = Downsample(width) if i < len(resolutions) - 1 else nn.Identity()
            if i < len(resolutions) - 1:
                skip_widths.append(width)
            self.down.append(level)

        self.mid = nn.ModuleList(
            [
                ResAttn(width, width, t_dim, groups, cfg.dropout, True, heads),
                ResAttn(width, width, t_dim, groups, cfg.dropout, False, heads),
            ]
        )

        self.up = nn.ModuleList()
        for i in reversed(range(len(resolutions))):
            mult, res = cfg.ch_mult[i], resolutions[i]
            level = nn.Module()
            level.blocks = nn.ModuleList()
            for _ in range(nrb + 1):
                level.blocks.append(block(width + skip_widths.pop(), ch * mult, res))
                width = ch * mult
            level.up = Upsample(width) if i > 0 else nn.Identity()
            self.up.append(level)
        assert not skip_widths

        self.norm_out = group_norm(width, groups)
        # Zero-initialised like the DDPM code, so the untrained net outputs exactly 0.
        self.conv_out = zero_(nn.Conv2d(width, c_img, 3, padding=1))
        self.time_scale = cfg.time_scale
        # built last, so that the one-time net's initialisation is the same with or without it
        self.interval = IntervalEmbedding(ch, t_dim, cfg.time_scale) if cfg.second_time else None

    def forward(
        self, x: torch.Tensor, t: torch.Tensor | float | None = None, y: torch.Tensor | None = None,
        r: torch.Tensor | float | None = None,
    ) -> torch.Tensor:
        n = x.shape[0]
        t = as_time(t, n, x.device)
        temb = self.time_mlp(timestep_embedding(t, self.ch, self.time_scale).to(self.time_mlp[0].weight.dtype))
        if self.interval is not None:
            temb = temb + self.interval(t, r)
        else:
            refuse_second_time(r)
        if self.class_emb is not None:
            labels = y if y is not None else torch.full((n,), self.num_classes, device=x.device)
            temb = temb + self.class_emb(labels)

        h = self.conv_in(x)
        skips = [h]
        for level in self.down:
            for blk in level.blocks:
                h = blk(h, temb)
                skips.append(h)
            if not isinstance(level.down, nn.Identity):
                h = level.down(h)
                skips.append(h)
        for blk in self.mid:
            h = blk(h, temb)
        for level in self.up:
            for blk in level.blocks:
                h = blk(torch.cat([h, skips.pop()], dim=1), temb)
            h = level.up(h)
        return self.conv_out(F.silu(self.norm_out(h)))
