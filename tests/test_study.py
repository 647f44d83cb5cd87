"""`genbench study`: presets validate and match the budget; a tiny 2-D study runs end to end."""

from __future__ import annotations

import json

import pytest

from genbench.cli import main
from genbench.config import FAMILY_OF, load_config
from genbench.errors import GenbenchError
from genbench.presets import STUDY_ROOTS, resolve_config
from genbench.study import load_study

PRESETS = ("fmnist-quick", "fmnist", "fmnist-cond", "toy2d", "cifar10", "seed-cifar10-cars")


@pytest.mark.parametrize("name", PRESETS)
def test_presets_validate_and_give_every_family_the_same_budget(name):
    study, _ = load_study(name)
    budget = json.dumps(study.budget.as_dict())
    budgets = set()
    for fam, preset in study.runs.items():
        cfg = load_config(resolve_config(preset), [*study.overrides.get("all", []), *study.overrides.get(fam, []),
                                                   f"train.budget={budget}"])
        assert FAMILY_OF[cfg.method.kind] == fam   # a family key may hold any recipe of that family (EDM for diffusion)
        budgets.add(json.dumps(cfg.train.budget.model_dump(), sort_keys=True))
        if name == "seed-cifar10-cars":
            assert cfg.data.classes == ["automobile"]
    assert len(budgets) == 1


def test_all_presets_are_listed():
    found = {p.stem for r in STUDY_ROOTS if r.is_dir() for p in r.glob("*.yaml")}
    assert set(PRESETS) <= found


def test_overrides_replace_the_budget_and_bad_keys_are_refused():
    study, _ = load_study("fmnist-quick", ["budget.kimg=50", "seeds=3", "eval.n=1000"])
    assert study.budget.as_dict() == {"kimg": 50} and study.seeds == 3 and study.eval.n == 1000
    with pytest.raises(GenbenchError, match="seedz"):
        load_study("fmnist-quick", ["seedz=3"])
    with pytest.raises(GenbenchError, match="not found"):
        load_study("no-such-study")


def test_tiny_toy_study_end_to_end(tmp_path, capsys):
    out = tmp_path / "study"
    args = ["study", "toy2d", "budget.steps=10", "datasets=[ring]", "eval.n=100", "sweep.n=100",
            "eval.metrics=modes,prdc", "eval.nfe={diffusion: 8, flow: 8}", "eval.history_n=50",
            "overrides.all=[train.tensorboard=false, data.n_points=2000, train.grid_n=100, train.log_every=10, "
            "train.ckpt_every=5, train.batch_size=64, sample.nfe=8]",
            "sweep.solvers={diffusion: {ddim: [2, 4]}, flow: {euler: [2, 4]}, few-step: {meanflow: [1, 2]}}",
            "--out", str(out), "--no-progress"]
    assert main(args) == 0, capsys.readouterr().err
    report = out / "ring" / "report"
    summary = json.loads((report / "report.json").read_text())
    assert summary["labels"] == ["GAN", "diffusion", "flow", "few-step"]
    assert all("modes" in summary["values"][lb] for lb in summary["labels"])
    assert summary["protocol"]["sampling.n"] == 100
    answers = {a["question"]: a for a in summary["answers"]}
    assert "high-quality fraction" in answers["best quality"]["evidence"]    # no FID on 2-D data
    html = (report / "report.html").read_text()
    assert "hq-fraction-vs-nfe" in html and "quality-vs-time" not in html   # no FID on 2-D data
    assert 'id="quality-over-training"' in html                 # checkpoints 10 and 20 at eval.history_n
    assert len(list((out / "ring" / "flow-s0" / "eval").glob("eval-step5-*-n50-*.json"))) == 1
    assert len(list((out / "ring" / "few-step-s0" / "eval").glob("eval-step10-meanflow1-n100-*.json"))) == 1
    for fam in ("gan", "diffusion", "flow", "few-step"):
        info = json.loads((out / "ring" / f"{fam}-s0" / "run.json").read_text())
        assert info["status"] == "finished" and info["step"] == 10
    # a second call continues the study: nothing is trained again
    mtime = (out / "ring" / "gan-s0" / "run.json").stat().st_mtime
    assert main(args) == 0
    assert (out / "ring" / "gan-s0" / "run.json").stat().st_mtime == mtime
    # a larger budget continues the runs from their checkpoints
    assert main([a if a != "budget.steps=10" else "budget.steps=15" for a in args]) == 0
    info = json.loads((out / "ring" / "gan-s0" / "run.json").read_text())
    assert info["step"] == 15
    summary = json.loads((report / "report.json").read_text())
    assert {r["step"] for r in summary["runs"]} == {15}


def test_tiny_conditional_study_scores_consistency_and_sweeps_guidance(env, capsys):
    """conditional=true: every family trains with labels, evaluations ask for the classes in turn and score
    class consistency, the guided families are swept over w, and the report shows the best w."""
    tiny_unet = "[nets.model.ch=8, 'nets.model.ch_mult=[1, 2]', 'nets.model.attn_resolutions=[]', nets.model.groups=4]"
    study = env / "cond.yaml"
    study.write_text(f"""
name: tiny-cond
runs: {{gan: fmnist/gan-r3-cond, flow: fmnist/flow-cond}}
conditional: true
budget: {{steps: 3}}
overrides:
  all: [train.tensorboard=false, train.grid_n=4, train.batch_size=8, 'data.root={env / "fmnist"}', data.download=false]
  gan: [nets.G.ch=8, nets.D.ch=8, nets.G.z_dim=8]
  flow: {tiny_unet}
eval: {{n: 20, metrics: 'fid,prdc', nfe: {{flow: 2}}}}
guidance_sweep: [1, 2]
neighbours: false
""")
    out = env / "study"
    assert main(["study", str(study), "--out", str(out), "--no-progress"]) == 0, capsys.readouterr().err
    for fam in ("gan", "flow"):
        info = json.loads((out / f"{fam}-s0" / "run.json").read_text())
        assert info["num_classes"] == 10
        (rec,) = [json.loads(p.read_text()) for p in (out / f"{fam}-s0" / "eval").glob("eval-*-n20-*.json")
                  if "-w" not in p.name]      # the main evaluation (the sweep's are tagged -w1, -w2)
        assert "consistency" in rec["metrics"]["classes"] and rec["sampling"]["conditional"]["class_indices"] == \
            list(range(10))
    assert not list((out / "gan-s0" / "eval").glob("guidance-*.json"))     # a GAN is not guided
    summary = json.loads((out / "report" / "report.json").read_text())
    (row,) = summary["guidance"]
    assert row["family"] == "flow" and [p["w"] for p in row["points"]] == [1.0, 2.0]
    assert [p["nfe"] for p in row["points"]] == [2, 4]
    with pytest.raises(GenbenchError, match="conditional"):
        load_study("fmnist", ["guidance_sweep=[1, 2]"])
