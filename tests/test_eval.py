"""`genbench eval`: every score travels with its protocol, beside the real-data floor."""

from __future__ import annotations

import json

import pytest

from genbench.cli import main
from genbench.errors import GenbenchError
from genbench.evaluate import evaluate_run, parse_metrics


def train_tiny_gan(env, run, *extra: str) -> None:
    """A 2-step DCGAN run on the small Fashion-MNIST files of the ``env`` fixture."""
    assert main(["train", "configs/fmnist/gan.yaml", "nets.G.ch=8", "nets.G.z_dim=8", "nets.D.ch=8",
                 f"data.root={env / 'fmnist'}", "data.download=false", "train.batch_size=8",
                 "train.budget={steps: 2}", "train.tensorboard=false", "train.grid_n=4", *extra,
                 "--out", str(run), "--no-progress"]) == 0


def test_toy_eval_counts_modes_and_writes_the_protocol(env, capsys):
    run = env / "ring"
    assert main(["train", "configs/toy2d/flow.yaml", "train.budget.steps=400", "train.tensorboard=false",
                 "data.n_points=5000", "--out", str(run), "--no-progress"]) == 0
    assert main(["eval", str(run), "-n", "500", "--nfe", "20"]) == 0
    out = capsys.readouterr().out
    assert "floor:" in out and "modes" in out
    (path,) = (run / "eval").glob("*.json")
    rec = json.loads(path.read_text())
    assert rec["sampling"]["nfe"] == 20 and rec["sampling"]["n"] == 500 and rec["sampling"]["seeds"] == [0, 499]
    assert rec["sampling"]["batch_size"] == 64   # the CPU default, recorded as used
    assert rec["weights"] == "ema" and rec["checkpoint"]["step"] == 400
    assert rec["checkpoint"]["images_seen"] == 400 * 512
    assert rec["floor"]["modes"] == 8 and rec["floor"]["hq_fraction"] > 0.95
    assert 0 <= rec["metrics"]["modes"] <= 8 and "precision" in rec["metrics"]
    assert rec["environment"]["torch"]
    # the same evaluation is not silently overwritten
    assert main(["eval", str(run), "-n", "500", "--nfe", "20"]) == 2
    assert "already exists" in capsys.readouterr().err
    # ... but can be asked for: reuse returns the existing record as it is
    assert evaluate_run(run, n=500, nfe=20, reuse=True) == (path, rec)


def test_image_eval_with_the_domain_classifier(env, capsys):
    run = env / "img"
    train_tiny_gan(env, run)
    assert main(["eval", str(run), "-n", "40", "--metrics", "fid,kid,is,prdc,speed"]) == 0
    (path,) = (run / "eval").glob("*.json")
    rec = json.loads(path.read_text())
    assert rec["extractor"]["name"].startswith("domain-fashion_mnist")
    assert len(rec["extractor"]["weights_sha256"]) == 64
    assert rec["reference"]["dataset"] == "fashion_mnist" and rec["reference"]["split"] == "train"
    assert rec["reference"]["n"] == 64 and rec["reference"]["verified_official"] is False
    assert rec["sampling"]["nfe"] == 1 and rec["speed"]["nfe"] == 1 and rec["speed"]["latency_s"] > 0
    m = rec["metrics"]
    assert m["fid"] > 0 and m["is"] >= 1 and 0 <= m["precision"] <= 1 and "kid_std" in m
    assert rec["floor"]["split"] == "test" and rec["floor"]["n"] == 16 and rec["floor"]["fid"] >= 0
    assert any("biased" in w for w in rec["warnings"])
    assert len(list((env / "cache" / "refstats").glob("*.npz"))) == 2  # train reference + test floor, cached


def test_metric_names_are_checked():
    assert parse_metrics(None, "points", False) == ["modes", "prdc"]
    with pytest.raises(GenbenchError, match="inapplicable"):
        parse_metrics("fid,bogus", "image", False)
    with pytest.raises(GenbenchError, match="stacked"):
        parse_metrics("modes", "image", False)


