"""The study report: `genbench compare` on synthetic run directories (no training).

The conclusions must follow the numbers (swapped metrics give swapped verdicts), scores under
different protocols are refused, and the page works in a real browser (headless Chromium).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from genbench.cli import main
from genbench.report.collect import mean_ci
from genbench.report.plots import pareto_front
from genbench.report.verdicts import CLEAR_MARGIN, derive

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {"gan": "fmnist/gan", "diffusion": "fmnist/ddpm", "flow": "fmnist/flow"}
BASE_METRICS = {
    "gan": {"fid": 13.5, "kid": 0.18, "is": 5.6, "precision": 0.52, "recall": 0.53, "density": 0.45, "coverage": 0.38},
    "diffusion": {"fid": 30.0, "kid": 0.40, "is": 4.0, "precision": 0.40, "recall": 0.70, "density": 0.30,
                  "coverage": 0.50},
    "flow": {"fid": 20.0, "kid": 0.25, "is": 5.0, "precision": 0.45, "recall": 0.60, "density": 0.40,
             "coverage": 0.45},
}
SPEED = {"gan": (1100.0, 0.002, 1), "diffusion": (20.0, 0.15, 50), "flow": (22.0, 0.14, 50)}
REFERENCE = {"dataset": "fashion_mnist", "split": "train", "classes": None, "n": 64, "fingerprint": "ab" * 32,
             "verified_official": False, "extractor": "domain-fashion_mnist-v1", "extractor_sha256": "cd" * 32}


def _grid_png(path: Path, n: int, seed: int) -> None:
    from PIL import Image

    nrow = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / nrow))
    arr = np.full((2 + rows * 30, 2 + nrow * 30), 255, np.uint8)
    rng = np.random.default_rng(seed)
    for k in range(n):
        r, c = divmod(k, nrow)
        arr[2 + r * 30:2 + r * 30 + 28, 2 + c * 30:2 + c * 30 + 28] = rng.integers(0, 256, (28, 28))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def make_run(root: Path, family: str, name: str | None = None, metrics: dict | None = None, n: int = 2000,
             seed: int = 0, speed: tuple | None = None, data_root: Path | None = None,
             sweep: bool = True, reference: dict | None = None, params: dict | None = None) -> Path:
    """A run directory as `genbench train` + `genbench eval` leave it, with chosen numbers."""
    name = name or f"fmnist-{family}"
    run = root / name
    cfg = yaml.safe_load((ROOT / "configs" / f"{PRESETS[family]}.yaml").read_text())
    cfg.update(name=name, seed=seed)
    cfg["train"]["grid_n"] = 16
    if data_root is not None:
        cfg["data"].update(root=str(data_root), download=False)
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    params = params or ({"G": 234177, "D": 36577} if family == "gan" else {"model": 400_000})
    info = {"name": name, "method": family, "status": "finished", "device": "cpu",
            "data": {"name": "fashion_mnist", "n": 64, "shape": [1, 28, 28]}, "params": params,
            "step": 1000, "images_seen": 64_000, "train_seconds": 180.0}
    (run / "run.json").write_text(json.dumps(info))
    players = ["D", "G"] if family == "gan" else ["model"]
    with (run / "metrics.jsonl").open("w") as f:
        for step in range(50, 1001, 50):
            row = {"step": step, "kimg": step * 64 / 1000, **{f"loss/{p}": 1 / step ** 0.3 + i
                                                               for i, p in enumerate(players)}}
            if step % 250 == 0:
                row["proxy/fid@500"] = 200 / step ** 0.5
            f.write(json.dumps(row) + "\n")
    _grid_png(run / "samples" / "grid-000001000.png", 16, seed)
    ips, latency, nfe = speed or SPEED[family]
    m = dict(metrics if metrics is not None else BASE_METRICS[family])
    floor = {"fid": 0.13, "kid": -0.001, "is": 8.4, "precision": 0.85, "recall": 0.84, "density": 1.02,
             "coverage": 0.97, "split": "test", "n": 16}
    solver = {"gan": "generator", "diffusion": "ddim", "flow": "euler"}[family]
    record = {
        "genbench_eval": 1, "created": "2026-11-28T10:00:00+00:00", "run": name, "method": family,
        "run_dir": str(run), "checkpoint": {"step": 1000, "images_seen": 64_000, "train_seconds": 180.0},
        "weights": "ema",
        "sampling": {"solver": solver, "nfe": nfe, "n": n, "seeds": [0, n - 1], "batch_size": 256,
                     "seconds": n / ips, "images_per_s": ips},
        "extractor": {"name": "domain-fashion_mnist-v1", "weights_sha256": "cd" * 32},
        "reference": reference or REFERENCE, "metrics": m, "floor": floor,
        "speed": {"nfe": nfe, "latency_s": latency, "images_per_s": ips * 1.5, "best_batch_size": 64,
                  "device": "cpu (2 threads)"},
        "warnings": [], "params": params,
        "environment": {"genbench": "0.1.0", "torch": "2.x", "numpy": "2.x", "python": "3.11", "platform": "Linux",
                        "cuda_device": None, "cpu_threads": 2},
    }
    (run / "eval").mkdir()
    (run / "eval" / f"eval-step1000-{solver}-n{n}-seed0-domain.json").write_text(json.dumps(record))
    for step in (500, 1000):     # quick evaluations of the checkpoints on 500 samples (study eval.history_n)
        quick = copy.deepcopy(record)
        quick.update(floor=None, speed=None, metrics={"fid": m["fid"] * (1.5 if step == 1000 else 3), "kid": 0.3})
        quick["checkpoint"].update(step=step, images_seen=step * 64)
        quick["sampling"].update(n=500, seeds=[0, 499])
        (run / "eval" / f"eval-step{step}-{solver}-n500-seed0-domain.json").write_text(json.dumps(quick))
    if sweep and family != "gan":
        solvers = ("ddim", "dpm++2m") if family == "diffusion" else ("euler", "heun")
        curves = {s: [{"nfe": k, "fid": m["fid"] * (1 + 8 / k) * (1 + j), "kid": 0.1,
                       "images_per_s": ips * 50 / k} for k in (4, 8, 16)] for j, s in enumerate(solvers)}
        (run / "eval" / "sweep-n500-seed0.json").write_text(json.dumps(
            {"genbench_sweep": 1, "n": 500, "seed": 0, "metrics": "fid,kid", "curves": curves}))
    return run


def three_runs(root: Path, **kw) -> list[Path]:
    return [make_run(root, fam, **kw) for fam in ("gan", "diffusion", "flow")]


def test_compare_writes_a_self_contained_page_and_markdown(env, capsys):
    runs = three_runs(env / "runs", data_root=env / "fmnist")
    out = env / "report"
    assert main(["compare", *map(str, runs), "-o", str(out)]) == 0
    html = (out / "report.html").read_text()
    srcs = re.findall(r'<img[^>]*src="([^"]+)"', html)
    assert len(srcs) >= 7 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "http://" not in html and "https://" not in html and "<link" not in html
    for needle in ("GAN", "diffusion", "flow", "FID", "recall", "coverage", "NFE", "real data (floor)",
                   "Pros and cons", "Pareto", "CLEAR_MARGIN", "sampling.n", "cpu (2 threads)"):
        assert needle in html, needle
    md = (out / "report.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\((img/[^)]+)\)", md)
    assert len(images) == len(srcs) and all((out / p).is_file() for p in images)
    assert "| metric |" in md and "13.5" in md
    assert 'id="fid-vs-nfe"' in html and 'id="quality-vs-time"' in html and 'id="quality-over-training"' in html
    summary = json.loads((out / "report.json").read_text())
    answers = {a["question"]: a["winner"] for a in summary["answers"]}
    assert answers == {"best quality": "GAN", "most diversity": "diffusion", "fastest generation": "GAN"}
    assert summary["values"]["GAN"]["copy_ratio"][0] > 0       # nearest training images were searched
    assert any("slow to sample" in c["text"] for c in summary["cons"]["diffusion"])
    # the report still works when its folder is moved
    moved = env / "elsewhere"
    out.rename(moved)
    assert (moved / "report.html").read_text() == html


def test_swapped_metrics_give_swapped_verdicts(env):
    a, b = BASE_METRICS["gan"], BASE_METRICS["flow"]
    same = {"model": 300_000}     # the one number that is not swapped must not decide anything
    first = [make_run(env / "one", "gan", metrics=a, speed=SPEED["flow"], params=same),
             make_run(env / "one", "flow", metrics=b, speed=SPEED["gan"], params=same)]
    second = [make_run(env / "two", "gan", metrics=b, speed=SPEED["gan"], params=same),
              make_run(env / "two", "flow", metrics=a, speed=SPEED["flow"], params=same)]
    verdicts = []
    for runs, out in ((first, env / "r1"), (second, env / "r2")):
        assert main(["compare", *map(str, runs), "-o", str(out), "--no-neighbours"]) == 0
        verdicts.append(json.loads((out / "report.json").read_text()))
    swap = {"GAN": "flow", "flow": "GAN"}
    w1 = {a["question"]: a["winner"] for a in verdicts[0]["answers"]}
    w2 = {a["question"]: a["winner"] for a in verdicts[1]["answers"]}
    assert w1["best quality"] == "GAN" and w1["most diversity"] == "flow" and w1["fastest generation"] == "flow"
    assert w2 == {q: swap[w] for q, w in w1.items()}
    def items(v: dict, fam: str, kind: str, rename: bool) -> list[str]:
        texts = [i["text"] for i in v[kind][fam]]
        if rename:   # "best FID: GAN 13.5, flow 20" <-> "best FID: flow 13.5, GAN 20"
            texts = [re.sub(r"\b(GAN|flow)\b", lambda m: swap[m.group(1)], t) for t in texts]
        return sorted(texts)

    for kind in ("pros", "cons"):
        for fam in ("GAN", "flow"):
            assert items(verdicts[0], fam, kind, True) == items(verdicts[1], swap[fam], kind, False)
    assert verdicts[0]["pros"]["GAN"] and verdicts[0]["cons"]["GAN"]


def test_verdict_rules_margins_ties_and_absolute_thresholds():
    one = {"fid": (10.0, None), "recall": (0.35, None)}
    close = {"fid": (10.0 * (1 + CLEAR_MARGIN / 2), None), "recall": (0.5, None)}
    v = derive({"A": one, "B": close})
    quality = next(a for a in v.answers if a["question"] == "best quality")
    assert quality["winner"].startswith("no clear winner")       # within the margin: a tie
    # with seeds, overlapping 95% intervals are no lead either
    v = derive({"A": {"fid": (10.0, 3.0)}, "B": {"fid": (13.0, 3.0)}})
    assert v.rankings[0].leader is None
    v = derive({"A": {"fid": (10.0, 0.5)}, "B": {"fid": (13.0, 0.5)}})
    assert v.rankings[0].leader == "A" and "13" in v.cons["B"][0].text
    # the toy sets: fewer modes than the data is mode collapse
    v = derive({"A": {"modes": (5.0, None)}, "B": {"modes": (8.0, None)}}, floor={"modes": 8.0})
    assert any("mode collapse: 5 of 8" in c.text for c in v.cons["A"]) and not v.cons["B"]


def test_compare_refuses_different_protocols(env, capsys):
    gan = make_run(env / "runs", "gan", n=10000)
    flow = make_run(env / "runs", "flow", n=5000)
    assert main(["compare", str(gan), str(flow), "-o", str(env / "r")]) == 2
    err = capsys.readouterr().err
    assert "sampling.n" in err and "10000" in err and "5000" in err
    ref = copy.deepcopy(REFERENCE)
    ref["fingerprint"] = "ef" * 32
    other = make_run(env / "runs2", "flow", reference=ref)
    same_n = make_run(env / "runs2", "gan")
    assert main(["compare", str(same_n), str(other), "-o", str(env / "r")]) == 2
    assert "reference.fingerprint" in capsys.readouterr().err
    bare = env / "bare"
    bare.mkdir()
    (bare / "config.yaml").write_text((same_n / "config.yaml").read_text())
    assert main(["compare", str(same_n), str(bare), "-o", str(env / "r")]) == 2
    assert "no evaluation" in capsys.readouterr().err
    assert not (env / "r" / "report.html").exists()


def test_seeds_give_mean_and_confidence_interval(env):
    runs = [make_run(env / "runs", "gan", name=f"gan-s{s}", seed=s, metrics={**BASE_METRICS["gan"], "fid": f})
            for s, f in enumerate((10.0, 12.0, 14.0))]
    runs += [make_run(env / "runs", "flow", name=f"flow-s{s}", seed=s) for s in range(3)]
    assert main(["compare", *map(str, runs), "-o", str(env / "r"), "--no-neighbours"]) == 0
    summary = json.loads((env / "r" / "report.json").read_text())
    mean, ci = summary["values"]["GAN"]["fid"]
    assert mean == pytest.approx(12.0) and ci == pytest.approx(mean_ci([10, 12, 14])[1]) and ci > 4
    assert summary["values"]["flow"]["fid"][1] == 0.0
    assert "± " in (env / "r" / "report.html").read_text()


def test_pareto_front():
    assert pareto_front([(1, 10), (2, 5), (3, 7), (4, 1), (0.5, 20)]) == [(0.5, 20), (1, 10), (2, 5), (4, 1)]


def test_report_in_headless_chromium(env, tmp_path):
    from genbench.report.browser import check_report, find_chromium

    if find_chromium() is None:
        pytest.skip("chromium is not installed (make test installs it where apt-get is available)")
    runs = three_runs(env / "runs", data_root=env / "fmnist")
    out = env / "report"
    assert main(["compare", *map(str, runs), "-o", str(out)]) == 0
    check = check_report(out / "report.html", screenshot=tmp_path / "report.png")
    assert check["images"] >= 7
    assert check["broken"] == []
    assert check["errors"] == [] and check["console"] == []
    shot = Path(check["screenshot"])
    assert shot.stat().st_size > 10_000
    from PIL import Image

    assert Image.open(shot).size == (1280, 2000)


def test_compare_overwrite_swaps_in_the_new_report_once_complete(env, capsys):
    same = {"model": 300_000}
    first = [make_run(env / "one", "gan", metrics=BASE_METRICS["gan"], speed=SPEED["gan"], params=same),
             make_run(env / "one", "flow", metrics=BASE_METRICS["flow"], speed=SPEED["flow"], params=same)]
    out = env / "r"
    assert main(["compare", *map(str, first), "-o", str(out), "--no-neighbours"]) == 0
    old = json.loads((out / "report.json").read_text())
    assert main(["compare", *map(str, first), "-o", str(out), "--no-neighbours"]) == 2   # refused unasked
    assert "already exists" in capsys.readouterr().err
    swapped = [make_run(env / "two", "gan", metrics=BASE_METRICS["flow"], speed=SPEED["gan"], params=same),
               make_run(env / "two", "flow", metrics=BASE_METRICS["gan"], speed=SPEED["flow"], params=same)]
    assert main(["compare", *map(str, swapped), "-o", str(out), "--no-neighbours", "--overwrite"]) == 0
    new = json.loads((out / "report.json").read_text())
    assert new["values"] != old["values"]
    assert sorted(p.name for p in env.iterdir() if p.name.startswith(".")) == []   # no staging or old copy left


def test_a_family_that_has_not_reached_the_data_is_called_undertrained_not_ranked():
    """The demo's failure: a GAN at recall 0.2 'won' every question against a diffusion model at recall
    0.000. Families below LOW_RECALL are named undertrained and left out of quality and diversity."""
    from genbench.report.verdicts import LOW_RECALL

    gan = {"fid": (30.0, None), "recall": (0.199, None), "sample_images_per_s": (15000.0, None)}
    ddpm = {"fid": (117.0, None), "recall": (0.0, None), "sample_images_per_s": (15.0, None)}
    flow = {"fid": (63.7, None), "recall": (0.01, None), "sample_images_per_s": (17.0, None)}
    v = derive({"GAN": gan, "diffusion": ddpm, "flow": flow})
    answers = {a["question"]: a for a in v.answers}
    for q in ("best quality", "most diversity"):
        assert answers[q]["winner"] == "no verdict: undertrained at this budget", answers[q]
        assert "GAN recall 0.199" in answers[q]["evidence"] and str(LOW_RECALL) in answers[q]["rule"]
    assert answers["fastest generation"]["winner"] == "GAN"       # speed does not depend on training
    for fam in ("GAN", "diffusion", "flow"):
        assert any(c.text.startswith("undertrained at this budget") for c in v.cons[fam])
        assert not any(p.text.startswith("best FID") for p in v.pros[fam])
    # one family past the threshold among undertrained ones: still no ranking of quality (it needs two)
    v = derive({"GAN": {**gan, "recall": (0.5, None)}, "diffusion": ddpm, "flow": flow})
    assert {a["question"]: a for a in v.answers}["best quality"]["winner"].startswith("no verdict")
    # two families that reached the data are ranked; the third is named, not ranked
    v = derive({"GAN": {**gan, "recall": (0.5, None)}, "diffusion": ddpm, "flow": {**flow, "recall": (0.6, None)}})
    quality = {a["question"]: a for a in v.answers}["best quality"]
    assert quality["winner"] == "GAN" and "diffusion" not in quality["evidence"]
