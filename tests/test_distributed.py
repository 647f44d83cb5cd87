"""Distributed training, sampling and evaluation: 2 CPU processes (gloo) against 1.

One spawn of two ranks runs every distributed job through ``genbench.cli.main`` (as torchrun would
start it: RANK, WORLD_SIZE, MASTER_ADDR... in the environment); the single-process references run
in the test process. After k steps, 2 ranks x B/2 must equal 1 rank x B up to float rounding for
diffusion (tiny UNet, channels-last, flips), flow (with a resume under 2 ranks) and a GAN, and
sharded sampling must be bitwise equal to one process.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fileformats import make_idx_dataset
from genbench.cli import main
from genbench.train.checkpoint import list_checkpoints, load_checkpoint

WORLD = 2
STEPS = 3
TOL = {"rtol": 1e-4, "atol": 2e-6}
CLOCK = ("seconds", "images_per_s")


def ddpm_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "configs/fmnist/ddpm.yaml", "nets.model.ch=8", "nets.model.ch_mult=[1, 2]",
            "nets.model.attn_resolutions=[14]", "nets.model.groups=4", "nets.model.dropout=0", "sample.nfe=2",
            "optim.model.schedule.warmup_steps=0", f"data.root={data}", "data.download=false", "data.hflip=true",
            "train.batch_size=8", "train.ema.halflife_kimg=0.05", f"train.budget.steps={STEPS}",
            "train.ckpt_every=1", "train.keep_last=10", "train.log_every=1", "train.sample_every=1000",
            "train.grid_n=4", "train.tensorboard=false", "--no-progress", "--out", str(out), *extra]


def toy_args(family: str, out: Path, steps: int, *extra: str) -> list[str]:
    nets = (["nets.G.hidden=32", "nets.D.hidden=32", "nets.G.z_dim=4", "train.ema.halflife_kimg=0.05"]
            if family == "gan" else ["nets.model.hidden=32", "sample.nfe=2", "train.ema.halflife_kimg=0.05",
                                     "optim.model.schedule.warmup_steps=0"])
    return ["train", f"configs/toy2d/{family}.yaml", *nets, "data.n_points=256", "train.batch_size=16",
            f"train.budget.steps={steps}", "train.ckpt_every=1", "train.keep_last=10", "train.log_every=1",
            "train.sample_every=1000", "train.grid_n=8", "train.tensorboard=false", "--no-progress",
            "--out", str(out), *extra]


def sample_args(run: Path, out: Path) -> list[str]:
    # 21 seeds: uneven shares (11 + 10), batches that are not multiples of anything
    return ["sample", str(run), "-n", "21", "--seed", "5", "--batch-size", "8", "--format", "npz",
            "-o", str(out), "--device", "cpu"]


def eval_args(run: Path) -> list[str]:
    return ["eval", str(run), "--metrics", "modes,prdc", "-n", "40", "--no-floor", "--device", "cpu", "--overwrite"]


def sweep_args(run: Path, nfes: str) -> list[str]:
    return ["eval", str(run), "--nfe-sweep", "--solver", "euler,heun", "--nfe-list", nfes, "--metrics", "modes,prdc",
            "-n", "30", "--device", "cpu"]


def jobs(root: Path) -> list[tuple[str, list[str]]]:
    d = root / "dist"
    return [
        ("ddpm", ddpm_args(root / "fmnist", d / "ddpm")),
        ("flow", toy_args("flow", d / "flow", 2)),
        ("flow-resume", toy_args("flow", d / "flow", STEPS + 1, "--resume")),
        ("gan", toy_args("gan", d / "gan", STEPS)),
        ("sample", sample_args(root / "single" / "ddpm", d / "samples")),
        ("eval", eval_args(root / "single" / "flow")),
        ("sweep", sweep_args(root / "single" / "flow", "2,3")),
        ("sweep-more", sweep_args(root / "single" / "flow", "2,3,5")),   # reuses 2 and 3 (rank 0's files)
        ("odd-batch", toy_args("flow", d / "odd", 2, "train.batch_size=15")),
    ]


def _worker(rank: int, port: int, root: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_WORLD_SIZE=str(WORLD),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    results = {}
    for name, argv in jobs(Path(root)):
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(argv)
        results[name] = {"code": code, "err": err.getvalue(), "out": out.getvalue()}
    (Path(root) / f"rank{rank}.json").write_text(json.dumps(results))
    _leave()


def _leave() -> None:
    """Destroy the process group while the process is whole, then exit without the interpreter's
    teardown: gloo's threads met at atexit in a spawned child have aborted it (SIGABRT, 'terminate
    called without an active exception') after every job had finished and written its results."""
    from genbench import dist

    dist.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The single-process references, then the same jobs on 2 ranks; {name: per-rank results}."""
    root = tmp_path_factory.mktemp("dist")
    make_idx_dataset(root / "fmnist", n_train=48, n_test=8)
    env = {"HOME": str(root / "home"), "GENBENCH_DATA": str(root / "nodata"), "GENBENCH_CACHE": str(root / "cache")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        s = root / "single"
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(ddpm_args(root / "fmnist", s / "ddpm")) == 0
            assert main(toy_args("flow", s / "flow", STEPS + 1)) == 0
            assert main(toy_args("gan", s / "gan", STEPS)) == 0
            assert main(sample_args(s / "ddpm", s / "samples")) == 0
        torch.multiprocessing.spawn(_worker, args=(_free_port(), str(root)), nprocs=WORLD, join=True)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    per_rank = [json.loads((root / f"rank{r}.json").read_text()) for r in range(WORLD)]
    results = {name: [pr[name] for pr in per_rank] for name in per_rank[0]}
    for name, rs in results.items():
        if name != "odd-batch":
            assert all(r["code"] == 0 for r in rs), f"{name}: {[r['err'][-2000:] for r in rs]}"
    return root, results


def close(a, b, where: str) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            close(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.shape == b.shape and a.dtype == b.dtype, where
        if a.is_floating_point():
            torch.testing.assert_close(a, b, **TOL, msg=lambda m: f"{where}: {m}")
        else:
            assert torch.equal(a, b), where
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=TOL["rtol"], abs=TOL["atol"]), where
    else:
        assert a == b, where


def logged(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(ln).items() if k not in CLOCK}
            for ln in (run / "metrics.jsonl").read_text().splitlines()]


def max_change(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a if a[k].is_floating_point())


@pytest.mark.parametrize("family", ["ddpm", "flow", "gan"])
def test_two_ranks_with_half_batches_equal_one_rank(runs, family):
    root, _ = runs
    single, dist = root / "single" / family, root / "dist" / family
    ck_s, ck_d = list_checkpoints(single / "checkpoints"), list_checkpoints(dist / "checkpoints")
    assert sorted(ck_s) == sorted(ck_d)
    last = max(ck_s)
    a, b = load_checkpoint(ck_s[last]), load_checkpoint(ck_d[last])
    for key in ("nets", "ema", "optim", "sampler", "step", "images_seen", "draws", "log"):
        close(a[key], b[key], key)
    assert "rng_ranks" in b and len(b["rng_ranks"]) == WORLD
    close(logged(single), logged(dist), "metrics.jsonl")
    # the tolerance is far below what training moved: a wrong slice or noise would show
    first = load_checkpoint(ck_s[min(ck_s)])
    for p in a["nets"]:
        assert max_change(a["nets"][p], first["nets"][p]) > 1000 * TOL["atol"]
        assert max_change(a["nets"][p], b["nets"][p]) < 100 * TOL["atol"]
    info = json.loads((dist / "run.json").read_text())
    assert info["status"] == "finished" and info["world_size"] == WORLD


def test_rank0_alone_writes_and_prints(runs):
    _, results = runs
    for name in ("ddpm", "gan", "sample"):
        r0, r1 = results[name]
        assert r0["out"].strip() and not r1["out"].strip(), name
    r0, r1 = results["odd-batch"]
    assert r0["code"] == r1["code"] == 2
    lines = [ln for ln in r0["err"].splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("genbench: error: "), r0["err"]
    assert "train.batch_size=15 does not split evenly over 2 processes" in lines[0]
    assert "train.batch_size=16" in lines[0] and not r1["err"].strip()


def test_sharded_sampling_is_bitwise_single_process(runs):
    root, _ = runs
    a = np.load(root / "single" / "samples.npz")
    b = np.load(root / "dist" / "samples.npz")
    assert a["samples"].shape == (21, 28, 28, 1)
    assert np.array_equal(a["seeds"], b["seeds"]) and np.array_equal(a["samples"], b["samples"])
    assert len(np.unique(a["samples"].reshape(21, -1), axis=0)) == 21


def test_sharded_eval_scores_like_single_process(runs):
    root, results = runs
    run = root / "single" / "flow"
    (path,) = (run / "eval").glob("eval-*-n40-*.json")
    dist_record = json.loads(path.read_text())
    assert results["eval"][0]["out"].strip() and not results["eval"][1]["out"].strip()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(eval_args(run)) == 0
    single_record = json.loads(path.read_text())
    assert dist_record["metrics"] == single_record["metrics"]
    assert dist_record["sampling"]["seeds"] == single_record["sampling"]["seeds"]


def test_sharded_nfe_sweep_equals_single_process(runs, tmp_path):
    root, results = runs
    run = root / "single" / "flow"
    dist_sweep = json.loads((run / "eval" / "sweep-n30-seed0.json").read_text())
    assert "NFE 5" in results["sweep-more"][0]["out"] and not results["sweep-more"][1]["out"].strip()
    # euler at 2, 3, 5 and heun at 3, 5 (odd counts only), each point its own eval file
    assert sorted(p.name.split("-")[2] for p in (run / "eval").glob("eval-*-n30-*.json")) == \
        ["euler2", "euler3", "euler5", "heun3", "heun5"]
    fresh = tmp_path / "flow"
    shutil.copytree(run, fresh, ignore=shutil.ignore_patterns("eval"))
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(sweep_args(fresh, "2,3,5")) == 0
    single_sweep = json.loads((fresh / "eval" / "sweep-n30-seed0.json").read_text())

    def scores(record):
        return {k: [{m: v for m, v in p.items() if m != "images_per_s"} for p in pts]
                for k, pts in record["curves"].items()}

    assert [p["nfe"] for p in dist_sweep["curves"]["euler"]] == [2, 3, 5]
    assert scores(dist_sweep) == scores(single_sweep)


def test_layout_change_on_resume_keeps_the_optimiser_right(runs, tmp_path, monkeypatch):
    """A run resumed with another train.channels_last: the fused optimiser walks parameters and
    state as flat memory, so the state must follow the parameters' layout (else elements mix)."""
    root, _ = runs
    for k, v in {"HOME": root / "home", "GENBENCH_DATA": root / "nodata", "GENBENCH_CACHE": root / "cache"}.items():
        monkeypatch.setenv(k, str(v))
    run = tmp_path / "ddpm"
    with contextlib.redirect_stdout(io.StringIO()):
        args = ddpm_args(root / "fmnist", run)
        assert main([*args[:-2], "train.budget.steps=2", "train.channels_last=false", *args[-2:]]) == 0
        assert main([*args, "--resume"]) == 0
    a = load_checkpoint(list_checkpoints(root / "single" / "ddpm" / "checkpoints")[STEPS])
    b = load_checkpoint(list_checkpoints(run / "checkpoints")[STEPS])
    close(a["nets"], b["nets"], "nets")
    close(a["optim"], b["optim"], "optim")