def test_proxy_scores_are_logged_during_training(env):
    run = env / "proxy"
    train_tiny_gan(env, run, "train.budget={steps: 4}", "train.proxy_every=2", "train.proxy_n=24")
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    proxy = [r for r in rows if "proxy/fid@24" in r]
    assert [r["step"] for r in proxy] == [2, 4]
    assert all(r["proxy/fid@24"] > 0 and "proxy/kid@24" in r for r in proxy)


def test_stacked_fashion_mnist_counts_the_1000_modes(env):
    run = env / "stacked"
    train_tiny_gan(env, run, "data.name=stacked_fashion_mnist", "data.n_points=64")
    assert main(["eval", str(run), "-n", "30", "--metrics", "fid,modes"]) == 0
    (path,) = (run / "eval").glob("*.json")
    rec = json.loads(path.read_text())
    assert rec["extractor"]["name"].startswith("stacked3-domain")
    assert 1 <= rec["metrics"]["modes"] <= 30 and rec["metrics"]["kl"] >= 0
    assert rec["reference"]["dataset"] == "stacked_fashion_mnist"
    # the floor counts the modes of real held-out triples through the same classifier
    floor = rec["floor"]
    assert floor["split"] == "test" and floor["modes_total"] == 1000
    assert 1 <= floor["modes"] <= floor["n"] and floor["kl"] >= 0


def test_nfe_sweep_records_fid_against_nfe(env):
    run = env / "ring"
    assert main(["train", "configs/toy2d/flow.yaml", "train.budget.steps=50", "train.tensorboard=false",
                 "data.n_points=2000", "--out", str(run), "--no-progress"]) == 0
    assert main(["eval", str(run), "--nfe-sweep", "--solver", "euler,heun", "--nfe-list", "1,2,3,4", "-n", "200",
                 "--metrics", "modes"]) == 0
    rec = json.loads((run / "eval" / "sweep-n200-seed0.json").read_text())
    assert [p["nfe"] for p in rec["curves"]["euler"]] == [1, 2, 3, 4]
    assert [p["nfe"] for p in rec["curves"]["heun"]] == [1, 3]  # heun makes 2N - 1 evaluations
    # a second sweep at the same n adds its counts to the curve instead of replacing it
    assert main(["eval", str(run), "--nfe-sweep", "--solver", "euler", "--nfe-list", "8,2", "-n", "200",
                 "--metrics", "modes"]) == 0
    rec = json.loads((run / "eval" / "sweep-n200-seed0.json").read_text())
    assert [p["nfe"] for p in rec["curves"]["euler"]] == [1, 2, 3, 4, 8]
    assert [p["nfe"] for p in rec["curves"]["heun"]] == [1, 3]


def test_dopri5_tolerance_is_an_option_recorded_and_named(env):
    """--tol sets dopri5's rtol = atol: a looser tolerance spends fewer evaluations, lands in its own
    file (never overwriting another tolerance's result) and is recorded (refusals: test_bad_input)."""
    run = env / "ring-tol"
    assert main(["train", "configs/toy2d/flow.yaml", "train.budget.steps=30", "train.tensorboard=false",
                 "data.n_points=2000", "--out", str(run), "--no-progress"]) == 0
    for tol in ("1e-2", "1e-6"):
        assert main(["eval", str(run), "--solver", "dopri5", "--tol", tol, "-n", "100", "--metrics", "modes",
                     "--no-floor"]) == 0
    loose, tight = (json.loads(next((run / "eval").glob(f"*dopri5-tol{t}-*.json")).read_text())
                    for t in ("0.01", "1e-06"))
    assert loose["sampling"]["options"] == {"rtol": 0.01, "atol": 0.01}
    assert loose["sampling"]["nfe"] < tight["sampling"]["nfe"]
