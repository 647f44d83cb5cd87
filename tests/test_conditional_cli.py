"""Conditional generation end to end through the CLI (tiny nets, a few steps): `sample --class --guidance`,
labels per seed, one grid row per class, honest NFE, class metrics and the guidance sweep in `eval`, and the
refusals (unknown class naming the valid ones, guidance for unconditional runs and GANs)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genbench.cli import main

TINY_UNET = ["nets.model.ch=8", "nets.model.ch_mult=[1, 2]", "nets.model.attn_resolutions=[]",
             "nets.model.groups=4", "optim.model.schedule.warmup_steps=0"]
COMMON = ["train.batch_size=8", "train.budget={steps: 3}", "train.tensorboard=false", "train.grid_n=4",
          "train.ckpt_every=3", "train.sample_every=1000", "--no-progress"]


def _train(env, preset: str, name: str, *extra: str):
    run = env / name
    assert main(["train", preset, f"data.root={env / 'fmnist'}", "data.download=false", *COMMON, *extra,
                 "--out", str(run)]) == 0
    return run


@pytest.fixture
def flow_run(env):
    return _train(env, "configs/fmnist/flow-cond.yaml", "flow-cond", *TINY_UNET)


def test_sample_a_class_with_guidance(flow_run, env, capsys):
    out = env / "sneakers"
    assert main(["sample", str(flow_run), "--class", "sneaker", "-n", "8", "--guidance", "2", "--solver", "euler",
                 "--nfe", "4", "--format", "npz", "-o", str(out)]) == 0
    z = np.load(out.with_suffix(".npz"))
    assert z["labels"].tolist() == [7] * 8 and float(z["guidance"]) == 2.0
    assert int(z["nfe"]) == 8                       # 4 guided Euler steps: two evaluations each
    # no --class: the classes in turn by seed; seeds keep their samples (and classes) whatever -n and --seed
    assert main(["sample", str(flow_run), "-n", "20", "--solver", "euler", "--nfe", "4", "-o", str(env / "all")]) == 0
    assert main(["sample", str(flow_run), "-n", "10", "--seed", "10", "--solver", "euler", "--nfe", "4",
                 "--format", "npz", "-o", str(env / "late")]) == 0
    every, late = np.load(env / "all.npz"), np.load(env / "late.npz")
    assert every["labels"].tolist() == [s % 10 for s in range(20)]
    assert np.array_equal(every["samples"][10:], late["samples"]) and int(every["nfe"]) == 4
    assert (env / "all.png").stat().st_size > 0       # one row per class
    # an unknown class is refused naming the valid ones
    assert main(["sample", str(flow_run), "--class", "sneakers", "-n", "4", "-o", str(env / "x")]) == 2
    assert "7 Sneaker" in capsys.readouterr().err


def test_eval_scores_consistency_and_sweeps_guidance(flow_run, capsys):
    assert main(["eval", str(flow_run), "-n", "20", "--metrics", "classes,class_fid", "--guidance", "1.5",
                 "--solver", "euler", "--nfe", "2"]) == 0
    (path,) = (flow_run / "eval").glob("eval-*-w1.5-*.json")
    rec = json.loads(path.read_text())
    cond = rec["sampling"]["conditional"]
    assert cond["guidance"]["scale"] == 1.5 and cond["class_indices"] == list(range(10))
    assert rec["sampling"]["nfe"] == 4 and 0 <= rec["metrics"]["classes"]["consistency"] <= 1
    assert set(rec["metrics"]["class_fid"]["per_class"]) == set(cond["classes"])
    assert main(["eval", str(flow_run), "--guidance-sweep", "1,3", "-n", "20", "--metrics", "classes",
                 "--solver", "euler", "--nfe", "2"]) == 0
    (sweep,) = (flow_run / "eval").glob("guidance-*.json")
    record = json.loads(sweep.read_text())
    assert [p["w"] for p in record["points"]] == [1.0, 3.0] and [p["nfe"] for p in record["points"]] == [2, 4]
    assert record["best"]["consistency"]["w"] in (1.0, 3.0)
    # one class only
    assert main(["eval", str(flow_run), "-n", "12", "--metrics", "classes", "--class", "bag", "--solver", "euler",
                 "--nfe", "2"]) == 0
    (one,) = (flow_run / "eval").glob("eval-*-class8-*.json")
    assert json.loads(one.read_text())["sampling"]["conditional"]["classes"] == ["Bag"]


def test_guidance_refused_where_it_cannot_apply(env, capsys):
    uncond = _train(env, "configs/fmnist/flow.yaml", "flow", *TINY_UNET)
    assert main(["sample", str(uncond), "--guidance", "2", "-n", "4", "-o", str(env / "u")]) == 2
    assert "conditional" in capsys.readouterr().err
    assert main(["sample", str(uncond), "--class", "bag", "-n", "4", "-o", str(env / "u")]) == 2
    assert "unconditional" in capsys.readouterr().err
    gan = _train(env, "configs/fmnist/gan-r3-cond.yaml", "gan-cond", "nets.G.ch=8", "nets.D.ch=8", "nets.G.z_dim=8")
    assert main(["sample", str(gan), "--class", "bag", "-n", "4", "--format", "npz", "-o", str(env / "g")]) == 0
    assert np.load(env / "g.npz")["labels"].tolist() == [8] * 4
    assert main(["sample", str(gan), "--guidance", "2", "-n", "4", "-o", str(env / "g2")]) == 2
    assert "GAN" in capsys.readouterr().err


def test_a_sample_section_its_solver_cannot_make_is_refused_before_training(env, capsys):
    run = env / "edm"
    assert main(["train", "configs/fmnist/edm.yaml", f"data.root={env / 'fmnist'}", "data.download=false", *COMMON,
                 *TINY_UNET, "sample.nfe=2", "--out", str(run)]) == 2
    assert "sample section" in capsys.readouterr().err and not run.exists()
