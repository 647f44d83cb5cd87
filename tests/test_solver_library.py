"""The few-step solver library: grids, orders of convergence, exact NFE, sampling of a Gaussian.

Gaussian data N(MU, S^2) has the exact denoiser E[x0 | x_t] = MU + a S^2 / (a^2 S^2 + s^2) (x_t - a MU)
and a probability-flow ODE whose solution keeps (x_t - a MU) / sqrt(a^2 S^2 + s^2) constant, so every
solver can be checked against a closed form.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genbench.config import DiffusionConfig, FlowConfig, solvers_for
from genbench.methods import build_method
from genbench.paths import DiscreteVP, LinearPath, cosine_betas, linear_betas
from genbench.randomness import SeededNoise
from genbench.solvers import (
    NFE_RULES,
    SOLVERS,
    allowed_nfe,
    discrete_t,
    karras_sigmas,
    karras_t,
    log_snr_t,
    pf_velocity,
    sample_dopri5,
    sample_dpmpp_2m,
    sample_dpmpp_2s,
    sample_euler,
    sample_heun,
    sample_karras,
    sample_midpoint,
    sample_rk4,
    sample_unipc,
    solve,
    solver_names,
    uniform_t,
)

MU, S = 0.5, 0.3
VP = DiscreteVP(linear_betas(1000))
FLOW = LinearPath()
PATHS = pytest.mark.parametrize("path", [VP, FLOW], ids=["vp", "flow"])


def gaussian_denoiser(path):
    """Exact (x0, eps) for Gaussian data, in float64, counting its calls."""
    calls = []

    def denoise(x, t):
        calls.append(len(x))
        assert torch.all(t == t[0])  # the solvers evaluate one time per batch
        c = path.coeffs_f64(t[:1])
        a, s = c.alpha.to(x), c.sigma.to(x)
        var = a * a * S * S + s * s
        return MU + a * S * S / var * (x - a * MU), s / var * (x - a * MU)

    return denoise, calls


def exact_flow(path, x, t_from: float, t_to: float):
    """Solution of the probability-flow ODE of Gaussian data from t_from to t_to."""
    (a, s), (a2, s2) = ([float(v) for v in path.coeffs_f64(t)[:2]] for t in (t_from, t_to))
    return a2 * MU + math.sqrt(a2 * a2 * S * S + s2 * s2) * (x - a * MU) / math.sqrt(a * a * S * S + s * s)


X = torch.linspace(-3, 3, 13, dtype=torch.float64)[:, None]


def order(errors: list[float], steps: list[int]) -> float:
    """Slope of log error against log step size (step size ~ 1 / steps)."""
    return -np.polyfit(np.log(steps), np.log(errors), 1)[0]


# --- paths: log-SNR and VE noise level ------------------------------------------------------------
@pytest.mark.parametrize("path", [VP, DiscreteVP(cosine_betas(1000)), FLOW, LinearPath(0.01)],
                         ids=["vp", "cosine", "flow", "flow-smin"])
def test_t_of_log_snr_and_t_of_sigma_ve_invert_the_path(path):
    t = torch.linspace(path.t_min, path.t_max, 997, dtype=torch.float64)
    assert torch.all(torch.diff(path.log_snr(t)) < 0)
    assert (path.t_of_log_snr(path.log_snr(t)) - t).abs().max() < 1e-6
    assert (path.t_of_sigma_ve(path.sigma_ve(t)) - t).abs().max() < 1e-6
    c = path.coeffs_f64(t)
    assert torch.allclose(path.log_snr(t), torch.log(c.alpha / c.sigma), rtol=1e-9)
    assert torch.allclose(path.sigma_ve(t), c.sigma / c.alpha, rtol=1e-9)
    assert path.t_of_sigma_ve(0.0).item() == 0.0 and path.t_of_log_snr(math.inf).item() == 0.0


def test_log_snr_of_the_flow_path_has_the_closed_form_inverse():
    lam = torch.linspace(-6, 6, 25, dtype=torch.float64)
    assert torch.allclose(FLOW.t_of_log_snr(lam), 1 / (1 + torch.exp(lam)), atol=1e-12)
    assert FLOW.sigma_ve(FLOW.t_max).item() == pytest.approx(999, rel=1e-4)  # t_max = 1 - 1e-3


# --- grids ----------------------------------------------------------------------------------------
@PATHS
def test_karras_grid_ends_and_monotonicity(path):
    ts = karras_t(path, 12)
    assert ts.dtype == torch.float64 and len(ts) == 13
    assert ts[0].item() == pytest.approx(path.t_max, abs=1e-9)
    assert ts[-2].item() == pytest.approx(path.t_min, abs=1e-9) and ts[-1].item() == 0.0
    assert torch.all(torch.diff(ts) < 0)
    sig = karras_sigmas(12, float(path.sigma_ve(path.t_min)), float(path.sigma_ve(path.t_max)))
    assert torch.allclose(path.sigma_ve(ts[:-1]), sig[:-1], rtol=1e-9)
    # Karras et al. Eq. 5: sigma^(1/rho) is uniform
    assert torch.allclose(torch.diff(sig[:-1] ** (1 / 7)), torch.diff(sig[:-1] ** (1 / 7))[0].expand(11))


def test_karras_sigmas_of_the_ddpm_schedule():
    sig = VP.sigma_ve(karras_t(VP, 5))
    assert sig[0].item() == pytest.approx(157.4073, rel=1e-5)  # sqrt((1 - abar_999) / abar_999)
    assert sig[-2].item() == pytest.approx(math.sqrt(1e-4 / (1 - 1e-4)), rel=1e-9)
    assert sig[-1].item() == 0.0


@PATHS
def test_log_snr_grid_is_uniform_in_lambda(path):
    ts = log_snr_t(path, 9)
    lam = path.log_snr(ts[:-1])
    assert torch.allclose(torch.diff(lam), torch.diff(lam)[0].expand(8), rtol=1e-9)
    assert lam[0].item() == pytest.approx(float(path.log_snr(path.t_max)))
    assert lam[-1].item() == pytest.approx(float(path.log_snr(path.t_min)))
    assert ts[-1].item() == 0.0 and torch.all(torch.diff(ts) < 0)


def test_discrete_grid_is_the_ddpm_steps():
    ts = discrete_t(VP, 4)
    assert ts.tolist() == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])


# --- orders of convergence ------------------------------------------------------------------------
@pytest.mark.parametrize(("sampler", "expected"), [(sample_euler, 1), (sample_heun, 2), (sample_midpoint, 2),
                                                   (sample_rk4, 4)], ids=["euler", "heun", "midpoint", "rk4"])
def test_runge_kutta_orders_on_a_linear_ode(sampler, expected):
    # dx/dt = (1 + t^2) x: x(t) = x(1) exp(t + t^3/3 - 4/3); from t = 1 to 0.1
    def velocity(x, t):
        return (1 + t**2)[:, None] * x

    exact = X * math.exp(0.1 + 0.1**3 / 3 - 4 / 3)
    steps = [8, 16, 32, 64]
    errors = [(sampler(velocity, X, uniform_t(n, 1.0, 0.1)).x - exact).abs().max().item() for n in steps]
    assert order(errors, steps) == pytest.approx(expected, abs=0.3)


def lambda_grid(path, n, t_from, t_to):
    lam = torch.linspace(float(path.log_snr(t_from)), float(path.log_snr(t_to)), n + 1, dtype=torch.float64)
    return path.t_of_log_snr(lam)


ORDER_CASES = {
    # name: (solver on (denoise, x, path, grid), grid(path, n, t_from, t_to))
    "dpm++2m": (sample_dpmpp_2m, lambda_grid),
    "dpm++2s": (sample_dpmpp_2s, lambda_grid),
    "unipc": (sample_unipc, lambda_grid),  # UniP-2 + UniC: order 3
    "heun_ve": (sample_karras, lambda_grid),  # Karras Alg. 1 in x / alpha, sigma / alpha
    "heun_t": (lambda d, x, p, ts: sample_heun(pf_velocity(d, p), x, ts),
               lambda p, n, t_from, t_to: uniform_t(n, t_from, t_to)),
}


@pytest.mark.parametrize("name", list(ORDER_CASES))
@PATHS
def test_solver_orders_on_the_gaussian_probability_flow(path, name):
    if name == "heun_t" and path is VP:
        pytest.skip("in t, the VP velocity has kinks at every DDPM step (log alpha piecewise linear)")
    solver, grid = ORDER_CASES[name]
    steps = [32, 64, 128, 256]
    t_from, t_to = path.t_max, 0.01
    exact = exact_flow(path, X, t_from, t_to)
    errors = []
    for n in steps:
        denoise, _ = gaussian_denoiser(path)
        errors.append((solver(denoise, X, path, grid(path, n, t_from, t_to)).x - exact).abs().max().item())
    assert order(errors, steps) == pytest.approx(3 if name == "unipc" else 2, abs=0.3)


# --- every solver samples the Gaussian, in exactly the requested NFE ------------------------------
NFE = {"ddpm": 250, "ddim": 201, "euler": 61, "heun": 41, "midpoint": 60, "rk4": 40, "heun_ve": 101,
       "karras_sde": 201, "dpm++2m": 41, "dpm++2s": 41, "unipc": 41, "euler_maruyama": 201, "dopri5": None}


# consistency sampling and MeanFlow's steps need a consistency function / an average velocity, not a
# denoiser: tests/test_meanflow.py samples the Gaussian with the exact ones
@pytest.mark.parametrize("name", [n for n in SOLVERS if n not in ("consistency", "meanflow")])
@PATHS
def test_every_solver_samples_the_gaussian_in_the_requested_nfe(path, name):
    if name == "ddpm" and path is FLOW:
        with pytest.raises(ValueError, match="DiscreteVP"):
            solve(name, gaussian_denoiser(path)[0], path, X, 10)
        return
    denoise, calls = gaussian_denoiser(path)
    torch.manual_seed(0)
    x = torch.randn(2000, 2, dtype=torch.float64)
    result = solve(name, denoise, path, x, NFE[name])
    assert result.nfe == len(calls)
    if NFE[name] is not None:
        assert result.nfe == NFE[name]
    assert result.x.mean().item() == pytest.approx(MU, abs=0.02)
    assert result.x.std().item() == pytest.approx(S, rel=0.05)


@pytest.mark.parametrize("name", [n for n in SOLVERS if n not in ("dopri5", "meanflow")])   # meanflow: test_meanflow
def test_nfe_is_exact_for_every_allowed_count(name):
    rule = NFE_RULES[name]
    for nfe in range(1, 14):
        if not allowed_nfe(name, nfe):
            with pytest.raises(ValueError, match="cannot make exactly"):
                solve(name, gaussian_denoiser(VP)[0], VP, X, nfe)
            continue
        denoise, calls = gaussian_denoiser(VP)
        assert solve(name, denoise, VP, X, nfe).nfe == nfe
        assert len(calls) == nfe == rule.per_step * rule.steps(nfe) + rule.offset


def test_config_literals_mirror_the_registry():
    """config's torch-free solver literals name exactly the registry's solvers that fit each method's
    path, in registry order: all of them for diffusion (DiscreteVP), all but ddpm for flow."""
    paths = {kind: build_method(cfg()).path for kind, cfg in (("diffusion", DiffusionConfig), ("flow", FlowConfig))}
    assert solvers_for("diffusion") == solver_names(paths["diffusion"]) == tuple(n for n in SOLVERS if n != "meanflow")
    assert solvers_for("flow") == solver_names(paths["flow"]) == tuple(n for n in SOLVERS if n not in ("ddpm", "meanflow"))
    assert solvers_for("meanflow") == solver_names(paths["flow"], average=True)
    assert solvers_for("edm") == solvers_for("ect") == solvers_for("flow")
    assert solvers_for("gan") == ()
    assert set(NFE_RULES) == set(SOLVERS) - {"dopri5"}  # dopri5 alone picks its own evaluations


def test_allowed_nfe_rules():
    assert allowed_nfe("heun", 9) and not allowed_nfe("heun", 10)
    assert allowed_nfe("midpoint", 10) and not allowed_nfe("midpoint", 9)
    assert allowed_nfe("rk4", 8) and not allowed_nfe("rk4", 10)
    assert allowed_nfe("dpm++2m", 1) and not allowed_nfe("dopri5", 10)
    with pytest.raises(ValueError, match="unknown solver"):
        allowed_nfe("plms", 10)
    with pytest.raises(ValueError, match="nfe=None"):
        solve("dopri5", gaussian_denoiser(VP)[0], VP, X, 20)


# --- adaptive solver ------------------------------------------------------------------------------
def test_dopri5_at_tight_tolerance_matches_rk4_with_many_steps():
    denoise, calls = gaussian_denoiser(FLOW)
    res = sample_dopri5(denoise, X, FLOW, FLOW.t_max, FLOW.t_min, rtol=1e-9, atol=1e-9, denoise_last=False)
    assert res.nfe == len(calls) and res.nfe % 6 == 2  # 2 for the first step size, 6 per (rejected) step
    rk4 = sample_rk4(pf_velocity(denoise, FLOW), X, uniform_t(200, FLOW.t_max, FLOW.t_min)).x
    assert (res.x - rk4).abs().max() < 1e-8
    assert (res.x - exact_flow(FLOW, X, FLOW.t_max, FLOW.t_min)).abs().max() < 1e-7


def test_dopri5_on_the_vp_path_ends_with_one_counted_denoising_step():
    denoise, calls = gaussian_denoiser(VP)
    res = sample_dopri5(denoise, X, VP, VP.t_max, VP.t_min, rtol=1e-7, atol=1e-7)
    assert res.nfe == len(calls)
    # x0_hat at t_min = 1/T differs from the ODE's t = 0 by O(sigma(t_min)^2 / S^2) = 1e-3 relative
    assert (res.x - exact_flow(VP, X, VP.t_max, 0.0)).abs().max() < 3e-3


# --- stochastic solvers take per-sample noise -----------------------------------------------------
@pytest.mark.parametrize("name", ["karras_sde", "euler_maruyama", "ddpm"])
def test_stochastic_solvers_give_the_same_sample_whatever_the_batch(name):
    denoise, _ = gaussian_denoiser(VP)
    x = SeededNoise(range(6)).randn((3,), dtype=torch.float64)
    whole = solve(name, denoise, VP, x, 9, noise=SeededNoise(range(6)).randn_like).x
    part = solve(name, denoise, VP, x[2:5], 9, noise=SeededNoise(range(2, 5)).randn_like).x
    assert torch.allclose(whole[2:5], part, atol=1e-12)


def test_adaptive_nfe_is_the_mean_over_batches():
    """dopri5 picks its steps per batch: generate() reports the mean NFE over samples, not the
    last batch's count; a fixed-NFE solver reports its exact int."""
    from genbench.sampling import generate
    from genbench.solvers.base import SolverResult

    class Method:
        calls = 0

        def sample(self, nets, x, solver=None, nfe=None, noise=None, **opts):
            Method.calls += 1
            return SolverResult(x, 10 if Method.calls == 1 else 20)

    _, used = generate(Method(), {}, (2,), list(range(48)), torch.device("cpu"), batch_size=32, solver="dopri5")
    assert used == pytest.approx((32 * 10 + 16 * 20) / 48, abs=0.05)

    class Fixed(Method):
        def sample(self, nets, x, solver=None, nfe=None, noise=None, **opts):
            return SolverResult(x, 7)

    _, used = generate(Fixed(), {}, (2,), list(range(48)), torch.device("cpu"), batch_size=32)
    assert used == 7 and isinstance(used, int)
