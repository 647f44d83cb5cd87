"""genbench's solvers against diffusers' schedulers on the same eps-model, schedule and timesteps.

Conventions lined up (diffusers 0.3x-0.4x):
* diffusers' timestep k in {0..T-1} indexes ``alphas_cumprod`` exactly like genbench's DDPM step i,
  which sits at continuous time t = (k + 1) / T; the eps-model takes k, genbench's denoiser maps
  t back to k (and checks that t is on a step).
* ``timestep_spacing="trailing"`` (or ``"leading"`` for DDIM) is mirrored by ``ddpm_timesteps`` /
  ``discrete_t`` with the same spacing; n divides T, so DDIM's ``prev_timestep = k - T // n`` is
  the next kept step, as in genbench.
* Euler/Heun discrete schedulers integrate x_hat = x / alpha = x sqrt(1 + sigma^2) and call the
  model on x_hat / sqrt(1 + sigma^2) = x; genbench's ``sample_karras`` takes and returns x, so
  diffusers starts from x_T sqrt(1 + sigma_max^2) and both end at sigma = 0, where x_hat = x.
* DPM-Solver++ and UniPC: ``final_sigmas_type="zero"`` makes diffusers' last update first order,
  i.e. x0_hat, which is genbench's step into t = 0; UniPC's ``lower_order_final`` lowers the order
  to the number of remaining steps, as genbench does on grids that end at t = 0.
* Karras sigmas (``use_karras_sigmas=True``): diffusers maps a sigma between two steps to a
  fractional timestep by interpolating log sigma linearly in the step index, genbench by
  interpolating log alpha linearly in t. Both are exact on the steps and differ between them, so
  a model that depends on its (fractional) timestep cannot agree there. The closest well-defined
  test uses a model that depends on the noise level sigma itself (as EDM's c_noise does); it pins
  the Karras sigmas, the sigma <-> t round trip and the VE stepping. (DPM-Solver++ with Karras
  sigmas also rounds the timestep given to the model, so it is not compared.)
diffusers computes in float32, so agreement is to ~1e-6; the bound is 1e-4 max abs.
"""

from __future__ import annotations

import torch

from genbench.paths import DiscreteVP, linear_betas, to_x0_eps
from genbench.solvers import (
    ddpm_timesteps,
    discrete_t,
    karras_t,
    sample_ddim,
    sample_ddim_t,
    sample_dpmpp_2m,
    sample_karras,
    sample_unipc,
)

diffusers = __import__("pytest").importorskip("diffusers")
import pytest  # noqa: E402

