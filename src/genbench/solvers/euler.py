"""Euler's method for the probability-flow ODE dx/dt = u(x, t), integrated from t=1 to t=0."""

from __future__ import annotations

import torch
from torch import Tensor

from genbench.solvers.base import SolverResult, Velocity
from genbench.solvers.rk import EULER, integrate


@torch.inference_mode()
def sample_euler(velocity: Velocity, x: Tensor, ts: Tensor) -> SolverResult:
    """x_{k+1} = x_k + (t_{k+1} - t_k) u(x_k, t_k) over the grid ``ts`` (descending). NFE = N."""
    return integrate(velocity, x, ts, EULER)
