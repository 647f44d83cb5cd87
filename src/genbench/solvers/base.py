"""Types shared by the solvers."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from torch import Tensor

# denoise(x_t, t) -> (x0_hat, eps_hat); velocity(x_t, t) -> dx_t/dt; t has shape (N,)
Denoiser = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
Velocity = Callable[[Tensor, Tensor], Tensor]
NoiseFn = Callable[[Tensor], Tensor]  # randn_like


class SolverResult(NamedTuple):
    x: Tensor
    nfe: int  # network evaluations actually made


def full_t(x: Tensor, t: float | Tensor) -> Tensor:
    """Time as a (N,) tensor on x's device."""
    import torch

    return torch.full((x.shape[0],), float(t), device=x.device, dtype=torch.float32)
