"""Samplers on Gaussian data, where the exact denoiser is known in closed form."""

from __future__ import annotations

import pytest
import torch

from genbench.paths import DiscreteVP, LinearPath, from_x0_eps, linear_betas
from genbench.randomness import SeededNoise
from genbench.solvers import ddpm_timesteps, sample_ddim, sample_ddpm, sample_euler, uniform_t

MU, S = 0.5, 0.3  # data ~ N(MU, S^2) per coordinate


def exact_denoiser(path):
    """E[x0 | x_t] for Gaussian data: MU + a S^2 / (a^2 S^2 + sigma^2) (x_t - a MU)."""
    calls = []

    def denoise(x, t):
        calls.append(1)
        c = path.coeffs(t)
        a, s = c.alpha[:, None].double(), c.sigma[:, None].double()
        x = x.double()
        x0 = MU + a * S**2 / (a**2 * S**2 + s**2) * (x - a * MU)
        return x0, (x - a * x0) / s

    def velocity(x, t):
        c = path.coeffs(t)
        c = type(c)(*(v.double() for v in c))
        return from_x0_eps(*denoise(x, t), "velocity", c)

    return denoise, velocity, calls


def check_gaussian(x):
    assert x.mean().item() == pytest.approx(MU, abs=0.02)
    assert x.std().item() == pytest.approx(S, rel=0.05)


def test_ddpm_timestep_spacings():
    assert ddpm_timesteps(1000, 4).tolist() == [999, 749, 499, 249]
    assert ddpm_timesteps(1000, 4, "leading").tolist() == [750, 500, 250, 0]
    assert ddpm_timesteps(1000, 3, "linspace").tolist() == [999, 500, 0]
    assert ddpm_timesteps(10, 10).tolist() == list(range(9, -1, -1))
    with pytest.raises(ValueError):
        ddpm_timesteps(10, 11)


def test_ancestral_sampling_reaches_the_data_distribution():
    vp = DiscreteVP(linear_betas(1000))
    denoise, _, calls = exact_denoiser(vp)
    torch.manual_seed(0)
    x = torch.randn(4000, 2, dtype=torch.float64)
    res = sample_ddpm(denoise, x, vp.alphas_cumprod, torch.randn_like)
    check_gaussian(res.x)
    assert res.nfe == 1000 == len(calls)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_reaches_the_data_distribution(eta):
    # 250 steps: with 50, DDIM on the linear schedule still shrinks the std by ~9% (discretisation)
    vp = DiscreteVP(linear_betas(1000))
    denoise, _, calls = exact_denoiser(vp)
    torch.manual_seed(0)
    x = torch.randn(4000, 2, dtype=torch.float64)
    res = sample_ddim(denoise, x, vp.alphas_cumprod, ddpm_timesteps(1000, 250), eta, torch.randn_like)
    check_gaussian(res.x)
    assert res.nfe == 250 == len(calls)


def test_euler_on_the_flow_ode_reaches_the_data_distribution():
    path = LinearPath(0.0)
    _, velocity, _ = exact_denoiser(path)
    torch.manual_seed(0)
    x = torch.randn(4000, 2, dtype=torch.float64)
    res = sample_euler(velocity, x, uniform_t(100, 1.0, 1e-4))
    check_gaussian(res.x)
    assert res.nfe == 100


def test_per_sample_noise_does_not_depend_on_the_batch():
    whole = SeededNoise(range(10)).randn((3, 4, 4))
    parts = torch.cat([SeededNoise(range(0, 4)).randn((3, 4, 4)), SeededNoise(range(4, 10)).randn((3, 4, 4))])
    assert torch.equal(whole, parts)
    assert not torch.equal(whole[0], whole[1])
