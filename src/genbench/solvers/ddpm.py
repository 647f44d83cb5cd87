"""DDPM ancestral sampling, Algorithm 2 of Ho et al. 2020 (with sigma_t^2 = beta_t)."""

from __future__ import annotations

import torch
from torch import Tensor

from genbench.solvers.base import Denoiser, NoiseFn, SolverResult, full_t


@torch.inference_mode()
def sample_ddpm(denoise: Denoiser, x: Tensor, alphas_cumprod: Tensor, noise: NoiseFn,
                timesteps: Tensor | None = None) -> SolverResult:
    """x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sqrt(beta_t) z; no z at the end.

    By default all T steps. Given descending step indices ``timesteps`` (e.g. ``ddpm_timesteps``),
    the chain is respaced (Nichol & Dhariwal 2021, Sec. 4): beta_t = 1 - abar_t / abar_prev between
    consecutive kept steps. NFE = number of steps.
    """
    T = len(alphas_cumprod)
    abar = alphas_cumprod.to(torch.float64).tolist()
    steps = list(reversed(range(T))) if timesteps is None else timesteps.tolist()
    for k, i in enumerate(steps):
        _, eps = denoise(x, full_t(x, (i + 1) / T))
        abar_prev = abar[steps[k + 1]] if k + 1 < len(steps) else 1.0
        beta = 1 - abar[i] / abar_prev
        x = (x - beta / (1 - abar[i]) ** 0.5 * eps) / (1 - beta) ** 0.5
        if k + 1 < len(steps):
            x = x + beta**0.5 * noise(x)
    return SolverResult(x, len(steps))
