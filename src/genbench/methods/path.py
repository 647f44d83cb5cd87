"""Gaussian probability paths x_t = alpha_t * x_0 + sigma_t * eps shared by diffusion and flow.

Time runs from t=0 (data) to t=1 (noise) for every family, so that one solver library can
integrate any trained model from t=1 down to t=0.

* :class:`DiscreteVP` — the variance-preserving schedules of DDPM: linear betas (Ho et al.
  2020, Sec. 4) or the cosine schedule (Nichol & Dhariwal 2021, Eq. 17), with T discrete steps.
  Step index i in {0..T-1} sits at continuous time t_i = (i+1)/T; between knots log(alpha) is
  interpolated linearly in t (as DPM-Solver's discrete-time wrapper does, Lu et al. 2022, App. D).
* :class:`LinearPath` — the conditional-OT / rectified-flow path (Lipman et al. 2022, Eq. 20;
  Liu et al. 2022), written in this time direction: alpha_t = 1 - t,
  sigma_t = sigma_min + (1 - sigma_min) t.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor


class PathCoeffs(NamedTuple):
    """alpha_t, sigma_t and their time derivatives, each of shape (N,)."""

    alpha: Tensor
    sigma: Tensor
    d_alpha: Tensor
    d_sigma: Tensor


def broadcast(c: Tensor, x: Tensor) -> Tensor:
    """Shape a per-sample coefficient (N,) to multiply a batch x of shape (N, ...)."""
    return c.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)


def linear_betas(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """Ho et al. 2020, Sec. 4: betas linear from 1e-4 to 0.02 over T=1000 steps."""
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Nichol & Dhariwal 2021, Eq. 17; betas clipped at 0.999 as in their Sec. 3.2."""
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)


class DiscreteVP:
    """A DDPM noise schedule: betas_i, alpha_bar_i = prod_{j<=i} (1 - beta_j)."""

    def __init__(self, betas: Tensor):
        self.betas = betas.to(torch.float64)
        self.T = len(betas)
        self.alphas_cumprod = torch.cumprod(1 - self.betas, dim=0)
        # knots for continuous time: t=0 (alpha=1) and t_i = (i+1)/T
        self._t_knots = torch.arange(self.T + 1, dtype=torch.float64) / self.T
        self._log_alpha_knots = torch.cat([torch.zeros(1, dtype=torch.float64),
                                           0.5 * torch.log(self.alphas_cumprod)])
        self._tables: dict[torch.device, Tensor] = {}

    def t_of_index(self, i: Tensor) -> Tensor:
        return (i.to(torch.float64) + 1) / self.T

    def coeffs_at_index(self, i: Tensor) -> PathCoeffs:
        """Exact coefficients at step indices i: alpha = sqrt(alpha_bar_i), sigma = sqrt(1 - alpha_bar_i).

        Looked up in tables kept on i's device, so training needs no host-device sync.
        """
        table = self._tables.get(i.device)
        if table is None:
            alpha = self.alphas_cumprod.sqrt()
            sigma = (1 - self.alphas_cumprod).sqrt()
            slope = torch.diff(self._log_alpha_knots) * self.T
            d_alpha = alpha * slope
            table = torch.stack([alpha, sigma, d_alpha, -alpha * d_alpha / sigma]).to(i.device, torch.float32)
            self._tables[i.device] = table
        return PathCoeffs(*table[:, i])

    def coeffs(self, t: Tensor) -> PathCoeffs:
        """Coefficients at continuous t in [0, 1], linear in log(alpha) between the knots."""
        device = t.device
        t64 = t.detach().to("cpu", torch.float64).clamp(0, 1)
        k = torch.searchsorted(self._t_knots, t64, right=False).clamp(1, self.T)
        t0, t1 = self._t_knots[k - 1], self._t_knots[k]
        l0, l1 = self._log_alpha_knots[k - 1], self._log_alpha_knots[k]
        slope = (l1 - l0) / (t1 - t0)
        log_alpha = l0 + slope * (t64 - t0)
        alpha = torch.exp(log_alpha)
        sigma = torch.sqrt((1 - alpha**2).clamp(min=0))
        d_alpha = alpha * slope
        d_sigma = -alpha * d_alpha / sigma.clamp(min=1e-12)
        return _to(PathCoeffs(alpha, sigma, d_alpha, d_sigma), device)


class LinearPath:
    """Conditional-OT path: x_t = (1 - t) x_0 + (sigma_min + (1 - sigma_min) t) eps."""

    def __init__(self, sigma_min: float = 0.0):
        self.sigma_min = sigma_min

    def coeffs(self, t: Tensor) -> PathCoeffs:
        t = t.to(torch.float64)
        one = torch.ones_like(t)
        return _to(PathCoeffs(1 - t, self.sigma_min + (1 - self.sigma_min) * t,
                              -one, (1 - self.sigma_min) * one), t.device)


def _to(c: PathCoeffs, device: torch.device) -> PathCoeffs:
    return PathCoeffs(*(v.to(device=device, dtype=torch.float32) for v in c))


def q_sample(x0: Tensor, eps: Tensor, c: PathCoeffs) -> Tensor:
    """Draw x_t from q(x_t | x_0) (Ho et al. 2020, Eq. 4) given the noise eps."""
    return broadcast(c.alpha, x0) * x0 + broadcast(c.sigma, x0) * eps
