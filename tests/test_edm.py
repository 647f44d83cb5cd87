"""EDM diffusion (Karras et al. 2022): Table 1's preconditioning, the loss weighting, the VE path under
every solver of the library, and a short training run on the ring."""

from __future__ import annotations

import math

import pytest
import torch

from genbench.config import EDMConfig, load_config, solvers_for
from genbench.methods import build_method
from genbench.methods.model_fn import EDMPrecond, edm_precond, per_sample_mse
from genbench.solvers import NFE_RULES, solve, solver_names

SD = 0.5


@pytest.mark.parametrize("sigma", [0.002, 0.1, 0.5, 2.0, 80.0])
def test_preconditioning_matches_table_1(sigma):
    c_skip, c_out, c_in, c_noise = edm_precond(torch.tensor([sigma], dtype=torch.float64), SD)
    assert c_skip.item() == pytest.approx(SD**2 / (sigma**2 + SD**2), rel=1e-12)
    assert c_out.item() == pytest.approx(sigma * SD / math.sqrt(sigma**2 + SD**2), rel=1e-12)
    assert c_in.item() == pytest.approx(1 / math.sqrt(sigma**2 + SD**2), rel=1e-12)
    assert c_noise.item() == pytest.approx(math.log(sigma) / 4, rel=1e-12)
    if sigma == SD:   # a hand-computed row
        assert (c_skip.item(), c_out.item(), c_in.item()) == pytest.approx((0.5, 0.5 / math.sqrt(2), math.sqrt(2)))


