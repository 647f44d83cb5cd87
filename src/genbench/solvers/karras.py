"""The EDM samplers of Karras et al. 2022 in the VE form x_hat = x_t / alpha_t, sigma = sigma_t / alpha_t."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genbench.solvers.base import Denoiser, NoiseFn, SolverResult, need_noise
from genbench.solvers.ode import scalars, ve_denoiser


@torch.inference_mode()
def sample_karras(
    denoise: Denoiser,
    x: Tensor,
    path,
    ts: Tensor,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    s_noise: float = 1.0,
    noise: NoiseFn | None = None,
    second_order: bool = True,
) -> SolverResult:
    """Karras et al. 2022, Algorithm 2 (stochastic); with ``s_churn = 0`` it is Algorithm 1 (Heun).

    Works on D(x_hat; sigma) of :func:`genbench.solvers.ode.ve_denoiser`, sigma_i = sigma_ve(t_i):
    gamma_i = min(S_churn / N, sqrt(2) - 1) if S_tmin <= sigma_i <= S_tmax else 0; sigma_hat =
    (1 + gamma_i) sigma_i, x_hat += sqrt(sigma_hat^2 - sigma_i^2) S_noise z; an Euler step
    d = (x_hat - D(x_hat; sigma_hat)) / sigma_hat to sigma_{i+1}, then the trapezoidal correction
    unless t_{i+1} = 0 (there the Euler step already returns D). NFE = 2N - 1 on grids ending at 0.
    ``second_order=False`` drops the correction: the Euler sampler (NFE = N, which with s_churn = 0
    is DDIM, Karras et al. Sec. 3). A churned sigma_hat beyond the path's range is clipped to it
    (t_of_sigma_ve clamps t to [0, 1]). x is x_{t_0} of the path and so is the result, at t_N.
    """
    if s_churn > 0:
        noise = need_noise(noise, "sample_karras with s_churn > 0")
    D = ve_denoiser(denoise, path)
    t = ts.tolist()
    alpha, _ = scalars(path, ts)
    sigma = path.sigma_ve(ts).tolist()
    n = len(t) - 1
    x_hat = x / alpha[0]
    nfe = 0
    for i in range(n):
        s, s_next = sigma[i], sigma[i + 1]
        gamma = min(s_churn / n, math.sqrt(2) - 1) if s_churn > 0 and s_tmin <= s <= s_tmax else 0.0
        s_hat = s
        if gamma > 0:
            s_hat = float(path.sigma_ve(path.t_of_sigma_ve(s * (1 + gamma))))
            x_hat = x_hat + math.sqrt(max(s_hat**2 - s**2, 0.0)) * s_noise * noise(x_hat)
        d = (x_hat - D(x_hat, s_hat)) / s_hat
        x_next = x_hat + (s_next - s_hat) * d
        nfe += 1
        if second_order and t[i + 1] != 0.0:
            d_next = (x_next - D(x_next, s_next)) / s_next
            x_next = x_hat + (s_next - s_hat) * (0.5 * d + 0.5 * d_next)
            nfe += 1
        x_hat = x_next
    return SolverResult(alpha[-1] * x_hat, nfe)
