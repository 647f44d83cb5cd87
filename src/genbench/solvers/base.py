"""Types and small helpers shared by the solvers."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

# denoise(x_t, t) -> (x0_hat, eps_hat); velocity(x_t, t) -> dx_t/dt; t has shape (N,)
Denoiser = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
Velocity = Callable[[Tensor, Tensor], Tensor]
NoiseFn = Callable[[Tensor], Tensor]  # randn_like


class SolverResult(NamedTuple):
    x: Tensor
    nfe: int  # network evaluations actually made


def full_t(x: Tensor, t: float | Tensor) -> Tensor:
    """Time as a (N,) tensor on x's device: float32 (what networks take), float64 for float64 x."""
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    return torch.full((x.shape[0],), float(t), device=x.device, dtype=dtype)


def need_noise(noise: NoiseFn | None, who: str) -> NoiseFn:
    """Stochastic samplers take their noise explicitly, so that per-sample streams can be used."""
    if noise is None:
        raise ValueError(f"{who} needs a noise function noise(x) -> randn_like(x)")
    return noise