T = 1000
PATH = DiscreteVP(linear_betas(T))
CONFIG = dict(num_train_timesteps=T, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
TOL = 1e-4

_g = torch.Generator().manual_seed(0)
W = torch.randn(3, 3, generator=_g, dtype=torch.float64) / 3**0.5
X_T = torch.randn(2, 3, 4, 4, generator=_g, dtype=torch.float64)


def eps_of(x: torch.Tensor, abar: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """A smooth, nonlinear eps-model: roughly right for unit-variance data, plus a mixing term."""
    x = x.double()
    mix = torch.tanh(torch.einsum("ij,bjhw->bihw", W, x))
    return (1 - abar).sqrt() * x + abar.sqrt() * (0.3 * mix + 0.1 * torch.sin(c))


def eps_model(x: torch.Tensor, k: int) -> torch.Tensor:
    """The eps-model on diffusers' integer timestep k."""
    k = torch.tensor(float(k), dtype=torch.float64)
    return eps_of(x, PATH.alphas_cumprod[int(k)], k / 50).to(x.dtype)


def genbench_denoiser(x: torch.Tensor, t: torch.Tensor):
    """The same model as genbench sees it: t = (k + 1) / T, converted to (x0, eps)."""
    k = torch.round(t.double() * T - 1)
    assert torch.allclose(k, t.double() * T - 1, atol=1e-6), "evaluated off the DDPM steps"
    return to_x0_eps(eps_model(x, int(k[0])), "eps", x, PATH.coeffs_f64(t))


def run_diffusers(scheduler, x: torch.Tensor, model) -> torch.Tensor:
    """The usual diffusers loop: scale the input, call the model, step."""
    x = x.float()
    for t in scheduler.timesteps:
        x_in = scheduler.scale_model_input(x, t)
        x = scheduler.step(model(x_in, t, scheduler), t, x).prev_sample
    return x.double()


def on_timestep(x, t, scheduler):
    return eps_model(x, int(round(float(t))))


@pytest.mark.parametrize("spacing", ["trailing", "leading"])
def test_ddim_agrees_with_ddim_scheduler(spacing):
    n = 10
    sched = diffusers.DDIMScheduler(**CONFIG, timestep_spacing=spacing, clip_sample=False,
                                    set_alpha_to_one=True)
    sched.set_timesteps(n)
    assert sched.timesteps.tolist() == ddpm_timesteps(T, n, spacing).tolist()
    ref = run_diffusers(sched, X_T, on_timestep)
    ours = sample_ddim(genbench_denoiser, X_T, PATH.alphas_cumprod, ddpm_timesteps(T, n, spacing))
    assert ours.nfe == n and (ours.x - ref).abs().max() < TOL
    ours_t = sample_ddim_t(genbench_denoiser, X_T, PATH, discrete_t(PATH, n, spacing))
    assert (ours_t.x - ref).abs().max() < TOL


@pytest.mark.parametrize("n", [10, 20])  # diffusers' lower_order_final rule changes at 15 steps
def test_dpm_solver_pp_2m_agrees_with_dpm_solver_multistep_scheduler(n):
    sched = diffusers.DPMSolverMultistepScheduler(
        **CONFIG, timestep_spacing="trailing", solver_order=2, algorithm_type="dpmsolver++",
        solver_type="midpoint", final_sigmas_type="zero", lower_order_final=True)
    sched.set_timesteps(n)
    ref = run_diffusers(sched, X_T, on_timestep)
    ours = sample_dpmpp_2m(genbench_denoiser, X_T, PATH, discrete_t(PATH, n))
    assert ours.nfe == n and (ours.x - ref).abs().max() < TOL


@pytest.mark.parametrize(("n", "order"), [(10, 2), (20, 2), (10, 1), (10, 3)])
def test_unipc_agrees_with_unipc_multistep_scheduler(n, order):
    sched = diffusers.UniPCMultistepScheduler(
        **CONFIG, timestep_spacing="trailing", solver_order=order, solver_type="bh2", predict_x0=True,
        lower_order_final=True, final_sigmas_type="zero")
    sched.set_timesteps(n)
    ref = run_diffusers(sched, X_T, on_timestep)
    ours = sample_unipc(genbench_denoiser, X_T, PATH, discrete_t(PATH, n), order=order)
    assert ours.nfe == n and (ours.x - ref).abs().max() < TOL


def ve_start(sched) -> torch.Tensor:
    """x_hat at sigma_max for diffusers' Euler/Heun: x_T / alpha_T."""
    return X_T * (1 + sched.sigmas[0].double() ** 2).sqrt()


@pytest.mark.parametrize(("name", "second_order", "nfe"), [("EulerDiscreteScheduler", False, 10),
                                                           ("HeunDiscreteScheduler", True, 19)])
def test_euler_and_heun_agree_with_the_discrete_schedulers(name, second_order, nfe):
    n = 10
    sched = getattr(diffusers, name)(**CONFIG, timestep_spacing="trailing")
    sched.set_timesteps(n)
    ref = run_diffusers(sched, ve_start(sched), on_timestep)
    ours = sample_karras(genbench_denoiser, X_T, PATH, discrete_t(PATH, n), second_order=second_order)
    assert ours.nfe == nfe and (ours.x - ref).abs().max() < TOL


def on_sigma_diffusers(x, t, scheduler):
    sigma = scheduler.sigmas[scheduler.step_index].double()
    return eps_of(x, 1 / (1 + sigma**2), sigma).float()


def on_sigma_genbench(x, t):
    sigma = PATH.sigma_ve(t[:1]).to(x)
    return to_x0_eps(eps_of(x, 1 / (1 + sigma**2), sigma), "eps", x, PATH.coeffs_f64(t))


@pytest.mark.parametrize(("name", "second_order"), [("EulerDiscreteScheduler", False),
                                                    ("HeunDiscreteScheduler", True)])
def test_karras_sigmas_agree_for_a_model_of_the_noise_level(name, second_order):
    n = 12
    # linspace spacing ends at step 0, so diffusers' Karras range is [sigma(step 0), sigma(step T-1)],
    # genbench's [sigma_ve(t_min), sigma_ve(t_max)]
    sched = getattr(diffusers, name)(**CONFIG, timestep_spacing="linspace", use_karras_sigmas=True)
    # diffusers' float32 alphas_cumprod puts sigma(step 0) = sqrt((1 - abar_0) / abar_0), the Karras
    # sigma_min, 8e-5 (relative) off the float64 schedule (1 - abar_0 = 1e-4 is 1700 float32 ulps);
    # hand it the float64 table so that both build the same Karras sigmas
    sched.alphas_cumprod = PATH.alphas_cumprod.clone()
    sched.set_timesteps(n)
    ts = karras_t(PATH, n)
    assert torch.allclose(PATH.sigma_ve(ts).float(), sched.sigmas.unique_consecutive(), rtol=1e-6)
    ref = run_diffusers(sched, ve_start(sched), on_sigma_diffusers)
    ours = sample_karras(on_sigma_genbench, X_T, PATH, ts, second_order=second_order)
    assert (ours.x - ref).abs().max() < TOL
