"""Explicit conversions between what a network predicts: eps, x0, v and velocity.

For x_t = alpha x_0 + sigma eps (any path of :mod:`genbench.paths.gaussian`):

* ``eps``      — the noise (Ho et al. 2020, Eq. 14);
* ``x0``       — the clean data;
* ``v``        — v = alpha eps - sigma x_0 (Salimans & Ho 2022, Sec. 4; here for general
  alpha, sigma, so x_0 = (alpha x_t - sigma v) / (alpha^2 + sigma^2));
* ``velocity`` — u = dx_t/dt = alpha' x_0 + sigma' eps (Lipman et al. 2022, Eq. 15 in this
  time direction), the flow-matching target.

Every prediction converts to the pair (x_0, eps), and back; solvers work from that pair.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from genbench.paths.gaussian import PathCoeffs, broadcast

Prediction = Literal["eps", "x0", "v", "velocity"]


def to_x0_eps(pred: Tensor, kind: Prediction, x_t: Tensor, c: PathCoeffs) -> tuple[Tensor, Tensor]:
    """Recover (x_0, eps) from a prediction of the given kind at x_t."""
    a, s = broadcast(c.alpha, x_t), broadcast(c.sigma, x_t)
    if kind == "eps":
        return (x_t - s * pred) / a, pred
    if kind == "x0":
        return pred, (x_t - a * pred) / s
    if kind == "v":
        norm = a * a + s * s
        return (a * x_t - s * pred) / norm, (s * x_t + a * pred) / norm
    if kind == "velocity":
        da, ds = broadcast(c.d_alpha, x_t), broadcast(c.d_sigma, x_t)
        det = a * ds - s * da
        return (ds * x_t - s * pred) / det, (a * pred - da * x_t) / det
    raise ValueError(f"unknown prediction kind {kind!r}")


def from_x0_eps(x0: Tensor, eps: Tensor, kind: Prediction, c: PathCoeffs) -> Tensor:
    """The quantity of the given kind for a known (x_0, eps) pair: the regression target."""
    if kind == "eps":
        return eps
    if kind == "x0":
        return x0
    a, s = broadcast(c.alpha, x0), broadcast(c.sigma, x0)
    if kind == "v":
        return a * eps - s * x0
    if kind == "velocity":
        return broadcast(c.d_alpha, x0) * x0 + broadcast(c.d_sigma, x0) * eps
    raise ValueError(f"unknown prediction kind {kind!r}")


def convert(pred: Tensor, src: Prediction, dst: Prediction, x_t: Tensor, c: PathCoeffs) -> Tensor:
    """Turn a prediction of kind ``src`` into the equivalent prediction of kind ``dst``."""
    if src == dst:
        return pred
    return from_x0_eps(*to_x0_eps(pred, src, x_t, c), dst, c)
