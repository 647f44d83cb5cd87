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
* :class:`VEPath` — EDM's variance-exploding path (Karras et al. 2022): alpha_t = 1,
  sigma_t = sigma_max t (EDM's sigma(t) = t, rescaled).

Both paths also expose the quantities few-step solvers work in: the log-SNR
lambda_t = log(alpha_t / sigma_t) (Lu et al. 2022, Sec. 3.1) and the EDM/VE noise level
sigma_ve = sigma_t / alpha_t = exp(-lambda_t) (Karras et al. 2022, Eq. 1-3 with s(t) = alpha_t),
with their inverses, and the usable ends ``t_min`` < ``t_max`` of the interval on which both are
finite. Every time grid starts at ``t_max`` and ends with a jump from ``t_min`` (or earlier) to 0.
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
        return _to(self.coeffs_f64(t), t.device)

    def coeffs_f64(self, t: Tensor | float) -> PathCoeffs:
        """:meth:`coeffs` in float64 on the CPU, for solvers that need their step sizes exactly."""
        log_alpha, slope = self._log_alpha(t)
        alpha = torch.exp(log_alpha)
        sigma = torch.sqrt((1 - alpha**2).clamp(min=0))
        d_alpha = alpha * slope
        d_sigma = -alpha * d_alpha / sigma.clamp(min=1e-12)
        return PathCoeffs(alpha, sigma, d_alpha, d_sigma)

    def _log_alpha(self, t: Tensor | float) -> tuple[Tensor, Tensor]:
        t64 = _f64(t).clamp(0, 1)
        k = torch.searchsorted(self._t_knots, t64, right=False).clamp(1, self.T)
        t0, t1 = self._t_knots[k - 1], self._t_knots[k]
        l0, l1 = self._log_alpha_knots[k - 1], self._log_alpha_knots[k]
        slope = (l1 - l0) / (t1 - t0)
        return l0 + slope * (t64 - t0), slope

    # --- log-SNR and VE noise level (for few-step solvers) -------------------------------------
    @property
    def t_max(self) -> float:
        """Grids start here: the last step, where alpha_bar = alpha_bar_{T-1} > 0 (lambda finite)."""
        return 1.0

    @property
    def t_min(self) -> float:
        """The first DDPM step t = 1/T: the smallest trained time; grids jump from here to t = 0."""
        return 1.0 / self.T

    def log_snr(self, t: Tensor | float) -> Tensor:
        """lambda_t = log alpha - log sigma = log alpha - log(1 - alpha^2) / 2 (+inf at t = 0)."""
        log_alpha, _ = self._log_alpha(t)
        return log_alpha - 0.5 * torch.log(-torch.expm1(2 * log_alpha))

    def t_of_log_snr(self, lam: Tensor | float) -> Tensor:
        """Inverse of :meth:`log_snr`, in closed form.

        For a VP path alpha^2 = sigmoid(2 lambda), so log alpha = logsigmoid(2 lambda) / 2; log alpha is
        piecewise linear and decreasing in t, so t follows by linear interpolation between its knots.
        Values outside the path's range clamp to t in [0, 1].
        """
        log_alpha = 0.5 * torch.nn.functional.logsigmoid(2 * _f64(lam))
        knots = self._log_alpha_knots.flip(0)  # increasing: log alpha at t = 1, ..., t = 0
        t_knots = self._t_knots.flip(0)
        la = log_alpha.clamp(float(knots[0]), 0.0)
        k = torch.searchsorted(knots, la, right=False).clamp(1, self.T)
        l0, l1 = knots[k - 1], knots[k]
        return t_knots[k - 1] + (la - l0) * (t_knots[k] - t_knots[k - 1]) / (l1 - l0)

    def sigma_ve(self, t: Tensor | float) -> Tensor:
        """EDM/VE noise level sigma_t / alpha_t = exp(-lambda_t) (0 at t = 0)."""
        return torch.exp(-self.log_snr(t))

    def t_of_sigma_ve(self, s: Tensor | float) -> Tensor:
        """Inverse of :meth:`sigma_ve`: t with sigma_t / alpha_t = s (s = 0 gives t = 0)."""
        return self.t_of_log_snr(-torch.log(_f64(s)))


class LinearPath:
    """Conditional-OT path: x_t = (1 - t) x_0 + (sigma_min + (1 - sigma_min) t) eps.

    alpha_1 = 0, so lambda(1) = -inf and sigma_ve(1) = inf: solvers that work in lambda or sigma_ve
    start at ``t_max`` = 1 - 1e-3 (sigma_ve ~ 1e3), treating x_init ~ N(0, I) as a sample there
    (its true marginal is 1e-3 x_0 + 0.999 eps). With sigma_min = 0, lambda(0) = +inf, so grids
    end at ``t_min`` = 1e-3 (sigma_ve ~ 1e-3) and jump from there to t = 0.
    """

    def __init__(self, sigma_min: float = 0.0, t_min: float = 1e-3, t_max: float = 1 - 1e-3):
        self.sigma_min = sigma_min
        self.t_min, self.t_max = t_min, t_max

    def coeffs(self, t: Tensor) -> PathCoeffs:
        return _to(self._coeffs(t.to(torch.float64)), t.device)  # on t's device: no sync in training

    def coeffs_f64(self, t: Tensor | float) -> PathCoeffs:
        """:meth:`coeffs` in float64 on the CPU, for solvers that need their step sizes exactly."""
        return self._coeffs(_f64(t))

    def _coeffs(self, t: Tensor) -> PathCoeffs:
        one = torch.ones_like(t)
        return PathCoeffs(1 - t, self.sigma_min + (1 - self.sigma_min) * t, -one, (1 - self.sigma_min) * one)

    def log_snr(self, t: Tensor | float) -> Tensor:
        """lambda_t = log(1 - t) - log(sigma_min + (1 - sigma_min) t) (-inf at t = 1)."""
        t = _f64(t)
        return torch.log1p(-t) - torch.log(self.sigma_min + (1 - self.sigma_min) * t)

    def sigma_ve(self, t: Tensor | float) -> Tensor:
        """sigma_t / alpha_t = (sigma_min + (1 - sigma_min) t) / (1 - t) (inf at t = 1)."""
        t = _f64(t)
        return (self.sigma_min + (1 - self.sigma_min) * t) / (1 - t)

    def t_of_sigma_ve(self, s: Tensor | float) -> Tensor:
        """Closed form: s (1 - t) = sigma_min + (1 - sigma_min) t  =>  t = 1 - 1 / (s + 1 - sigma_min)."""
        return (1 - 1 / (_f64(s) + 1 - self.sigma_min)).clamp(0, 1)

    def t_of_log_snr(self, lam: Tensor | float) -> Tensor:
        """Inverse of :meth:`log_snr` (sigma_min = 0: t = 1 / (1 + exp(lambda)))."""
        return self.t_of_sigma_ve(torch.exp(-_f64(lam)))


class VEPath:
    """The variance-exploding path of EDM: x = x_0 + sigma eps (Karras et al. 2022, Table 1, "EDM"
    column: s(t) = 1 and sigma(t) = t), here with the time rescaled to [0, 1]: sigma(t) = sigma_max t.

    alpha = 1, so sigma_ve = sigma and lambda = -log sigma. As in EDM (Sec. 3), sigma linear in t makes
    every solver that steps in t step in sigma: Euler in t is the paper's Euler step, and the ODE's
    tangent points at the denoiser's output. Training draws sigma itself (log-normal,
    :mod:`genbench.methods.edm`) and never needs t; samplers start at ``t_max`` = 1 (sigma_max: the
    method scales its N(0, I) x_init by it) and end at ``t_min`` = sigma_min / sigma_max, jumping from
    there to t = 0.
    """

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self.t_min, self.t_max = sigma_min / sigma_max, 1.0

    def sigma(self, t: Tensor) -> Tensor:
        """The noise level at t, in t's dtype and on its device (no host sync)."""
        return self.sigma_max * t

    def coeffs(self, t: Tensor) -> PathCoeffs:
        return _to(self._coeffs(t.to(torch.float64)), t.device)

    def coeffs_f64(self, t: Tensor | float) -> PathCoeffs:
        """:meth:`coeffs` in float64 on the CPU, for solvers that need their step sizes exactly."""
        return self._coeffs(_f64(t))

    def _coeffs(self, t: Tensor) -> PathCoeffs:
        one = torch.ones_like(t)
        return PathCoeffs(one, self.sigma_max * t, 0 * one, self.sigma_max * one)

    def log_snr(self, t: Tensor | float) -> Tensor:
        """lambda_t = -log sigma(t) (+inf at t = 0)."""
        return -torch.log(self.sigma_max * _f64(t))

    def sigma_ve(self, t: Tensor | float) -> Tensor:
        return self.sigma_max * _f64(t)

    def t_of_sigma_ve(self, s: Tensor | float) -> Tensor:
        return (_f64(s) / self.sigma_max).clamp(0, 1)

    def t_of_log_snr(self, lam: Tensor | float) -> Tensor:
        return self.t_of_sigma_ve(torch.exp(-_f64(lam)))


def _f64(t: Tensor | float) -> Tensor:
    """Times (or lambdas, sigmas) as float64 on the CPU, where the schedule tables live."""
    if isinstance(t, Tensor):
        return t.detach().to("cpu", torch.float64)
    return torch.as_tensor(t, dtype=torch.float64)


def _to(c: PathCoeffs, device: torch.device) -> PathCoeffs:
    return PathCoeffs(*(v.to(device=device, dtype=torch.float32) for v in c))


def q_sample(x0: Tensor, eps: Tensor, c: PathCoeffs) -> Tensor:
    """Draw x_t from q(x_t | x_0) (Ho et al. 2020, Eq. 4) given the noise eps."""
    return broadcast(c.alpha, x0) * x0 + broadcast(c.sigma, x0) * eps
