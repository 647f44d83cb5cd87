"""From one denoiser ``denoise(x_t, t) -> (x0, eps)`` and a path to the forms solvers integrate.

* :func:`pf_velocity` — the probability-flow ODE dx/dt = alpha'_t x0 + sigma'_t eps (Song et al.
  2021, Eq. 13, written for x_t = alpha_t x0 + sigma_t eps; for a flow model it is its velocity).
* :func:`ve_denoiser` — the EDM form D(x_hat; sigma) with x_hat = x_t / alpha_t and
  sigma = sigma_t / alpha_t (Karras et al. 2022, Eq. 1-3 and Table 1, "scaling" s(t) = alpha_t), in
  which the ODE is dx_hat/dsigma = (x_hat - D(x_hat; sigma)) / sigma.
* :func:`reverse_sde` — drift and diffusion of the reverse-time SDE (Song et al. 2021, Eq. 6):
  dx = [f x - g^2 score] dt + g dw_bar with score = -eps / sigma_t, f = alpha' / alpha and
  g^2 = d(sigma^2)/dt - 2 f sigma^2 = 2 sigma sigma' - 2 (alpha'/alpha) sigma^2, which makes the
  forward SDE dx = f x dt + g dw have the path's marginals (for VP paths g^2 = beta(t)).

The conversions between eps, x0 and velocity are those of :mod:`genbench.paths.conversions`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from torch import Tensor

from genbench.paths import PathCoeffs, from_x0_eps
from genbench.solvers.base import Denoiser, Velocity, full_t

VEDenoiser = Callable[[Tensor, float], Tensor]  # D(x_hat, sigma_ve) -> x0_hat


def coeffs_like(path, t: Tensor | float, x: Tensor) -> PathCoeffs:
    """The path's float64 ``PathCoeffs`` at t, cast to x's dtype and moved to its device."""
    c = path.coeffs_f64(t)
    return PathCoeffs(*(v.to(x.dtype).to(x.device) for v in c))


def scalars(path, ts: Tensor) -> tuple[list[float], list[float]]:
    """alpha_t and sigma_t at every point of a grid, as Python floats (float64)."""
    c = path.coeffs_f64(ts)
    return c.alpha.tolist(), c.sigma.tolist()


def pf_velocity(denoise: Denoiser, path) -> Velocity:
    """u(x, t) = alpha'_t x0_hat + sigma'_t eps_hat: one network evaluation per call."""
    def velocity(x: Tensor, t: Tensor) -> Tensor:
        x0, eps = denoise(x, t)
        return from_x0_eps(x0, eps, "velocity", coeffs_like(path, t, x))

    return velocity


def ve_denoiser(denoise: Denoiser, path) -> VEDenoiser:
    """D(x_hat; sigma) = x0_hat(alpha_t x_hat, t) at the t with sigma_t / alpha_t = sigma."""

    def D(x_hat: Tensor, sigma: float) -> Tensor:
        t = float(path.t_of_sigma_ve(sigma))
        alpha = float(path.coeffs_f64(t).alpha)
        return denoise(alpha * x_hat, full_t(x_hat, t))[0]

    return D


class SDEStep(NamedTuple):
    drift: Tensor      # f x - g^2 score, in dx/dt (integrated with dt < 0)
    diffusion: float   # g(t)
    x0: Tensor         # the denoiser's data prediction at (x, t)


def reverse_sde(denoise: Denoiser, path) -> Callable[[Tensor, float], SDEStep]:
    """Reverse-SDE drift f x + g^2 eps / sigma and diffusion g at (x, t): one evaluation per call."""

    def step(x: Tensor, t: float) -> SDEStep:
        c = path.coeffs_f64(t)
        a, s, da, ds = (float(v) for v in c)
        f = da / a
        g2 = 2 * s * ds - 2 * f * s * s
        x0, eps = denoise(x, full_t(x, t))
        return SDEStep(f * x + (g2 / s) * eps, max(g2, 0.0) ** 0.5, x0)

    return step
