"""Gaussian probability paths x_t = alpha_t x_0 + sigma_t eps and the conversions between what a
network predicts (eps, x0, v, velocity) on them.

The ground floor of the model maths: :mod:`genbench.methods` trains on these paths and
:mod:`genbench.solvers` integrates along them, and both import this package at the top of their
files. It imports only torch, numpy, the standard library and :mod:`genbench.errors`.

* ``gaussian.py`` — :class:`DiscreteVP` (DDPM schedules), :class:`LinearPath` (conditional OT /
  rectified flow), :class:`VEPath` (EDM), their coefficients :class:`PathCoeffs` and :func:`q_sample`;
* ``conversions.py`` — :func:`to_x0_eps`, :func:`from_x0_eps`, :func:`convert` between the
  prediction kinds.
"""

from genbench.paths.conversions import Prediction, convert, from_x0_eps, to_x0_eps
from genbench.paths.gaussian import (
    DiscreteVP,
    LinearPath,
    PathCoeffs,
    VEPath,
    broadcast,
    cosine_betas,
    linear_betas,
    q_sample,
)

__all__ = [
    "DiscreteVP", "LinearPath", "PathCoeffs", "Prediction", "VEPath", "broadcast", "convert", "cosine_betas",
    "from_x0_eps", "linear_betas", "q_sample", "to_x0_eps",
]
