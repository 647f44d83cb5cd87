"""Explicit Runge–Kutta methods for the probability-flow ODE dx/dt = u(x, t) in t-space.

One stepping routine, driven by a Butcher tableau (Hairer, Nørsett & Wanner 1993, Sec. II.1),
serves Euler (order 1), the explicit midpoint rule and Heun's method (order 2) and classical RK4
(order 4). ``velocity`` is
a flow model's velocity or :func:`genbench.solvers.ode.pf_velocity` of a denoiser, so the same
solvers run on every family; grids run from t_max down to 0 (see :mod:`genbench.solvers.grids`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from genbench.solvers.base import SolverResult, Velocity, full_t


class Tableau(NamedTuple):
    c: tuple[float, ...]               # stage times, as fractions of the step
    a: tuple[tuple[float, ...], ...]   # a[i][j]: weight of stage j in the input of stage i (j < i)
    b: tuple[float, ...]               # weights of the stages in the update


EULER = Tableau((0.0,), ((),), (1.0,))
MIDPOINT = Tableau((0.0, 0.5), ((), (0.5,)), (0.0, 1.0))
HEUN = Tableau((0.0, 1.0), ((), (1.0,)), (0.5, 0.5))
RK4 = Tableau((0.0, 0.5, 0.5, 1.0), ((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)), (1 / 6, 1 / 3, 1 / 3, 1 / 6))


def _combine(x: Tensor, h: float, weights: tuple[float, ...], ks: list[Tensor]) -> Tensor:
    for w, k in zip(weights, ks, strict=False):
        if w:
            x = x + (h * w) * k
    return x


def rk_step(velocity: Velocity, x: Tensor, t: float, t_next: float, tab: Tableau) -> Tensor:
    """One step of the tableau from t to t_next (h < 0 when integrating towards the data)."""
    h = t_next - t
    ks: list[Tensor] = []
    for c, a in zip(tab.c, tab.a, strict=True):
        ks.append(velocity(_combine(x, h, a, ks), full_t(x, t + c * h)))
    return _combine(x, h, tab.b, ks)


def integrate(velocity: Velocity, x: Tensor, ts: Tensor, tab: Tableau,
              last: Tableau | None = None) -> SolverResult:
    """Steps of ``tab`` over the grid ``ts``; the final step uses ``last`` if given."""
    t = ts.tolist()
    nfe = 0
    for k in range(len(t) - 1):
        step = last if last is not None and k == len(t) - 2 else tab
        x = rk_step(velocity, x, t[k], t[k + 1], step)
        nfe += len(step.c)
    return SolverResult(x, nfe)


@torch.inference_mode()
def sample_midpoint(velocity: Velocity, x: Tensor, ts: Tensor) -> SolverResult:
    """Explicit midpoint rule (Hairer, Nørsett & Wanner 1993, Sec. II.1): u at t_k, t_k + h/2. NFE = 2N.

    Never evaluates u at t_{k+1}, so it runs into t = 0 like Euler.
    """
    return integrate(velocity, x, ts, MIDPOINT)


@torch.inference_mode()
def sample_heun(velocity: Velocity, x: Tensor, ts: Tensor) -> SolverResult:
    """Heun's method (Karras et al. 2022, Algorithm 1, here in t with velocity u).

    x' = x + h u(x, t); x_{k+1} = x + h/2 (u(x, t) + u(x', t_{k+1})). As in Algorithm 1, a step that
    ends at t = 0 (sigma = 0, where a VP path's velocity is singular) is a plain Euler step, so
    NFE = 2N - 1 on grids ending at 0 and 2N otherwise.
    """
    return integrate(velocity, x, ts, HEUN, last=EULER if float(ts[-1]) == 0.0 else None)


@torch.inference_mode()
def sample_rk4(velocity: Velocity, x: Tensor, ts: Tensor) -> SolverResult:
    """Classical fourth-order Runge–Kutta (Hairer, Nørsett & Wanner 1993, Sec. II.1). NFE = 4N.

    Its last stage evaluates u at t_{k+1}. A VP path's velocity is singular at t = 0
    (sigma' ~ 1/sigma), so give RK4 a grid that ends at ``path.t_min`` there; the result is x(t_min).
    """
    return integrate(velocity, x, ts, RK4)
