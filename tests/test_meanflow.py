"""MeanFlow (Geng et al. 2025): the loss at r = t is flow matching's, the JVP is the total derivative,
the exact average velocity of Gaussian data satisfies the MeanFlow identity and samples the data in one
step, the two-time networks, starting from a flow run, and the few-step solvers."""

from __future__ import annotations

import pytest
import torch

from genbench.config import FlowConfig, MeanFlowConfig, MLPConfig, UNetConfig, load_config
from genbench.errors import GenbenchError
from genbench.methods import build_method
from genbench.methods.meanflow import total_derivative
from genbench.methods.model_fn import per_sample_mse
from genbench.nets import build_net
from genbench.paths import from_x0_eps, q_sample
from genbench.solvers import NFE_RULES, SOLVERS, solve, solver_names

MU = torch.tensor([0.5, -1.0], dtype=torch.float64)
LAM = torch.tensor([0.3**2, 0.8**2], dtype=torch.float64)   # diagonal covariance of the data


def two_time_mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = build_net(MLPConfig(hidden=32, depth=2, second_time=True, time_scale=10.0), (2,)).double()
    with torch.no_grad():   # a random interval embedding, so that r matters
        for p in net.interval.parameters():
            p.normal_(0, 0.3)
    return net


def test_with_r_equal_t_the_loss_is_flow_matchings():
    net = two_time_mlp()
    mf = build_method(MeanFlowConfig(adaptive_p=0.0))
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(64, 2, generator=gen, dtype=torch.float64)
    eps = torch.randn(64, 2, generator=gen, dtype=torch.float64)
    t = torch.rand(64, generator=gen, dtype=torch.float64)
    got = mf.loss_at(net, x0, eps, t, t.clone(), None)["loss"]     # r = t as a separate tensor: the JVP runs
    flow = build_method(FlowConfig())
    c = flow.path.coeffs(t)
    want = per_sample_mse(net(q_sample(x0, eps, c), t), from_x0_eps(x0, eps, "velocity", c)).mean()
    assert got.item() == want.item()
    # and r != t changes it (the target then has the JVP term)
    assert mf.loss_at(net, x0, eps, t, t * 0.5, None)["loss"].item() != want.item()


def test_the_jvp_is_the_total_derivative_along_the_flow():
    net = two_time_mlp(1)
    gen = torch.Generator().manual_seed(1)
    z, v = torch.randn(16, 2, generator=gen, dtype=torch.float64), torch.randn(16, 2, generator=gen, dtype=torch.float64)
    t = torch.rand(16, generator=gen, dtype=torch.float64) * 0.8 + 0.1
    r = t * torch.rand(16, generator=gen, dtype=torch.float64)
    got = total_derivative(net, z, r, t, v, None)
    h = 1e-5
    fd = (net(z + h * v, t + h, None, r) - net(z - h * v, t - h, None, r)) / (2 * h)
    torch.testing.assert_close(got, fd, rtol=1e-6, atol=1e-7)


def _s(t: torch.Tensor) -> torch.Tensor:
    """Per-axis standard deviation of z_t = (1 - t) x0 + t eps for x0 ~ N(MU, diag(LAM))."""
    t = t[:, None]
    return ((1 - t) ** 2 * LAM + t**2).sqrt()


def exact_average(z: torch.Tensor, t: torch.Tensor, y=None, r: torch.Tensor | None = None) -> torch.Tensor:
    """u(z, r, t) of the linear path for Gaussian data: the flow map is z_r = m_r + (s_r / s_t)(z - m_t)
    per axis, so u = (z_t - z_r) / (t - r); at r = t its limit, the marginal velocity."""
    r = t if r is None else r
    m_t, m_r = (1 - t)[:, None] * MU, (1 - r)[:, None] * MU
    s_t, s_r = _s(t), _s(r)
    ds = ((t[:, None] - (1 - t[:, None]) * LAM) / s_t)                # d s_t / dt
    v = -MU + ds / s_t * (z - m_t)
    gap = (t - r)[:, None]
    safe = torch.where(gap > 0, gap, torch.ones_like(gap))
    u = ((m_t - m_r) + (1 - s_r / s_t) * (z - m_t)) / safe
    return torch.where(gap > 0, u, v)


