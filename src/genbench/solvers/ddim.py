"""DDIM sampling, Song et al. 2021 Eq. 12 (eta = 0: deterministic; eta = 1: DDPM-like)."""

from __future__ import annotations

import torch
from torch import Tensor

from genbench.solvers.base import Denoiser, NoiseFn, SolverResult, full_t


@torch.inference_mode()
def sample_ddim(
    denoise: Denoiser,
    x: Tensor,
    alphas_cumprod: Tensor,
    timesteps: Tensor,
    eta: float = 0.0,
    noise: NoiseFn | None = None,
) -> SolverResult:
    """Step through the descending step indices ``timesteps``; the last step lands on alpha_bar = 1.

    x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - s^2) eps + s z, with
    s = eta sqrt((1 - abar_prev) / (1 - abar)) sqrt(1 - abar / abar_prev) (Song et al. Eq. 16).
    """
    if eta > 0 and noise is None:
        raise ValueError("eta > 0 needs a noise function")
    T = len(alphas_cumprod)
    abar = alphas_cumprod.to(torch.float64)
    steps = timesteps.tolist()
    nfe = 0
    for k, i in enumerate(steps):
        x0, eps = denoise(x, full_t(x, (i + 1) / T))
        nfe += 1
        a_t = float(abar[i])
        a_prev = float(abar[steps[k + 1]]) if k + 1 < len(steps) else 1.0
        s = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)) ** 0.5
        x = a_prev**0.5 * x0 + max(1 - a_prev - s * s, 0.0) ** 0.5 * eps
        if s > 0:
            x = x + s * noise(x)
    return SolverResult(x, nfe)
