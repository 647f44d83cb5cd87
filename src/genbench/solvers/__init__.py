"""Samplers as pure functions of (model function, initial noise, time grid, options).

Every solver returns a :class:`SolverResult` with the exact number of network evaluations (NFE).
Time runs from ``path.t_max`` (noise) to 0 (data) on every path. Grids (``grids.py``) are float64
times, each built by its own function: ``uniform_t``; ``discrete_t`` / ``ddpm_timesteps`` (DDPM
steps, explicit spacing); ``karras_t`` (Karras et al. 2022, Eq. 5, rho = 7, in sigma_ve =
sigma/alpha, mapped to t); ``log_snr_t`` (uniform in lambda = log(alpha/sigma)). All end at t = 0.
``ode.py`` adapts one denoiser ``denoise(x_t, t) -> (x0, eps)`` to the probability-flow velocity,
the EDM denoiser D(x/alpha; sigma/alpha) and the reverse SDE.

The step into t = 0 (sigma = 0, lambda = +inf) is first order: DDIM, the DPM-Solver++/UniPC
exponential integrators, the Karras samplers and Euler–Maruyama return x0_hat there; Heun takes an
Euler step (Karras Alg. 1). RK4 and dopri5 evaluate at the end of a step, where a VP path's velocity
is singular, so they stop at ``path.t_min`` (1/T for DDPM, 1e-3 for the flow path); dopri5 then
takes one counted denoising step. On the flow path, lambda/sigma_ve grids start at t_max = 1 - 1e-3.

Solvers (registry name, function, order of convergence, NFE for N steps on a grid ending at 0)

=================  =========================  =====  ================================================
name               function                   order  NFE
=================  =========================  =====  ================================================
``ddpm``           sample_ddpm (Ho et al.)    SDE    N (= T, or respaced); DiscreteVP only
``ddim``           sample_ddim, sample_ddim_t 1      N (eta > 0: stochastic)
``euler``          sample_euler (t, velocity) 1      N
``heun``           sample_heun (t, velocity)  2      2N - 1 (last step Euler; Karras Alg. 1)
``midpoint``       sample_midpoint            2      2N
``rk4``            sample_rk4                 4      4N; ends at path.t_min (returns x(t_min))
``heun_ve``        sample_karras, churn 0     2      2N - 1 (Karras Alg. 1 in x/alpha, sigma/alpha)
``karras_sde``     sample_karras              SDE    2N - 1 (Karras Alg. 2; S_churn 40, S_tmin
                                                     0.05, S_tmax 50, S_noise 1.003 by default)
``dpm++2m``        sample_dpmpp_2m            2      N (Lu et al. 2022b, Alg. 2)
``dpm++2s``        sample_dpmpp_2s            2      2N - 1 (Lu et al. 2022b, Alg. 1, r = 1/2)
``unipc``          sample_unipc               3      N (Zhao et al. 2023, UniPC-bh2, order=2:
                                                     UniP-2 + UniC; order p gives p + 1)
``euler_maruyama`` sample_euler_maruyama      SDE    N (reverse SDE, Song et al. 2021 Eq. 6)
``dopri5``         sample_dopri5              5(4)   adaptive (rtol/atol), + 1 final denoise
``consistency``    sample_consistency         --     N (Song et al. 2023 Alg. 1: x0, re-noise, x0, ...)
``meanflow``       sample_meanflow            --     N (Geng et al. 2025 Eq. 12; MeanFlow models only)
=================  =========================  =====  ================================================

``solve(name, denoise, path, x_init, nfe, noise=None, **opts)`` picks the steps so that the NFE is
exactly ``nfe`` (``allowed_nfe(name, nfe)`` says whether it can; otherwise ValueError names the
allowed counts). Default grid: Karras for DiscreteVP, uniform t for LinearPath; trailing DDPM steps
for ddpm/ddim on DiscreteVP; log-SNR for euler_maruyama; Karras for heun_ve/karras_sde. ``grid=``
overrides it.
"""

from genbench.solvers.adaptive import sample_dopri5
from genbench.solvers.base import SolverResult
from genbench.solvers.ddim import sample_ddim, sample_ddim_t
from genbench.solvers.ddpm import sample_ddpm
from genbench.solvers.dpm_solver import sample_dpmpp_2m, sample_dpmpp_2s
from genbench.solvers.euler import sample_euler
from genbench.solvers.fewstep import sample_consistency, sample_meanflow
from genbench.solvers.grids import ddpm_timesteps, discrete_t, karras_sigmas, karras_t, log_snr_t, uniform_t
from genbench.solvers.karras import sample_karras
from genbench.solvers.ode import pf_velocity, reverse_sde, ve_denoiser
from genbench.solvers.registry import (
    AVERAGE_ONLY,
    DISCRETE_ONLY,
    GRIDS,
    NFE_RULES,
    SOLVERS,
    allowed_nfe,
    make_grid,
    solve,
    solver_names,
)
from genbench.solvers.rk import sample_heun, sample_midpoint, sample_rk4
from genbench.solvers.sde import sample_euler_maruyama
from genbench.solvers.unipc import sample_unipc

__all__ = [
    "AVERAGE_ONLY", "DISCRETE_ONLY", "GRIDS", "NFE_RULES", "SOLVERS", "SolverResult", "allowed_nfe", "ddpm_timesteps", "discrete_t",
    "karras_sigmas", "karras_t", "log_snr_t", "make_grid", "pf_velocity", "reverse_sde", "sample_consistency", "sample_ddim",
    "sample_ddim_t", "sample_ddpm", "sample_dopri5", "sample_dpmpp_2m", "sample_dpmpp_2s", "sample_euler",
    "sample_euler_maruyama", "sample_heun", "sample_karras", "sample_meanflow", "sample_midpoint", "sample_rk4", "sample_unipc",
    "solve", "solver_names", "uniform_t", "ve_denoiser",
]
