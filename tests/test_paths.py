"""The probability paths and prediction conversions against their closed forms."""

from __future__ import annotations

import ast
import math
import sys
from pathlib import Path

import pytest
import torch

import genbench.paths
from genbench.paths import (
    DiscreteVP,
    LinearPath,
    convert,
    cosine_betas,
    from_x0_eps,
    linear_betas,
    q_sample,
    to_x0_eps,
)

KINDS = ["eps", "x0", "v", "velocity"]


def test_linear_schedule_is_ho_et_al():
    betas = linear_betas(1000)
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    vp = DiscreteVP(betas)
    # alpha_bar_t = prod_s (1 - beta_s) (Ho et al. 2020, Eq. 4)
    expected = torch.tensor([math.prod(1 - b for b in betas[: i + 1].tolist()) for i in (0, 9, 499, 999)],
                            dtype=torch.float64)
    assert torch.allclose(vp.alphas_cumprod[[0, 9, 499, 999]], expected, rtol=1e-10)
    assert vp.alphas_cumprod[-1].item() == pytest.approx(4.036e-5, rel=1e-3)  # the known DDPM endpoint


def test_cosine_schedule_matches_nichol_dhariwal():
    T, s = 1000, 0.008
    vp = DiscreteVP(cosine_betas(T, s))
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    for i in (0, 100, 500, 900):
        assert vp.alphas_cumprod[i].item() == pytest.approx(f(i + 1) / f(0), rel=1e-9)
    assert cosine_betas(T, s).max().item() <= 0.999


def test_q_sample_has_the_closed_form_mean_and_variance():
    vp = DiscreteVP(linear_betas(1000))
    torch.manual_seed(0)
    x0 = torch.full((200_000, 1), 0.7)
    for i in (0, 250, 999):
        c = vp.coeffs_at_index(torch.full((len(x0),), i))
        xt = q_sample(x0, torch.randn_like(x0), c)
        abar = vp.alphas_cumprod[i].item()
        assert xt.mean().item() == pytest.approx(math.sqrt(abar) * 0.7, abs=5e-3)
        assert xt.var().item() == pytest.approx(1 - abar, rel=2e-2, abs=1e-5)


def test_continuous_coefficients_hit_the_discrete_ones_and_their_derivative():
    vp = DiscreteVP(cosine_betas(1000))
    i = torch.tensor([3, 400, 998])
    exact = vp.coeffs_at_index(i)
    cont = vp.coeffs(vp.t_of_index(i))
    assert torch.allclose(exact.alpha, cont.alpha, rtol=1e-5)
    assert torch.allclose(exact.sigma, cont.sigma, rtol=1e-5)
    t, h = torch.tensor([0.3005], dtype=torch.float64), 1e-4
    fd = (vp.coeffs(t + h).alpha - vp.coeffs(t - h).alpha) / (2 * h)
    assert vp.coeffs(t).d_alpha.item() == pytest.approx(fd.item(), rel=1e-3)
    assert (vp.coeffs(t).alpha ** 2 + vp.coeffs(t).sigma ** 2).item() == pytest.approx(1, abs=1e-6)


@pytest.mark.parametrize("sigma_min", [0.0, 1e-3])
def test_flow_path_is_the_ot_interpolation_and_its_derivative(sigma_min):
    path = LinearPath(sigma_min)
    x0, eps = torch.randn(5, 3), torch.randn(5, 3)
    t = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
    xt = q_sample(x0, eps, path.coeffs(t))
    tt = t[:, None]
    assert torch.allclose(xt, (1 - tt) * x0 + (sigma_min + (1 - sigma_min) * tt) * eps, atol=1e-6)
    u = from_x0_eps(x0, eps, "velocity", path.coeffs(t))
    assert torch.allclose(u, -x0 + (1 - sigma_min) * eps, atol=1e-6)
    h = 1e-3
    t_mid = torch.full((5,), 0.4)
    fd = (q_sample(x0, eps, path.coeffs(t_mid + h)) - q_sample(x0, eps, path.coeffs(t_mid - h))) / (2 * h)
    assert torch.allclose(fd, u, atol=1e-3)


@pytest.mark.parametrize("path", [DiscreteVP(linear_betas(1000)), LinearPath(0.01)], ids=["vp", "linear"])
@pytest.mark.parametrize("src", KINDS)
@pytest.mark.parametrize("dst", KINDS)
def test_every_prediction_converts_to_every_other(path, src, dst):
    torch.manual_seed(1)
    x0, eps = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    t = torch.tensor([0.05, 0.2, 0.4, 0.6, 0.8, 0.95])
    c = path.coeffs(t)
    c = type(c)(*(v.double() for v in c))
    xt = q_sample(x0, eps, c)
    got = convert(from_x0_eps(x0, eps, src, c), src, dst, xt, c)
    assert torch.allclose(got, from_x0_eps(x0, eps, dst, c), atol=1e-5)
    rx0, reps = to_x0_eps(from_x0_eps(x0, eps, src, c), src, xt, c)
    assert torch.allclose(rx0, x0, atol=1e-5) and torch.allclose(reps, eps, atol=1e-5)


def test_paths_sit_on_the_ground_floor():
    """genbench.paths imports only torch, numpy, the standard library, genbench.errors and itself,
    so that genbench.methods and genbench.solvers can both import it at the top of their files."""
    allowed = {"torch", "numpy", *sys.stdlib_module_names}
    for file in Path(genbench.paths.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert (name.split(".")[0] in allowed or name == "genbench.errors"
                        or name.startswith("genbench.paths")), f"{file.name} imports {name}"
