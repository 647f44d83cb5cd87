"""Solvers by name: each picks its grid and the number of steps that give a requested NFE.

``SOLVERS[name](denoise, path, x_init, steps, noise=None, **opts)`` runs ``steps`` steps on the
solver's default grid (or ``grid=`` one of :data:`GRIDS`); :func:`solve` turns an NFE budget into
steps, exactly, or refuses. ``denoise(x_t, t) -> (x0, eps)`` is ``ModelFn.denoise`` for diffusion
and flow models alike; ``path`` is their ``DiscreteVP`` or ``LinearPath``.

This registry is the one list of the solvers that exist; :func:`solver_names` says which of them fit
a path. ``genbench.config`` mirrors those names per method as torch-free literals (so that configs
validate without torch), and a test holds the mirror equal to :func:`solver_names`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from genbench.paths import DiscreteVP, VEPath
from genbench.solvers.adaptive import sample_dopri5
from genbench.solvers.base import Denoiser, NoiseFn, SolverResult
from genbench.solvers.ddim import sample_ddim, sample_ddim_t
from genbench.solvers.ddpm import sample_ddpm
from genbench.solvers.dpm_solver import sample_dpmpp_2m, sample_dpmpp_2s
from genbench.solvers.euler import sample_euler
from genbench.solvers.fewstep import sample_consistency, sample_meanflow
from genbench.solvers.grids import ddpm_timesteps, discrete_t, karras_t, log_snr_t, uniform_t
from genbench.solvers.karras import sample_karras
from genbench.solvers.ode import pf_velocity
from genbench.solvers.rk import sample_heun, sample_midpoint, sample_rk4
from genbench.solvers.sde import sample_euler_maruyama
from genbench.solvers.unipc import sample_unipc

GRIDS: dict[str, Callable[..., Tensor]] = {
    "uniform_t": lambda path, n: uniform_t(n, path.t_max, 0.0),
    "karras": karras_t,      # rho = 7
    "log_snr": log_snr_t,
    "discrete": discrete_t,  # trailing DDPM steps (DiscreteVP only)
}


def default_grid(path) -> str:
    """Karras sigmas for diffusion paths (DDPM's VP, EDM's VE), as in EDM; uniform t for flow paths,
    as flow matching does."""
    return "karras" if isinstance(path, (DiscreteVP, VEPath)) else "uniform_t"


def make_grid(name: str | None, path, n: int) -> Tensor:
    """Grid ``name`` (None: :func:`default_grid`) with n steps: n + 1 times, the last one 0."""
    name = name or default_grid(path)
    if name not in GRIDS:
        raise ValueError(f"unknown grid {name!r}; choose from {sorted(GRIDS)}")
    return GRIDS[name](path, n)


def _grid_to_t_min(name: str | None, path, n: int) -> Tensor:
    """n steps of the grid that end at its last positive time (t_min) instead of jumping to 0."""
    if (name or default_grid(path)) == "uniform_t":
        return uniform_t(n, path.t_max, path.t_min)
    return make_grid(name, path, n + 1)[:-1]


def _velocity(sampler, to_t_min: bool = False):
    def run(denoise: Denoiser, path, x: Tensor, steps: int, noise=None, grid: str | None = None):
        ts = _grid_to_t_min(grid, path, steps) if to_t_min else make_grid(grid, path, steps)
        return sampler(pf_velocity(denoise, path), x, ts)
    return run


def _ddpm(denoise, path, x, steps, noise=None, spacing="trailing"):
    if not isinstance(path, DiscreteVP):
        raise ValueError("ddpm needs a DiscreteVP path")
    if steps > path.T:
        raise ValueError(f"ddpm has at most T = {path.T} steps, got {steps}")
    idx = None if steps == path.T else ddpm_timesteps(path.T, steps, spacing)
    return sample_ddpm(denoise, x, path.alphas_cumprod, noise, idx)


def _ddim(denoise, path, x, steps, noise=None, grid=None, eta=0.0, spacing="trailing"):
    if isinstance(path, DiscreteVP) and grid in (None, "discrete"):
        idx = ddpm_timesteps(path.T, steps, spacing)
        return sample_ddim(denoise, x, path.alphas_cumprod, idx, eta, noise)
    return sample_ddim_t(denoise, x, path, make_grid(grid, path, steps), eta, noise)


def _karras(churn: float):
    def run(denoise, path, x, steps, noise=None, grid="karras", s_churn=churn, s_tmin=0.05, s_tmax=50.0,
            s_noise=1.003 if churn else 1.0):
        ts = make_grid(grid, path, steps)
        return sample_karras(denoise, x, path, ts, s_churn, s_tmin, s_tmax, s_noise, noise)
    return run


def _on_grid(sampler):
    def run(denoise, path, x, steps, noise=None, grid=None, **opts):
        return sampler(denoise, x, path, make_grid(grid, path, steps), **opts)
    return run


def _em(denoise, path, x, steps, noise=None, grid="log_snr"):
    return sample_euler_maruyama(denoise, x, path, make_grid(grid, path, steps), noise)


def _consistency(denoise, path, x, steps, noise=None, grid=None):
    return sample_consistency(denoise, x, path, make_grid(grid, path, steps), noise)


def _meanflow(model_fn, path, x, steps, noise=None, grid=None):
    """``model_fn`` must carry MeanFlow's average velocity (``model_fn.average(z, r, t)``). Default grid:
    uniform from t = 1 itself (x_init ~ N(0, I) is z_1 exactly on the path with sigma_min = 0; MeanFlow is
    trained up to t = 1) to 0."""
    average = getattr(model_fn, "average", None)
    if not callable(average):
        raise ValueError("the meanflow solver needs a MeanFlow model (an average velocity u(z, r, t))")
    return sample_meanflow(average, x, uniform_t(steps, 1.0, 0.0) if grid is None else make_grid(grid, path, steps))


def _dopri5(denoise, path, x, steps=None, noise=None, rtol=1e-5, atol=1e-5, denoise_last=True):
    return sample_dopri5(denoise, x, path, path.t_max, path.t_min, rtol, atol, denoise_last)


SOLVERS: dict[str, Callable[..., SolverResult]] = {
    "ddpm": _ddpm,
    "ddim": _ddim,
    "euler": _velocity(sample_euler),
    "heun": _velocity(sample_heun),
    "midpoint": _velocity(sample_midpoint),
    "rk4": _velocity(sample_rk4, to_t_min=True),
    "heun_ve": _karras(0.0),
    "karras_sde": _karras(40.0),
    "dpm++2m": _on_grid(sample_dpmpp_2m),
    "dpm++2s": _on_grid(sample_dpmpp_2s),
    "unipc": _on_grid(sample_unipc),
    "euler_maruyama": _em,
    "dopri5": _dopri5,
    "consistency": _consistency,
    "meanflow": _meanflow,
}

# The solvers that walk a DiscreteVP's own steps (its alphas_cumprod); every other one integrates
# any path of genbench.paths.
DISCRETE_ONLY = frozenset({"ddpm"})
# The solvers that need a model of two times (MeanFlow's average velocity), not a denoiser.
AVERAGE_ONLY = frozenset({"meanflow"})


def solver_names(path, average: bool = False) -> tuple[str, ...]:
    """The solvers that can sample on ``path``, in registry order: all of them on a ``DiscreteVP``,
    all but :data:`DISCRETE_ONLY` on any other path; :data:`AVERAGE_ONLY` only for a model with an
    average velocity (``average``)."""
    discrete = isinstance(path, DiscreteVP)
    return tuple(name for name in SOLVERS if (discrete or name not in DISCRETE_ONLY)
                 and (average or name not in AVERAGE_ONLY))


class NfeRule(NamedTuple):
    """NFE = per_step * N + offset for N >= 1 steps."""

    per_step: int
    offset: int

    def steps(self, nfe: int) -> int | None:
        n, rest = divmod(nfe - self.offset, self.per_step)
        return n if rest == 0 and n >= 1 else None

    def describe(self, nfe: int) -> str:
        """The rule, its first counts and the allowed counts nearest to ``nfe``."""
        first = [self.per_step * n + self.offset for n in (1, 2, 3)]
        sign = f" {'+' if self.offset > 0 else '-'} {abs(self.offset)}" if self.offset else ""
        n = max((nfe - self.offset) // self.per_step, 1)
        near = sorted({self.per_step * k + self.offset for k in (n, n + 1) if k >= 1})
        return (f"NFE = {self.per_step}N{sign} for N >= 1 steps ({', '.join(map(str, first))}, ...); "
                f"nearest: {' or '.join(map(str, near))}")


NFE_RULES: dict[str, NfeRule] = {
    **{name: NfeRule(1, 0) for name in ("ddpm", "ddim", "euler", "dpm++2m", "unipc", "euler_maruyama",
                                        "consistency", "meanflow")},
    **{name: NfeRule(2, -1) for name in ("heun", "heun_ve", "karras_sde", "dpm++2s")},
    "midpoint": NfeRule(2, 0),
    "rk4": NfeRule(4, 0),
}


def allowed_nfe(name: str, nfe: int) -> bool:
    """Whether :func:`solve` can make exactly ``nfe`` evaluations with solver ``name`` (never for dopri5)."""
    rule = NFE_RULES.get(_known(name))
    return rule is not None and rule.steps(nfe) is not None


def solve(name: str, model_fn: Denoiser, path, x_init: Tensor, nfe: int | None, noise: NoiseFn | None = None,
          **opts) -> SolverResult:
    """Sample with solver ``name`` in exactly ``nfe`` network evaluations.

    ``model_fn`` is a denoiser ``(x_t, t) -> (x0, eps)``; ``noise(x) -> randn_like(x)`` feeds the
    stochastic solvers (default ``torch.randn_like``); ``opts`` go to the solver (``grid=``,
    ``eta=``, ``s_churn=``, ``rtol=``, ...). dopri5 chooses its own steps: pass ``nfe=None`` and
    read ``result.nfe``. Raises ValueError, naming the allowed counts, when ``nfe`` cannot be met.
    """
    run = SOLVERS[_known(name)]
    noise = noise or torch.randn_like
    if name == "dopri5":
        if nfe is not None:
            raise ValueError("dopri5 sets its own number of evaluations: pass nfe=None and rtol/atol")
        return run(model_fn, path, x_init, None, noise, **opts)
    rule = NFE_RULES[name]
    steps = None if nfe is None else rule.steps(nfe)
    if steps is None:
        raise ValueError(f"{name} cannot make exactly {nfe} evaluations: {rule.describe(nfe or 1)}")
    result = run(model_fn, path, x_init, steps, noise, **opts)
    if result.nfe != nfe:  # the rule and the solver disagree: a bug, never a silent budget change
        raise RuntimeError(f"{name} made {result.nfe} evaluations, expected {nfe}")
    return result


def _known(name: str) -> str:
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; choose from {sorted(SOLVERS)}")
    return name
