"""Differentiable per-sample image operations shared by DiffAugment and ADA.

Every function maps images (N, C, H, W) and per-sample parameters to images of the same shape, and
is differentiable with respect to the images (gathers, products and bilinear weights), so that G's
gradient passes through the augmentation (Zhao et al. 2020, Sec. 3; Karras et al. 2020, Sec. 2).
``choose`` keeps a sample's input exactly where its operation was not drawn, so that p = 0 is the
identity bit for bit.
"""

from __future__ import annotations

import torch
from torch import Tensor


def choose(selected: Tensor, changed: Tensor, x: Tensor) -> Tensor:
    """``changed`` where ``selected`` (N,) is True, else exactly ``x``."""
    return torch.where(selected.view(-1, *([1] * (x.dim() - 1))), changed, x)


def reflect_index(i: Tensor, size: int) -> Tensor:
    """Mirror indices into 0..size-1 without repeating the edge (numpy's 'reflect' padding)."""
    if size == 1:
        return torch.zeros_like(i)
    period = 2 * (size - 1)
    i = i.abs() % period
    return torch.where(i >= size, period - i, i)


def gather_pixels(x: Tensor, iy: Tensor, ix: Tensor, inside: Tensor | None = None) -> Tensor:
    """out[n, c, y, x] = x[n, c, iy[n, y, x], ix[n, y, x]] (0 where ``inside`` is False)."""
    n, c, h, w = x.shape
    flat = (iy * w + ix).view(n, 1, h * w).expand(n, c, h * w)
    out = x.reshape(n, c, h * w).gather(2, flat).view(n, c, h, w)
    return out if inside is None else out * inside.view(n, 1, h, w).to(out.dtype)


def pixel_grid(x: Tensor) -> tuple[Tensor, Tensor]:
    """Row and column index of every output pixel, (N, H, W) each."""
    n, _, h, w = x.shape
    iy = torch.arange(h, device=x.device).view(1, h, 1).expand(n, h, w)
    ix = torch.arange(w, device=x.device).view(1, 1, w).expand(n, h, w)
    return iy, ix


def translate(x: Tensor, ty: Tensor, tx: Tensor, pad: str = "zeros") -> Tensor:
    """Shift image n by (ty[n], tx[n]) whole pixels; uncovered pixels are 0 (``zeros``, DiffAugment)
    or mirrored (``reflect``, ADA's padding, which hides the border from D)."""
    iy, ix = pixel_grid(x)
    iy, ix = iy - ty.view(-1, 1, 1), ix - tx.view(-1, 1, 1)
    h, w = x.shape[2:]
    if pad == "reflect":
        return gather_pixels(x, reflect_index(iy, h), reflect_index(ix, w))
    inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    return gather_pixels(x, iy.clamp(0, h - 1), ix.clamp(0, w - 1), inside)


def cutout(x: Tensor, cy: Tensor, cx: Tensor, size: int) -> Tensor:
    """Zero a size x size square centred at (cy[n], cx[n]) (DeVries & Taylor 2017; clipped at the border)."""
    iy, ix = pixel_grid(x)
    lo_y, lo_x = (cy - size // 2).view(-1, 1, 1), (cx - size // 2).view(-1, 1, 1)
    inside = (iy >= lo_y) & (iy < lo_y + size) & (ix >= lo_x) & (ix < lo_x + size)
    return x * (~inside).view(x.shape[0], 1, *x.shape[2:]).to(x.dtype)


def flip_rotate(x: Tensor, flip: Tensor, quarter_turns: Tensor) -> Tensor:
    """Mirror left-right where ``flip``, then rotate by ``quarter_turns`` x 90 degrees (square images)."""
    iy, ix = pixel_grid(x)
    w = x.shape[3]
    for turn in range(3):   # the source of output (y, x) under one quarter turn is (x, W-1-y)
        more = (quarter_turns > turn).view(-1, 1, 1)
        iy, ix = torch.where(more, ix, iy), torch.where(more, w - 1 - iy, ix)
    ix = torch.where(flip.view(-1, 1, 1), w - 1 - ix, ix)
    return gather_pixels(x, iy, ix)


def _reflect_coord(u: Tensor, size: int) -> Tensor:
    """Mirror continuous pixel coordinates at the image border (-0.5 and size - 0.5), then clip."""
    u = torch.remainder(u + 0.5, 2 * size)
    u = torch.where(u > size, 2 * size - u, u) - 0.5
    return u.clamp(0, size - 1)


def warp(x: Tensor, forward: Tensor) -> Tensor:
    """Apply per-sample 3x3 affine maps (N, 3, 3) of normalised coordinates ([-1, 1] across the image)
    by bilinear resampling with reflected borders (``grid_sample``'s rule with align_corners=False).

    Written as gathers and products, linear in x with weights that do not depend on x, so that it is
    differentiable to any order: R1 through the augmentation needs the gradient of a gradient, which
    ``grid_sample``'s backward does not provide (StyleGAN2-ADA patches it for the same reason)."""
    n, _, h, w = x.shape
    inverse = torch.linalg.inv(forward.float())                          # output -> input
    gy, gx = pixel_grid(x)
    pts = torch.stack([(2 * gx + 1) / w - 1, (2 * gy + 1) / h - 1, torch.ones_like(gx, dtype=torch.float32)], -1)
    src = torch.einsum("nij,nhwj->nhwi", inverse, pts.float())
    u = _reflect_coord(((src[..., 0] + 1) * w - 1) / 2, w)
    v = _reflect_coord(((src[..., 1] + 1) * h - 1) / 2, h)
    u0, v0 = u.floor().long(), v.floor().long()
    u1, v1 = (u0 + 1).clamp(max=w - 1), (v0 + 1).clamp(max=h - 1)
    fu, fv = (u - u0).unsqueeze(1).to(x.dtype), (v - v0).unsqueeze(1).to(x.dtype)
    top = gather_pixels(x, v0, u0) * (1 - fu) + gather_pixels(x, v0, u1) * fu
    bottom = gather_pixels(x, v1, u0) * (1 - fu) + gather_pixels(x, v1, u1) * fu
    return top * (1 - fv) + bottom * fv


def colour_transform(x: Tensor, matrix: Tensor) -> Tensor:
    """x' = M[:C, :C] x + M[:C, C] per pixel, with M (N, C+1, C+1) a homogeneous colour map."""
    c = x.shape[1]
    lin, shift = matrix[:, :c, :c].to(x.dtype), matrix[:, :c, c].to(x.dtype)
    return torch.einsum("nij,njhw->nihw", lin, x) + shift.view(-1, c, 1, 1)
