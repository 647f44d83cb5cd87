"""DDIM sampling, Song et al. 2021 Eq. 12 (eta = 0: deterministic; eta = 1: DDPM-like)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genbench.solvers.base import Denoiser, NoiseFn, SolverResult, full_t, need_noise
from genbench.solvers.ode import scalars


def ddim_update(x0: Tensor, eps: Tensor, alpha_next: float, sigma_next: float, s: float,
                noise: NoiseFn | None) -> Tensor:
    """x_next = alpha_next x0 + sqrt(sigma_next^2 - s^2) eps + s z (Song et al. 2021, Eq. 12)."""
    x = alpha_next * x0 + math.sqrt(max(sigma_next**2 - s * s, 0.0)) * eps
    return x + s * noise(x) if s > 0 else x


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
    if eta > 0:
        noise = need_noise(noise, "DDIM with eta > 0")
    T = len(alphas_cumprod)
    abar = alphas_cumprod.to(torch.float64)
    steps = timesteps.tolist()
    for k, i in enumerate(steps):
        x0, eps = denoise(x, full_t(x, (i + 1) / T))
        a_t = float(abar[i])
        a_prev = float(abar[steps[k + 1]]) if k + 1 < len(steps) else 1.0
        s = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)) ** 0.5
        x = ddim_update(x0, eps, a_prev**0.5, (1 - a_prev) ** 0.5, s, noise)
    return SolverResult(x, len(steps))


@torch.inference_mode()
def sample_ddim_t(denoise: Denoiser, x: Tensor, path, ts: Tensor, eta: float = 0.0,
                  noise: NoiseFn | None = None) -> SolverResult:
    """DDIM on any path and grid of times t (e.g. a flow path). NFE = N.

    The same update with alpha, sigma of the path and s = eta sigma_next sqrt(1 - e^{-2h}),
    h = lambda_next - lambda: Song et al.'s Eq. 16 written for any (alpha, sigma) (for a VP path
    (1 - e^{-2h}) sigma_next^2 = (1 - abar_next)/(1 - abar) (1 - abar/abar_next)). With eta = 0 it
    is the first-order exponential integrator DPM-Solver++(1); into t = 0 it returns x0_hat.
    """
    if eta > 0:
        noise = need_noise(noise, "DDIM with eta > 0")
    alpha, sigma = scalars(path, ts)
    lam, t = path.log_snr(ts).tolist(), ts.tolist()
    for i in range(len(t) - 1):
        x0, eps = denoise(x, full_t(x, t[i]))
        s = eta * sigma[i + 1] * math.sqrt(-math.expm1(-2 * (lam[i + 1] - lam[i])))
        x = ddim_update(x0, eps, alpha[i + 1], sigma[i + 1], s, noise)
    return SolverResult(x, len(t) - 1)
