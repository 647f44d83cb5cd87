"""Exact resume under SIGKILL: a run killed at random moments (and once while a checkpoint is
being written) and resumed each time up to N steps ends bitwise equal to an uninterrupted run.

`genbench train` runs as a subprocess on the 2-D ring (MLP players, so each process spends its
time in training rather than in convolution set-up). Kills are triggered by progress (after a
random number of complete checkpoints, plus a random delay of up to one step), so they land
at random points of a step: in the update, the logging, or a checkpoint write. The seeded
``random.Random`` makes the kill schedule reproducible.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from genbench.cli import main
from genbench.train.checkpoint import list_checkpoints, load_checkpoint

REPO = Path(__file__).resolve().parents[1]
STEPS = 16

TOY = {
    "gan": ["nets.G.hidden=64", "nets.D.hidden=64", "nets.G.z_dim=16", "train.ema.halflife_kimg=1"],
    "ddpm": ["nets.model.hidden=64", "sample.nfe=2"],
    "flow": ["nets.model.hidden=64", "sample.nfe=2"],
    "meanflow": ["nets.model.hidden=64", "sample.nfe=2"],
    "ect": ["nets.model.hidden=64", "sample.nfe=2", "method.stage_steps=3"],   # + train.init_from (teacher)
}
EXTRA: dict[str, list[str]] = {}
# step whose checkpoint write is killed (the gan's is the very first checkpoint: no complete
# checkpoint exists yet, and the resumed run must start cleanly from scratch)
KILL_IN_WRITE = {"gan": 1, "ddpm": 6, "flow": 4, "meanflow": 5, "ect": 3}


def toy_args(family: str, out: Path) -> list[str]:
    return [f"configs/toy2d/{family}.yaml", *TOY[family], *EXTRA.get(family, []), "data.n_points=512", "train.batch_size=32",
            f"train.budget={{steps: {STEPS}}}", "train.ckpt_every=1", "train.keep_last=2", "train.log_every=2",
            "train.sample_every=1000", "train.grid_n=16", "train.tensorboard=false", "--no-progress",
            "--out", str(out)]


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GENBENCH_DATA", str(tmp_path / "nodata"))
    e = dict(os.environ)
    e.pop("GENBENCH_TEST_CKPT_PAUSE", None)
    return e


def start(args: list[str], env: dict, pause: str | None = None) -> subprocess.Popen:
    env = dict(env)
    if pause:
        env["GENBENCH_TEST_CKPT_PAUSE"] = pause
    return subprocess.Popen([sys.executable, "-m", "genbench", "train", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(cond, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    end = time.time() + timeout
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"train exited ({proc.returncode}) before the kill: {proc.stderr.read()!r}")
        assert time.time() < end, "timed out waiting for the training process"
        time.sleep(0.003)


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.returncode


def same(x, y, where: str) -> None:
    if isinstance(x, dict):
        assert x.keys() == y.keys(), where
        for k in x:
            same(x[k], y[k], f"{where}.{k}")
    elif isinstance(x, (list, tuple)):
        assert len(x) == len(y), where
        for i, (a, b) in enumerate(zip(x, y, strict=True)):
            same(a, b, f"{where}[{i}]")
    elif isinstance(x, torch.Tensor):
        assert x.dtype == y.dtype and torch.equal(x, y), where
    else:
        assert x == y, where


def logged(run: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock fields."""
    clock = ("seconds", "images_per_s")
    return [{k: v for k, v in json.loads(ln).items() if k not in clock}
            for ln in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A tiny toy flow run for consistency tuning to start from."""
    out = tmp_path_factory.mktemp("teacher") / "flow"
    assert main(["train", *toy_args("flow", out)[:-2], "train.budget={steps: 4}", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("family", ["gan", "ddpm", "flow", "meanflow", "ect"])
def test_kill_and_resume_is_bitwise_exact(tmp_path, env, family, request):
    if family == "ect":   # a resumed run must not reload the teacher over its own checkpoint
        EXTRA["ect"] = [f"train.init_from={request.getfixturevalue('teacher')}"]
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert main(["train", *toy_args(family, ref)]) == 0
    rng = random.Random(f"kill-{family}")
    ckpts = run / "checkpoints"

    # kill 1: deterministically inside a checkpoint write (temp file written, not yet renamed)
    step = KILL_IN_WRITE[family]
    tmp = ckpts / f".ckpt-{step:09d}.pt.tmp"
    proc = start(toy_args(family, run), env, pause=f"30@{step}")
    wait_for(tmp.exists, proc)
    time.sleep(0.2)   # the temp file is complete and fsynced: the writer sleeps before the rename
    kill(proc)
    assert tmp.exists()
    complete = list_checkpoints(ckpts)
    if step == 1:   # killed before the first checkpoint existed: --resume starts from scratch
        assert complete == {}
    else:           # the previous checkpoint is the last complete one, intact and loadable (checksum)
        assert max(complete) == step - 1 and load_checkpoint(complete[step - 1])["step"] == step - 1
    kills = 1

    # kills 2 and 3 at random moments: after a random number of new checkpoints plus a random delay
    for _ in range(2):
        have = max(list_checkpoints(ckpts), default=0)
        target = min(STEPS - 2, have + rng.randint(1, 4))
        proc = start([*toy_args(family, run), "--resume"], env)
        wait_for(lambda: max(list_checkpoints(ckpts), default=0) >= target, proc)  # noqa: B023
        time.sleep(rng.uniform(0.0, 0.03))
        assert proc.poll() is None, "finished before the kill"
        kill(proc)
        kills += 1
    assert kills >= 3

    proc = start([*toy_args(family, run), "--resume"], env)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert not list(ckpts.glob(".*.tmp")), "temp files of killed writers are cleaned at the next save"
    assert sorted(list_checkpoints(ckpts)) == sorted(list_checkpoints(ref / "checkpoints")) == [STEPS - 1, STEPS]

    a = load_checkpoint(list_checkpoints(ref / "checkpoints")[STEPS])
    b = load_checkpoint(list_checkpoints(ckpts)[STEPS])
    assert a.keys() == b.keys()
    for key in a.keys() - {"seconds"}:   # weights, EMA, optimisers, schedulers, data order, RNG, log sums...
        same(a[key], b[key], key)
    assert logged(ref) == logged(run)
    assert [r["step"] for r in logged(run)] == list(range(2, STEPS + 1, 2))
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["step"] == STEPS

