"""Exponential integrators in the log-SNR lambda = log(alpha / sigma), data-prediction form.

For x_t = alpha_t x0 + sigma_t eps the probability-flow ODE has the exact solution
x_t = (sigma_t / sigma_s) x_s + sigma_t int_{lambda_s}^{lambda_t} e^lambda x0_hat(lambda) dlambda
(the data-prediction form of Lu et al. 2022b); the solvers below approximate x0_hat in the integral.
They need only alpha, sigma and lambda of the path, so they run on every path (DiscreteVP,
LinearPath, ...).

The step into t = 0 (sigma = 0, lambda = +inf, h = inf) is always first order and returns the
data prediction x0_hat: (sigma_t / sigma_s) x_s -> 0 and -alpha_t expm1(-h) -> 1. This is
diffusers' ``final_sigmas_type="zero"`` (which forces its first-order final update) and
k-diffusion's ``denoised`` at sigma = 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genbench.solvers.base import Denoiser, SolverResult, full_t
from genbench.solvers.ode import scalars


def exp_step(x: Tensor, d: Tensor, alpha_next: float, sigma: float, sigma_next: float, h: float) -> Tensor:
    """x_next = (sigma_next / sigma) x - alpha_next (e^{-h} - 1) d, h = lambda_next - lambda.

    The exact solution with x0_hat ~ d constant: DPM-Solver++(1), which is DDIM (eta = 0).
    """
    return (sigma_next / sigma) * x - (alpha_next * math.expm1(-h)) * d


def _lambdas(path, ts: Tensor) -> list[float]:
    return path.log_snr(ts).tolist()


@torch.inference_mode()
def sample_dpmpp_2m(denoise: Denoiser, x: Tensor, path, ts: Tensor) -> SolverResult:
    """DPM-Solver++(2M), Lu et al. 2022b, Algorithm 2 (multistep, data prediction). NFE = N.

    h_i = lambda_i - lambda_{i-1}, r_i = h_{i-1} / h_i,
    D_i = (1 + 1/(2 r_i)) x0_{i-1} - 1/(2 r_i) x0_{i-2}, x_i = (sigma_i/sigma_{i-1}) x_{i-1}
    - alpha_i (e^{-h_i} - 1) D_i. The first step has no history and is first order, and so is the
    step into t = 0 (see the module docstring).
    """
    alpha, sigma = scalars(path, ts)
    lam, t = _lambdas(path, ts), ts.tolist()
    prev: Tensor | None = None
    h_prev = math.inf
    for i in range(len(t) - 1):
        x0, _ = denoise(x, full_t(x, t[i]))
        h = lam[i + 1] - lam[i]
        d = x0
        if prev is not None and t[i + 1] != 0.0:
            half_inv_r = 0.5 * h / h_prev
            d = (1 + half_inv_r) * x0 - half_inv_r * prev
        x = exp_step(x, d, alpha[i + 1], sigma[i], sigma[i + 1], h)
        prev, h_prev = x0, h
    return SolverResult(x, len(t) - 1)


@torch.inference_mode()
def sample_dpmpp_2s(denoise: Denoiser, x: Tensor, path, ts: Tensor, r: float = 0.5) -> SolverResult:
    """DPM-Solver++(2S), Lu et al. 2022b, Algorithm 1 (singlestep, data prediction).

    Per step: s = t_lambda(lambda_{i-1} + r h_i), u = first-order step to s,
    D = (1 - 1/(2r)) x0(x_{i-1}, t_{i-1}) + 1/(2r) x0(u, s), then the step with D to t_i.
    NFE = 2N - 1 on grids ending at 0 (the step into t = 0 is first order), else 2N.
    """
    alpha, sigma = scalars(path, ts)
    lam, t = _lambdas(path, ts), ts.tolist()
    nfe = 0
    for i in range(len(t) - 1):
        x0, _ = denoise(x, full_t(x, t[i]))
        nfe += 1
        h = lam[i + 1] - lam[i]
        d = x0
        if t[i + 1] != 0.0:
            t_mid = float(path.t_of_log_snr(lam[i] + r * h))
            a_mid, s_mid = (float(v) for v in path.coeffs_f64(t_mid)[:2])
            u = exp_step(x, x0, a_mid, sigma[i], s_mid, r * h)
            x0_mid, _ = denoise(u, full_t(x, t_mid))
            nfe += 1
            d = (1 - 0.5 / r) * x0 + (0.5 / r) * x0_mid
        x = exp_step(x, d, alpha[i + 1], sigma[i], sigma[i + 1], h)
    return SolverResult(x, nfe)
