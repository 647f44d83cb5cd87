"""Few-step samplers: MeanFlow's average-velocity steps and the consistency models' multistep sampler.

``sample_meanflow`` (Geng et al. 2025, Eq. 12 and Alg. 2): with the average velocity u(z, r, t) of
the flow between times r < t, one step is exact for the ideal u: z_r = z_t - (t - r) u(z_t, r, t).
N steps walk a grid t_0 = t_max > t_1 > ... > t_N = 0, one network evaluation each (1 step: the
paper's 1-NFE sampler).

``sample_consistency`` (Song et al. 2023, Alg. 1, "multistep consistency sampling"): a consistency
function maps any x_t to its x0 in one evaluation; for k steps it is evaluated at t_0, its x0 is
re-noised to x_{t_1} = alpha_{t_1} x0 + sigma_{t_1} n with fresh noise n, evaluated again, and so on.
It works with any denoiser ``denoise(x_t, t) -> (x0, eps)`` (a diffusion or flow model's x0
prediction is a poor consistency function, but a well-defined one); N steps cost N evaluations.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from genbench.paths import broadcast
from genbench.solvers.base import Denoiser, NoiseFn, SolverResult, full_t, need_noise

# average(z, r, t) -> u, MeanFlow's network of two times
AverageVelocity = Callable[[Tensor, Tensor, Tensor], Tensor]


def sample_meanflow(average: AverageVelocity, x: Tensor, ts: Tensor) -> SolverResult:
    """z_{t_{i+1}} = z_{t_i} - (t_i - t_{i+1}) u(z_{t_i}, t_{i+1}, t_i) over the grid ``ts`` (float64,
    decreasing to 0)."""
    for t, r in zip(ts[:-1].tolist(), ts[1:].tolist(), strict=True):
        u = average(x, full_t(x, r), full_t(x, t))
        x = x - (t - r) * u.to(x.dtype)
    return SolverResult(x, len(ts) - 1)


def sample_consistency(denoise: Denoiser, x: Tensor, path, ts: Tensor, noise: NoiseFn | None) -> SolverResult:
    """Multistep consistency sampling on ``path`` over ``ts`` (the last entry, 0, is never evaluated)."""
    x0 = denoise(x, full_t(x, float(ts[0])))[0]
    for t in ts[1:-1].tolist():
        noise = need_noise(noise, "consistency sampling")
        c = path.coeffs(full_t(x, t))
        x = broadcast(c.alpha, x0).to(x0.dtype) * x0 + broadcast(c.sigma, x0).to(x0.dtype) * noise(x0)
        x0 = denoise(x, full_t(x, t))[0]
    return SolverResult(x0.to(x.dtype) if x0.dtype != x.dtype else x0, len(ts) - 1)


def has_average(model_fn) -> bool:
    return callable(getattr(model_fn, "average", None))


__all__ = ["AverageVelocity", "has_average", "sample_consistency", "sample_meanflow"]
