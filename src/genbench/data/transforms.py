"""Pixel conversions and augmentation: the ONE place where normalisation happens.

Images are stored as uint8 and mapped to ``[-1, 1]`` only when a batch is drawn, with
``x / 127.5 - 1``, i.e. ``Normalize(mean=0.5, std=0.5)`` applied to ``ToTensor()`` output
as in the study (and DCGAN, Radford et al. 2016; DDPM, Ho et al. 2020).
"""

from __future__ import annotations

import torch
from torch import Tensor


def to_model_range(x: Tensor) -> Tensor:
    """uint8 in ``[0, 255]`` -> float32 in ``[-1, 1]`` (0 -> -1, 255 -> 1)."""
    if x.dtype != torch.uint8:
        raise TypeError(f"to_model_range expects uint8 pixels, got {x.dtype}")
    return x.to(torch.float32) / 127.5 - 1.0


def to_uint8(x: Tensor) -> Tensor:
    """float in ``[-1, 1]`` -> uint8; values outside are clamped, then rounded to the nearest level."""
    # clamp before scaling so that NaN-free out-of-range samples saturate instead of wrapping
    return ((x.detach().float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)


def hflip_mask(n: int, generator: torch.Generator) -> Tensor:
    """Which of ``n`` items to flip: each independently with probability 1/2 (bool, on CPU)."""
    return torch.rand(n, generator=generator, device=generator.device).cpu() < 0.5


def random_hflip(x: Tensor, generator: torch.Generator) -> Tensor:
    """Flip a random half (in expectation) of a batch ``N x ... x W`` along the width, vectorised."""
    mask = hflip_mask(x.shape[0], generator).to(x.device)
    mask = mask.view(-1, *([1] * (x.dim() - 1)))
    return torch.where(mask, x.flip(-1), x)