def _own_worker(rank: int, port: int, root: str, args: list[str]) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_WORLD_SIZE=str(WORLD),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(args)
    if code != 0:
        raise SystemExit(f"{args[1]} on rank {rank} exited with {code}")
    _leave()


def _two_ranks_equal_one(tmp_path, monkeypatch, args_for, players) -> None:
    """``args_for(out)`` trained in this process and under 2 ranks (own processes) give the same weights."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GENBENCH_DATA", str(tmp_path / "nodata"))
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(args_for(tmp_path / "single")) == 0
    torch.multiprocessing.spawn(_own_worker, args=(_free_port(), str(tmp_path), args_for(tmp_path / "dist")),
                                nprocs=WORLD, join=True)
    ck_s, ck_d = list_checkpoints(tmp_path / "single" / "checkpoints"), list_checkpoints(tmp_path / "dist" / "checkpoints")
    assert sorted(ck_s) == sorted(ck_d)
    a, b = load_checkpoint(ck_s[max(ck_s)]), load_checkpoint(ck_d[max(ck_d)])
    for key in ("nets", "ema", "optim", "step", "images_seen", "draws"):
        close(a[key], b[key], key)
    first = load_checkpoint(ck_s[min(ck_s)])
    for player in players:
        assert max_change(a["nets"][player], first["nets"][player]) > 1000 * TOL["atol"], player


def test_meanflow_two_ranks_equal_one_rank(tmp_path, monkeypatch):
    """MeanFlow's JVP runs on the unwrapped net without grad and the gradient forward through DDP
    (methods/meanflow.py): 2 ranks x B/2 give 1 rank x B's weights, so the gradients were all-reduced.
    In its own processes: the JVP job inside the long multi-job worker above has aborted a rank at exit."""
    _two_ranks_equal_one(tmp_path, monkeypatch, lambda out: toy_args("meanflow", out, STEPS), ["model"])


def test_r1_r2_double_backward_two_ranks_equal_one_rank(tmp_path, monkeypatch):
    """R3GAN's R1 + R2 penalties differentiate D's input gradient (a double backward through the DDP-wrapped
    D), regularised lazily every 2nd D update: 2 ranks x B/2 still give 1 rank x B's G and D, so the penalty's
    gradient was all-reduced like the loss's."""
    def args_for(out: Path) -> list[str]:
        args = toy_args("gan", out, 4, "method.loss=rpgan", "method.penalty=r1+r2", "method.gamma=0.1",
                        "method.reg_every=2")
        args[1] = "configs/toy2d/gan-r3.yaml"
        return args

    _two_ranks_equal_one(tmp_path, monkeypatch, args_for, ["G", "D"])
