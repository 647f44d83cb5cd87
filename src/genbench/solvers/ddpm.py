"""DDPM ancestral sampling, Algorithm 2 of Ho et al. 2020 (with sigma_t^2 = beta_t)."""

from __future__ import annotations

import torch
from torch import Tensor

from genbench.solvers.base import Denoiser, NoiseFn, SolverResult, full_t


@torch.inference_mode()
def sample_ddpm(denoise: Denoiser, x: Tensor, alphas_cumprod: Tensor, noise: NoiseFn) -> SolverResult:
    """Run all T steps: x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sqrt(beta_t) z."""
    T = len(alphas_cumprod)
    abar = alphas_cumprod.to(torch.float64).tolist()
    nfe = 0
    for i in reversed(range(T)):
        _, eps = denoise(x, full_t(x, (i + 1) / T))
        nfe += 1
        abar_prev = abar[i - 1] if i > 0 else 1.0
        beta = 1 - abar[i] / abar_prev
        x = (x - beta / (1 - abar[i]) ** 0.5 * eps) / (1 - beta) ** 0.5
        if i > 0:
            x = x + beta**0.5 * noise(x)
    return SolverResult(x, nfe)
