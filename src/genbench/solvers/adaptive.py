"""Adaptive Dormand–Prince (dopri5) on the probability-flow ODE, through torchdiffeq."""

from __future__ import annotations

import torch
from torch import Tensor
from torchdiffeq import odeint

from genbench.solvers.base import Denoiser, SolverResult, full_t
from genbench.solvers.ode import pf_velocity


@torch.inference_mode()
def sample_dopri5(denoise: Denoiser, x: Tensor, path, t_start: float, t_end: float, rtol: float = 1e-5,
                  atol: float = 1e-5, denoise_last: bool = True) -> SolverResult:
    """Dormand & Prince 1980 (RK5(4) with step control) from t_start down to t_end > 0.

    Integrates dx/dt = alpha' x0 + sigma' eps (:func:`genbench.solvers.ode.pf_velocity`), counting
    every evaluation torchdiffeq makes (initial step selection and rejected steps included).
    A VP path's velocity is singular at t = 0, so integrate to ``path.t_min`` (the first DDPM step
    1/T; 1e-3 for the flow path) and, with ``denoise_last``, finish with x0_hat(x, t_end): one more
    evaluation, counted. NFE is set by rtol/atol, not chosen.
    """
    velocity = pf_velocity(denoise, path)
    nfe = 0

    def f(t: Tensor, y: Tensor) -> Tensor:
        nonlocal nfe
        nfe += 1
        return velocity(y, full_t(y, float(t)))

    ts = torch.tensor([t_start, t_end], dtype=x.dtype, device=x.device)
    # step_t: the last step lands on t_end instead of stepping past it and interpolating back, so the
    # network is never evaluated outside [t_end, t_start] (below 0 an EDM path has no noise level)
    x = odeint(f, x, ts, rtol=rtol, atol=atol, method="dopri5", options={"step_t": ts})[-1]
    if denoise_last:
        x = denoise(x, full_t(x, t_end))[0]
        nfe += 1
    return SolverResult(x, nfe)
