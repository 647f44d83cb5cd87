"""Time grids, each built by its own function so that one grid can feed any solver.

Every grid is a float64 tensor of times t, descending. The path-aware ones (:func:`discrete_t`,
:func:`karras_t`, :func:`log_snr_t`) start at ``path.t_max``, end at ``path.t_min`` and then
append t = 0, so ``n`` steps take ``n + 1`` points; :func:`uniform_t` is the same with explicit ends.
Solvers treat the step into t = 0 specially where they must (see :mod:`genbench.solvers`).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

Spacing = Literal["trailing", "leading", "linspace"]


def ddpm_timesteps(T: int, n: int, spacing: Spacing = "trailing") -> Tensor:
    """n of the T discrete DDPM step indices (0-based, descending), i.e. t = (i+1)/T.

    Spacing conventions, made explicit (Lin et al. 2024, Table 2):
    * ``trailing``: i = round(T - k T/n) - 1 for k = 0..n-1 — always starts at the last step T-1;
    * ``leading``:  i = k (T // n) for k = n-1..0 (DDIM's and diffusers' default) — skips the
      last T // n - 1 steps, so it starts below pure noise;
    * ``linspace``: i = round(linspace(0, T-1, n)).
    """
    if not 1 <= n <= T:
        raise ValueError(f"need 1 <= n <= T, got n={n}, T={T}")
    if spacing == "trailing":
        idx = torch.round(torch.arange(T, 0, -T / n, dtype=torch.float64)).long() - 1
    elif spacing == "leading":
        idx = (torch.arange(n, dtype=torch.long) * (T // n)).flip(0)
    elif spacing == "linspace":
        idx = torch.round(torch.linspace(0, T - 1, n, dtype=torch.float64)).long().flip(0)
    else:
        raise ValueError(f"unknown spacing {spacing!r}")
    return idx[:n]


def uniform_t(n: int, t_start: float = 1.0, t_end: float = 0.0) -> Tensor:
    """n steps uniform in t from t_start down to t_end: n + 1 points."""
    return torch.linspace(t_start, t_end, n + 1, dtype=torch.float64)


def discrete_t(path, n: int, spacing: Spacing = "trailing") -> Tensor:
    """The DDPM steps of :func:`ddpm_timesteps` as times t = (i+1)/T of a ``DiscreteVP``, then t = 0."""
    t = path.t_of_index(ddpm_timesteps(path.T, n, spacing))
    return torch.cat([t, torch.zeros(1, dtype=torch.float64)])


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> Tensor:
    """Karras et al. 2022, Eq. 5: n noise levels from sigma_max to sigma_min, then sigma = 0.

    sigma_i = (sigma_max^(1/rho) + i / (n-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho.
    """
    if n < 1:
        raise ValueError(f"need n >= 1 steps, got {n}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return torch.cat([(hi + ramp * (lo - hi)) ** rho, torch.zeros(1, dtype=torch.float64)])


def karras_t(path, n: int, rho: float = 7.0, sigma_min: float | None = None,
             sigma_max: float | None = None) -> Tensor:
    """:func:`karras_sigmas` in the path's VE noise level sigma_t / alpha_t, mapped to t.

    The ends default to the path's usable range: sigma_ve(t_max) and sigma_ve(t_min)
    (DDPM linear: 157.4 and 0.0100, the values diffusers uses; flow path: 999 and 0.001).
    """
    sigma_min = float(path.sigma_ve(path.t_min)) if sigma_min is None else sigma_min
    sigma_max = float(path.sigma_ve(path.t_max)) if sigma_max is None else sigma_max
    return path.t_of_sigma_ve(karras_sigmas(n, sigma_min, sigma_max, rho))


def log_snr_t(path, n: int, lambda_min: float | None = None, lambda_max: float | None = None) -> Tensor:
    """n points uniform in lambda = log(alpha / sigma), then t = 0 (the 'logSNR' schedule of Lu et al. 2022).

    The ends default to lambda(t_max) and lambda(t_min).
    """
    if n < 1:
        raise ValueError(f"need n >= 1 steps, got {n}")
    lambda_min = float(path.log_snr(path.t_max)) if lambda_min is None else lambda_min
    lambda_max = float(path.log_snr(path.t_min)) if lambda_max is None else lambda_max
    t = path.t_of_log_snr(torch.linspace(lambda_min, lambda_max, n, dtype=torch.float64))
    return torch.cat([t, torch.zeros(1, dtype=torch.float64)])
