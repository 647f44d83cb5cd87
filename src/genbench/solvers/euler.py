"""Euler's method for the probability-flow ODE dx/dt = u(x, t), integrated from t=1 to t=0."""

from __future__ import annotations

import torch
from torch import Tensor

from genbench.solvers.base import SolverResult, Velocity, full_t


@torch.inference_mode()
def sample_euler(velocity: Velocity, x: Tensor, ts: Tensor) -> SolverResult:
    """x_{k+1} = x_k + (t_{k+1} - t_k) u(x_k, t_k) over the grid ``ts`` (descending)."""
    t = ts.tolist()
    for k in range(len(t) - 1):
        x = x + (t[k + 1] - t[k]) * velocity(x, full_t(x, t[k]))
    return SolverResult(x, len(t) - 1)
