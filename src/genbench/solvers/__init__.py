"""Samplers as pure functions of (model function, initial noise, time grid, options).

Every solver returns a :class:`SolverResult` with the exact number of network evaluations.
"""

from genbench.solvers.base import SolverResult
from genbench.solvers.ddim import sample_ddim
from genbench.solvers.ddpm import sample_ddpm
from genbench.solvers.euler import sample_euler
from genbench.solvers.grids import ddpm_timesteps, uniform_t

__all__ = ["SolverResult", "ddpm_timesteps", "sample_ddim", "sample_ddpm", "sample_euler", "uniform_t"]