def test_a_zero_network_has_weighted_loss_one_at_every_sigma():
    """Sec. 5 / App. B.6: for data of RMS sigma_data, F = 0 gives lambda(sigma) E||D - x0||^2 = 1."""
    method = build_method(EDMConfig(sigma_data=SD))
    zero = EDMPrecond(lambda x, t, y: torch.zeros_like(x), method.path, SD)
    gen = torch.Generator().manual_seed(0)
    x0 = SD * torch.randn(20_000, 1, 2, 2, generator=gen, dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    for s in (0.002, 0.05, 0.5, 3.0, 80.0):
        sigma = torch.full((len(x0),), s, dtype=torch.float64)
        d = zero.denoise_sigma(x0 + s * noise, sigma).double()
        loss = (method.loss_weight(sigma) * per_sample_mse(d, x0)).mean().item()
        assert loss == pytest.approx(1.0, abs=0.03), s


def _ideal(s2: float):
    """The network F that makes EDMPrecond the exact denoiser of N(0, s2 I) data, D*(x) = s2 / (s2 + sigma^2) x:
    F = (D* - c_skip x) / c_out as a function of (c_in x, c_noise)."""
    def net(u, c_noise, y=None):
        sigma = torch.exp(4 * c_noise.double())
        c_skip, c_out, c_in, _ = edm_precond(sigma, SD)
        shape = (-1,) + (1,) * (u.dim() - 1)
        x = u.double() / c_in.view(shape)
        ideal = (s2 / (s2 + sigma**2)).view(shape) * x
        return ((ideal - c_skip.view(shape) * x) / c_out.view(shape)).to(u.dtype)
    return net


def test_the_wrapper_is_exact_with_the_analytic_denoiser_and_the_loss_is_minimal_there():
    s2 = 0.3**2
    method = build_method(EDMConfig(sigma_data=SD))
    pre = EDMPrecond(_ideal(s2), method.path, SD)
    gen = torch.Generator().manual_seed(1)
    x0 = math.sqrt(s2) * torch.randn(20_000, 4, dtype=torch.float64, generator=gen)
    noise = torch.randn(x0.shape, dtype=torch.float64, generator=gen)
    for s in (0.01, 0.3, 5.0):
        sigma = torch.full((len(x0),), s, dtype=torch.float64)
        x = x0 + s * noise
        d = pre.denoise_sigma(x, sigma).double()
        assert torch.allclose(d, s2 / (s2 + s**2) * x, rtol=1e-5, atol=1e-6)
        best = per_sample_mse(d, x0).mean()
        for k in (0.9, 1.1):   # any other linear denoiser does worse: D* minimises the loss
            assert per_sample_mse(k * d, x0).mean() > best
        # the minimum is the posterior variance s2 sigma^2 / (s2 + sigma^2)
        assert best.item() == pytest.approx(s2 * s**2 / (s2 + s**2), rel=0.03)


def test_every_solver_samples_the_ve_path_of_gaussian_data():
    """From sigma_max, the probability-flow ODE of N(0, s2) data ends at x_T s / sqrt(s2 + sigma_max^2):
    every solver of the library gets there (first-order ones within their error at ~40 NFE)."""
    s2 = 0.5**2
    method = build_method(EDMConfig(sigma_data=SD))
    path = method.path
    denoise = EDMPrecond(_ideal(s2), path, SD).denoise
    assert solvers_for("edm") == solver_names(path)
    x_init = torch.randn(2000, 1, 2, 2, generator=torch.Generator().manual_seed(2))
    exact = x_init * path.sigma_max * math.sqrt(s2) / math.sqrt(s2 + path.sigma_max**2)
    for name in solver_names(path):
        if name == "consistency":   # samples a consistency function's distribution, not a denoiser's (test_meanflow)
            continue
        rule = NFE_RULES.get(name)
        nfe = None if rule is None else next(k for k in range(40, 80) if rule.steps(k))
        gen = torch.Generator().manual_seed(3)
        opts = {"rtol": 1e-3, "atol": 1e-3} if name == "dopri5" else {}
        res = solve(name, denoise, path, x_init * path.sigma_max, nfe,
                    lambda x, g=gen: torch.randn(x.shape, generator=g), **opts)
        ratio = (res.x.std() / exact.std()).item()
        if name in ("karras_sde", "euler_maruyama"):   # stochastic: the right spread, not the same points
            assert ratio == pytest.approx(1, abs=0.12), name
        else:
            assert ratio == pytest.approx(1, abs=0.08), name
            assert (res.x - exact).abs().max().item() < 0.15, name
    assert method.sample({"model": _ideal(s2)}, x_init, nfe=35).nfe == 35


def test_heun_on_the_karras_grid_converges_at_second_order():
    """EDM's sampler (heun_ve): halving the step size divides the error by about 4."""
    s2 = 0.5**2
    path = build_method(EDMConfig(sigma_data=SD)).path
    denoise = EDMPrecond(_ideal(s2), path, SD).denoise
    x_init = torch.randn(500, 4, generator=torch.Generator().manual_seed(4))
    exact = x_init * path.sigma_max * math.sqrt(s2) / math.sqrt(s2 + path.sigma_max**2)
    err = [(solve("heun_ve", denoise, path, x_init * path.sigma_max, n).x - exact).abs().max().item()
           for n in (41, 81, 161)]
    assert err[1] < err[0] / 3 and err[2] < err[1] / 3, err


def test_edm_learns_the_ring(tmp_path):
    from genbench.rundir import prepare_run_dir
    from genbench.train.loop import train
    from test_methods import ring_fraction_near_modes

    cfg = load_config("configs/toy2d/edm.yaml", ["train.budget.steps=1500", "train.tensorboard=false",
                                                 "train.sample_every=100000", "train.grid_n=16",
                                                 "data.n_points=20000", "method.nfe=19"])
    cfg = prepare_run_dir(tmp_path / "run", cfg)
    train(cfg, tmp_path / "run", progress=False)
    frac, modes = ring_fraction_near_modes(tmp_path / "run")
    assert frac > 0.7 and modes == 8, (frac, modes)


def test_the_report_counts_edm_as_diffusion_and_names_the_recipe(tmp_path):
    from genbench.config import FAMILY_OF, PLAYERS
    from genbench.methods import METHODS
    from genbench.report.collect import read_run

    assert set(FAMILY_OF) == set(PLAYERS) == set(METHODS)
    (tmp_path / "config.yaml").write_text("name: e\nmethod: {kind: edm, sigma_data: 0.5}\n")
    rec = read_run(tmp_path)
    assert rec.family == "diffusion" and rec.recipe.startswith("EDM")


@pytest.mark.parametrize("sigma", [0.002, 0.1, 1.0, 80.0])
def test_the_vp_and_ve_columns_of_table_1(sigma):
    from genbench.methods.model_fn import precond, vp_sigma, vp_sigma_inv

    s = torch.tensor([sigma], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = precond("vp", s, SD)
    assert (c_skip.item(), c_out.item(), c_in.item()) == pytest.approx((1, -sigma, 1 / math.sqrt(sigma**2 + 1)))
    t = c_noise.item()   # sigma^-1(sigma): sigma(t) = sqrt(exp(19.9 t^2 / 2 + 0.1 t) - 1)
    assert math.sqrt(math.exp(0.5 * 19.9 * t**2 + 0.1 * t) - 1) == pytest.approx(sigma, rel=1e-9)
    assert vp_sigma(vp_sigma_inv(s)).item() == pytest.approx(sigma, rel=1e-9)
    c_skip, c_out, c_in, c_noise = precond("ve", s, SD)
    assert (c_skip.item(), c_out.item(), c_in.item(), c_noise.item()) == pytest.approx(
        (1, sigma, 1, math.log(sigma / 2)))


@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_vp_and_ve_weighting_makes_a_zero_network_cost_one_and_train_on_their_noise_levels(kind):
    """lambda = 1 / sigma^2 with c_skip = 1: F = 0 leaves D = x, so lambda ||D - x0||^2 = ||n||^2 (any data)."""
    method = build_method(EDMConfig(precond=kind))
    zero = EDMPrecond(lambda x, t, y: torch.zeros_like(x), method.path, SD, kind=kind)
    gen = torch.Generator().manual_seed(0)
    x0 = 3 * torch.rand(20_000, 1, 2, 2, generator=gen, dtype=torch.float64) - 1
    noise = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    for s in (0.02, 0.5, 80.0):
        sigma = torch.full((len(x0),), s, dtype=torch.float64)
        d = zero.denoise_sigma(x0 + s * noise, sigma).double()
        assert (method.loss_weight(sigma) * per_sample_mse(d, x0)).mean().item() == pytest.approx(1.0, abs=0.03)
    torch.manual_seed(0)
    sigma = method.train_sigma(torch.zeros(20_000, 2))
    lo, hi = (0.0, 153.0) if kind == "vp" else (0.02, 100.0)
    assert sigma.min() >= lo and sigma.max() <= hi
    if kind == "ve":   # ln sigma uniform on [ln 0.02, ln 100]: median sqrt(0.02 * 100)
        assert sigma.median().item() == pytest.approx(math.sqrt(2.0), rel=0.05)
    else:              # t uniform on [1e-5, 1]: median sigma(0.5)
        assert sigma.median().item() == pytest.approx(math.sqrt(math.exp(19.9 / 8 + 0.05) - 1), rel=0.05)


@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_vp_and_ve_denoise_gives_consistent_eps(kind):
    method = build_method(EDMConfig(precond=kind))
    net = torch.nn.Linear(4, 4).double()
    pre = EDMPrecond(lambda x, t, y: net(x) * t[:, None].double(), method.path, SD, kind=kind)
    x = torch.randn(8, 4, dtype=torch.float64)
    t = torch.rand(8, dtype=torch.float64) * 0.9 + 0.05
    x0, eps = pre.denoise(x, t)
    sigma = method.path.sigma(t)[:, None]
    assert torch.allclose(eps, (x - x0) / sigma, atol=1e-5)
