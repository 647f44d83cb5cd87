"""`genbench demo` plans itself from the throughput measured on the machine: training gets most of
the minutes, scoring is priced from the UNet's measured rate, and the plan is a valid study config."""

from __future__ import annotations

import pytest

from genbench.demo import EVAL_N_RANGE, FAMILIES, SCORING_SHARE, plan_demo
from genbench.study import load_study


@pytest.mark.parametrize("rate", [143.0, 330.0, 5000.0])
def test_the_plan_gives_training_most_of_the_time_at_any_speed(rate):
    plan = plan_demo(20, rate)
    assert plan.fits and EVAL_N_RANGE[0] <= plan.eval_n <= EVAL_N_RANGE[1]
    total = 20 * 60
    train = len(FAMILIES) * plan.train_minutes * 60
    assert train + plan.scoring_s + plan.allowance_s <= total + 1
    if rate >= 143:   # a machine like the ones the demo was sized for, or a slower one (2.3x): scoring stays small
        assert plan.scoring_s <= SCORING_SHARE * total * 1.05 and train > 0.5 * total


def test_a_machine_too_slow_for_the_minutes_is_told_how_many_it_needs():
    plan = plan_demo(20, 15.0)
    assert not plan.fits and plan.minutes_needed() > 20
    assert plan_demo(plan.minutes_needed(), 15.0).fits


def test_a_faster_machine_gets_more_samples_and_the_same_or_more_training():
    slow, fast = plan_demo(20, 143.0), plan_demo(20, 330.0)
    assert fast.eval_n >= slow.eval_n and fast.train_minutes >= slow.train_minutes
    assert plan_demo(40, 330.0).train_minutes > 2 * plan_demo(20, 330.0).train_minutes - 0.5   # --minutes scales it


def test_time_spent_before_the_plan_comes_out_of_training():
    whole, after_install = plan_demo(20, 330.0), plan_demo(20, 330.0, spent_s=120)
    assert after_install.train_minutes == pytest.approx(whole.train_minutes - 120 / 60 / 4 * 0.92, abs=0.06)
    assert after_install.fits and "already spent" in after_install.describe()
    slow = plan_demo(20, 60.0, spent_s=300)
    assert plan_demo(slow.minutes_needed(), 60.0, spent_s=300).fits


def test_the_plan_is_a_valid_study(tmp_path):
    plan = plan_demo(20, 330.0)
    study, _ = load_study("fmnist-quick", plan.overrides())
    assert study.budget.minutes == pytest.approx(plan.train_minutes)
    assert study.eval.n == plan.eval_n and study.eval.history_n is None and "speed" not in study.eval.metrics
    assert study.eval.nfe == {"diffusion": 10, "flow": 10, "few-step": 1} and study.eval.solver["flow"] == "dpm++2m"
    assert set(study.runs) == {"gan", "diffusion", "flow", "few-step"} and study.eval.solver["few-step"] == "meanflow"
    assert study.sweep.n == 300 and study.sweep.solvers["diffusion"] == {"dpm++2m": [4, 8]}
