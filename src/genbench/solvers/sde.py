"""Euler–Maruyama on the reverse-time SDE (Song et al. 2021, Eq. 6), for any path."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genbench.solvers.base import Denoiser, NoiseFn, SolverResult, need_noise
from genbench.solvers.ode import reverse_sde


@torch.inference_mode()
def sample_euler_maruyama(denoise: Denoiser, x: Tensor, path, ts: Tensor,
                          noise: NoiseFn | None) -> SolverResult:
    """x_{k+1} = x_k + (f x_k - g^2 score) dt + g sqrt(|dt|) z, dt = t_{k+1} - t_k < 0. NFE = N.

    Drift and diffusion from :func:`genbench.solvers.ode.reverse_sde` (score = -eps / sigma). The
    step into t = 0 returns the data prediction x0_hat without noise (the noise-free last step of
    Song et al.'s predictor samplers, Tweedie's formula). Near the noise end of the flow path
    f = -1/(1 - t) is stiff: use grids that are fine there (log-SNR or Karras), not uniform in t.
    """
    noise = need_noise(noise, "Euler–Maruyama")
    sde = reverse_sde(denoise, path)
    t = ts.tolist()
    for k in range(len(t) - 1):
        step = sde(x, t[k])
        if t[k + 1] == 0.0:
            x = step.x0
            continue
        dt = t[k + 1] - t[k]
        x = x + dt * step.drift + (step.diffusion * math.sqrt(-dt)) * noise(x)
    return SolverResult(x, len(t) - 1)
