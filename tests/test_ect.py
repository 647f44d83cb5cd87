"""Easy Consistency Tuning (Geng et al. 2024): the boundary condition, the r(t) schedule, the metric, and a
tuning run from a flow run whose cost includes the teacher's."""

from __future__ import annotations

import json

import pytest
import torch

from genbench.config import ECTConfig
from genbench.methods import build_method
from genbench.methods.ect import ect_r, pseudo_huber, t_of_sigma


class Wild(torch.nn.Module):
    """Any output at all, large and t-dependent: the boundary condition may not depend on it."""

    def forward(self, x, t, y=None):
        return 50 * torch.sin(3 * x) + 7 * t.view(-1, *([1] * (x.dim() - 1)))


@pytest.mark.parametrize("base", ["flow", "edm"])
def test_the_consistency_function_is_the_identity_at_t_zero(base):
    ect = build_method(ECTConfig(base=base))
    x = torch.randn(6, 2)
    assert torch.equal(ect.consistency(Wild(), x, torch.zeros(6), None), x)
    t = torch.full((6,), 0.3)
    assert not torch.equal(ect.consistency(Wild(), x, t, None), x)   # elsewhere it is the x0 prediction
    assert torch.allclose(ect.consistency(Wild(), x, t, None), ect.denoiser(Wild())(x, t)[0])


def test_r_of_t_halves_the_gap_every_stage_and_starts_at_zero():
    sigma = torch.tensor([0.01, 0.5, 2.0, 40.0])
    assert torch.equal(ect_r(sigma, 0, 2.0, 8.0, 1.0), torch.zeros(4))   # stage 0: the diffusion loss
    n = 1 + 8 * torch.sigmoid(-sigma)
    prev = torch.zeros(4)
    for stage in range(1, 12):
        r = ect_r(sigma, stage, 2.0, 8.0, 1.0)
        assert (r >= prev).all() and (r <= sigma).all()
        big = r > 0
        torch.testing.assert_close((sigma - r)[big] / sigma[big], (n / 2**stage)[big])
        prev = r
    assert torch.allclose(prev, sigma, rtol=0.01)   # r has moved to t


def test_time_of_a_noise_level_on_both_paths():
    flow, edm = build_method(ECTConfig(base="flow")), build_method(ECTConfig(base="edm"))
    s = torch.tensor([0.1, 1.0, 10.0])
    t = t_of_sigma(flow.path, s)
    c = flow.path.coeffs(t)
    torch.testing.assert_close(c.sigma / c.alpha, s)
    torch.testing.assert_close(edm.path.sigma(t_of_sigma(edm.path, s)), s)


def test_pseudo_huber_is_quadratic_near_zero_and_linear_far_away():
    a, c = torch.zeros(2, 4), 0.03
    small, big = torch.full((2, 4), 1e-4), torch.full((2, 4), 10.0)
    torch.testing.assert_close(pseudo_huber(small, a, c), (small**2).sum(1) / (2 * c), rtol=1e-3, atol=0)
    torch.testing.assert_close(pseudo_huber(big, a, c), big.norm(dim=1) - c, rtol=1e-4, atol=0)


def test_ect_tunes_a_flow_run_and_is_charged_its_time(tmp_path):
    from genbench.cli import main
    from genbench.report.build import run_values
    from genbench.report.collect import read_run

    common = ["data.n_points=2048", "nets.model.hidden=64", "train.batch_size=128", "train.tensorboard=false",
              "train.sample_every=1000", "train.grid_n=16", "--no-progress"]
    assert main(["train", "configs/toy2d/flow.yaml", *common, "train.budget.steps=40", "train.ckpt_every=40",
                 "--out", str(tmp_path / "flow")]) == 0
    assert main(["train", "configs/toy2d/ect.yaml", *common, "train.budget.steps=20", "train.ckpt_every=20",
                 "method.stage_steps=5", f"train.init_from={tmp_path / 'flow'}", "--out", str(tmp_path / "ect")]) == 0
    info = json.loads((tmp_path / "ect" / "run.json").read_text())
    teacher = json.loads((tmp_path / "flow" / "run.json").read_text())
    assert info["init_from"]["step"] == 40 and info["init_from"]["seconds"] > 0
    rec = read_run(tmp_path / "ect")
    assert rec.family == "few-step"
    values = run_values(rec)
    assert values["train_seconds"] == pytest.approx(info["train_seconds"] + info["init_from"]["seconds"])
    assert values["kimg"] == pytest.approx((info["images_seen"] + teacher["images_seen"]) / 1000)
    assert main(["sample", str(tmp_path / "ect"), "-n", "8", "--nfe", "2", "--format", "npz",
                 "-o", str(tmp_path / "s"), "--device", "cpu"]) == 0


def test_ect_without_a_teacher_is_refused_in_one_line(capsys):
    from genbench.cli import main

    assert main(["train", "configs/toy2d/ect.yaml", "train.init_from=null", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.init_from" in err[0]