def test_the_exact_average_velocity_satisfies_the_meanflow_identity():
    """u = v - (t - r) du/dt (Eq. 6) holds for the exact u with the marginal v: the MeanFlow target equals u."""
    gen = torch.Generator().manual_seed(2)
    n = 256
    t = torch.rand(n, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    r = t * torch.rand(n, generator=gen, dtype=torch.float64)
    z = MU * (1 - t[:, None]) + _s(t) * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    v = exact_average(z, t)                           # r = t: the marginal velocity
    target = v - (t - r)[:, None] * total_derivative(exact_average, z, r, t, v, None)
    torch.testing.assert_close(target, exact_average(z, t, None, r), rtol=1e-9, atol=1e-9)


def test_one_step_with_the_exact_average_velocity_samples_the_data():
    mf = build_method(MeanFlowConfig())

    class Exact:
        average = staticmethod(lambda z, r, t: exact_average(z, t, None, r))

    gen = torch.Generator().manual_seed(3)
    x1 = torch.randn(40_000, 2, generator=gen, dtype=torch.float64)
    out = solve("meanflow", Exact(), mf.path, x1, 1)
    assert out.nfe == 1
    assert torch.allclose(out.x.mean(0), MU, atol=0.02)
    assert torch.allclose(out.x.var(0), LAM, rtol=0.03)
    two = solve("meanflow", Exact(), mf.path, x1, 2).x   # the exact map composes: 2 steps = 1 step
    torch.testing.assert_close(two, out.x, rtol=1e-9, atol=1e-9)


def test_the_meanflow_solver_refuses_a_plain_denoiser_and_counts_its_evaluations():
    mf = build_method(MeanFlowConfig())
    with pytest.raises(ValueError, match="MeanFlow model"):
        solve("meanflow", lambda x, t: (x, x), mf.path, torch.zeros(2, 2), 1)
    assert "meanflow" in SOLVERS and "meanflow" not in solver_names(mf.path)
    assert "meanflow" in solver_names(mf.path, average=True)
    assert NFE_RULES["meanflow"].steps(4) == 4 and NFE_RULES["consistency"].steps(2) == 2


def test_consistency_sampling_renoises_between_steps():
    """With an exact x0 oracle every step returns it; with a biased one, re-noising between steps pulls the
    result towards the data (x0 of the last step)."""
    mf = build_method(FlowConfig())
    target = torch.full((8, 2), 0.7)
    calls = []

    def oracle(x, t):
        calls.append(float(t[0]))
        return target, x
    out = solve("consistency", oracle, mf.path, torch.randn(8, 2), 3, noise=torch.randn_like)
    assert out.nfe == 3 and torch.equal(out.x, target)
    assert calls[0] == pytest.approx(mf.path.t_max) and calls == sorted(calls, reverse=True) and calls[-1] > 0


def test_two_time_nets_start_as_their_one_time_selves_and_refuse_r_without_it():
    for cfg, shape in ((MLPConfig(hidden=16, depth=2), (2,)),
                       (UNetConfig(ch=8, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[], groups=4), (1, 8, 8))):
        torch.manual_seed(0)
        one = build_net(cfg, shape)
        torch.manual_seed(0)
        two = build_net(cfg.model_copy(update={"second_time": True}), shape)
        # the second time is built last: the shared weights are drawn identically
        missing = two.load_state_dict(one.state_dict(), strict=False).missing_keys
        assert missing and all(k.startswith("interval.") for k in missing)
        x, t = torch.randn(3, *shape), torch.rand(3)
        if cfg.kind == "unet":   # the UNet's output conv starts at zero: give it weights
            torch.nn.init.normal_(one.conv_out.weight, std=0.1)
            two.conv_out.weight.data.copy_(one.conv_out.weight)
        assert torch.equal(two(x, t, None, t * 0.3), one(x, t))
        with pytest.raises(ValueError, match="second_time"):
            one(x, t, None, t)


def test_meanflow_needs_a_two_time_net_in_one_line():
    with pytest.raises(GenbenchError, match="second_time=true"):
        load_config("configs/toy2d/meanflow.yaml", ["nets.model.second_time=false"])


def test_meanflow_starts_from_a_flow_run_and_refuses_another_net(tmp_path):
    from genbench.cli import main
    from genbench.run import load_run

    common = ["data.n_points=2048", "nets.model.hidden=64", "train.batch_size=128", "train.tensorboard=false",
              "train.sample_every=1000", "train.grid_n=16", "--no-progress"]
    assert main(["train", "configs/toy2d/flow.yaml", *common, "train.budget.steps=150", "train.ckpt_every=150",
                 "--out", str(tmp_path / "flow")]) == 0
    assert main(["train", "configs/toy2d/meanflow.yaml", *common, "train.budget.steps=1", "train.ckpt_every=1",
                 "nets.model.time_scale=1000", f"train.init_from={tmp_path / 'flow'}", "optim.model.lr=1e-12",
                 "--out", str(tmp_path / "mf")]) == 0
    flow, mf = load_run(tmp_path / "flow"), load_run(tmp_path / "mf")
    x, t = torch.randn(32, 2), torch.rand(32)
    net_f, net_m = flow.sampling_nets()["model"], mf.sampling_nets()["model"]
    # at r = t the MeanFlow net is the flow net it was loaded from (lr ~ 0: one step moves nothing)
    torch.testing.assert_close(net_m(x, t), net_f(x, t), rtol=1e-5, atol=1e-6)
    info = (tmp_path / "mf" / "run.json").read_text()
    assert '"init_from"' in info and "flow" in info
    # a run with another network is refused in one line
    err = main(["train", "configs/toy2d/meanflow.yaml", *common, "train.budget.steps=1", "nets.model.hidden=32",
                f"train.init_from={tmp_path / 'flow'}", "--out", str(tmp_path / "bad")])
    assert err == 2 and not (tmp_path / "bad" / "checkpoints").exists()


def exact_consistency(x: torch.Tensor, t: torch.Tensor):
    """The flow map of the linear path to t = 0 for Gaussian data (the ideal consistency function), as a
    denoiser (x0, eps)."""
    m_t = (1 - t)[:, None] * MU
    x0 = MU + (LAM.sqrt() / _s(t)) * (x - m_t)
    return x0, x0


@pytest.mark.parametrize("steps", [1, 3])
def test_consistency_sampling_with_the_exact_flow_map_samples_the_data(steps):
    path = build_method(FlowConfig()).path
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(40_000, 2, generator=gen, dtype=torch.float64) * _s(torch.tensor([path.t_max]))
    x = x + (1 - path.t_max) * MU
    out = solve("consistency", exact_consistency, path, x, steps,
                noise=lambda a: torch.randn(a.shape, generator=gen, dtype=a.dtype))
    assert out.nfe == steps
    assert torch.allclose(out.x.mean(0), MU, atol=0.02) and torch.allclose(out.x.var(0), LAM, rtol=0.04)


def test_the_meanflow_loss_runs_through_the_fmnist_unet_with_attention():
    """The fused attention kernels have no forward-mode derivative: the JVP must still go through the
    preset's UNet (attention at 7x7), and r != t must change the loss."""
    cfg = load_config("configs/fmnist/meanflow.yaml", ["nets.model.ch=8", "nets.model.groups=4"])
    torch.manual_seed(0)
    net = build_net(cfg.nets["model"], (1, 28, 28))
    torch.nn.init.normal_(net.conv_out.weight, std=0.1)
    mf = build_method(cfg.method)
    x0, eps = torch.randn(4, 1, 28, 28), torch.randn(4, 1, 28, 28)
    t = torch.tensor([0.9, 0.7, 0.5, 0.3])
    loss = mf.loss_at(net, x0, eps, t, t * 0.2, None)["loss"]
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert torch.isfinite(loss) and all(torch.isfinite(g).all() for g in grads) and sum(g.abs().sum() for g in grads) > 0
    assert mf.loss_at(net, x0, eps, t, t.clone(), None)["loss"].item() != loss.item()
