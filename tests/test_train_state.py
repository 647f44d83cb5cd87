"""The training state: one checkpoint layout for save, --resume and load_run; damaged checkpoints
refused in one line; the loop stays readable (no closures sharing state through nonlocal)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from genbench.config import load_config
from genbench.errors import GenbenchError
from genbench.methods import build_method
from genbench.run import load_run
from genbench.rundir import prepare_run_dir
from genbench.train.budget import Budget
from genbench.train.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from genbench.train.loop import images_per_step, train
from genbench.train.setup import Runtime
from genbench.train.state import TrainState

SRC = Path(__file__).resolve().parents[1] / "src" / "genbench"


def _run(tmp_path, method="gan", steps=6):
    cfg = load_config(f"configs/toy2d/{method}.yaml", [f"train.budget={{steps: {steps}}}", "train.ckpt_every=3",
                                                       "train.sample_every=1000", "train.tensorboard=false",
                                                       "data.n_points=256", "train.batch_size=32"])
    run = tmp_path / method
    cfg = prepare_run_dir(run, cfg)
    train(cfg, run, progress=False)
    return cfg, run


def _fresh_state(cfg):
    rt = Runtime.create(cfg.train)
    method = build_method(cfg.method)
    budget = Budget(cfg.train.budget, 256, images_per_step(cfg, method))
    return TrainState.for_training(cfg, method, (2,), "points", 256, budget, rt)


def _same(a, b, path=""):
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            _same(u, v, f"{path}[{i}]")
    elif torch.is_tensor(a):
        assert torch.equal(a, b), path
    else:
        assert a == b, path


def test_a_checkpoint_loads_back_into_an_identical_state(tmp_path):
    """load_state_dict(state_dict()) is the identity: what resume restores is what was saved."""
    cfg, run = _run(tmp_path)
    sd = load_checkpoint(list_checkpoints(run / "checkpoints")[6])
    state = _fresh_state(cfg)
    state.load_state_dict(sd, source="ckpt")
    again = state.state_dict()
    again["rng"] = sd["rng"]   # the global RNG is restored into torch, then read again: compare it apart
    assert torch.equal(torch.get_rng_state(), sd["rng"]["torch"])
    _same(again, sd)


def test_load_run_reads_the_same_layout_as_resume(tmp_path):
    cfg, run = _run(tmp_path, "flow")
    sd = load_checkpoint(list_checkpoints(run / "checkpoints")[6])
    loaded = load_run(run)
    assert loaded.step == 6 and loaded.latent_shape == tuple(sd["latent_shape"])
    for p, net in loaded.nets.items():
        _same(net.state_dict(), sd["nets"][p])
    assert loaded.ema is not None
    ema = {f"module.{k}": v for k, v in loaded.ema.state_dict().items()}
    _same(ema, {k: v for k, v in sd["ema"].items() if k != "n_averaged"})


@pytest.mark.parametrize("damage, expected", [
    (lambda sd: [1, 2, 3], "holds a list, not a genbench checkpoint"),
    (lambda sd: {k: v for k, v in sd.items() if k not in ("nets", "optim")}, "lacks 'nets', 'optim'"),
    (lambda sd: {**sd, "nets": {"model": sd["nets"]["G"]}}, "holds the networks ['model']"),
    (lambda sd: {**sd, "nets": {**sd["nets"], "G": {k: v[..., :1] for k, v in sd["nets"]["G"].items()}}},
     "does not fit the G network"),
    (lambda sd: {**sd, "optim": {"G": {}, "D": {}}}, "does not fit this run's optimiser or data"),
])
def test_a_damaged_checkpoint_is_refused_on_resume_in_one_line(tmp_path, damage, expected):
    cfg, run = _run(tmp_path)
    sd = load_checkpoint(list_checkpoints(run / "checkpoints")[6])
    save_checkpoint(damage(sd), run / "checkpoints", 9, keep_last=5)
    with pytest.raises(GenbenchError) as err:
        train(cfg, run, resume=True, progress=False)
    assert expected in err.value.problem and "ckpt-000000009.pt" in err.value.problem


def test_the_loop_reads_top_to_bottom():
    """train() stays short, and no part of the loop shares state through nonlocal."""
    tree = ast.parse((SRC / "train" / "loop.py").read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "train")
    assert fn.end_lineno - fn.lineno + 1 < 100
    for path in (SRC / "train").rglob("*.py"):
        assert not any(isinstance(n, ast.Nonlocal) for n in ast.walk(ast.parse(path.read_text()))), path


def test_a_resumed_run_prunes_what_a_killed_writer_left(tmp_path, env):
    """A writer killed after its save but before its pruning leaves one checkpoint too many; resuming, even
    with nothing left to train, prunes to keep_last."""
    import contextlib
    import io

    from genbench.cli import main
    from genbench.train.checkpoint import list_checkpoints, prune, save_checkpoint

    folder = tmp_path / "c"
    for step in (1, 2, 3):
        save_checkpoint({"step": step}, folder, step, keep_last=10)
    prune(folder, keep_last=2)
    assert sorted(list_checkpoints(folder)) == [2, 3]

    run = tmp_path / "run"
    args = ["train", "configs/toy2d/flow.yaml", "nets.model.hidden=16", "data.n_points=256", "train.batch_size=16",
            "train.budget={steps: 3}", "train.ckpt_every=1", "train.keep_last=2", "train.tensorboard=false",
            "train.grid_n=8", "--no-progress", "--out", str(run)]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(args) == 0
        assert sorted(list_checkpoints(run / "checkpoints")) == [2, 3]
        # what a kill between the save of step 3 and its pruning leaves: step 1 still complete
        (run / "checkpoints" / "ckpt-000000001.pt").write_bytes((run / "checkpoints" / "ckpt-000000002.pt").read_bytes())
        (run / "checkpoints" / "ckpt-000000001.pt.sha256").write_bytes(
            (run / "checkpoints" / "ckpt-000000002.pt.sha256").read_bytes())
        assert sorted(list_checkpoints(run / "checkpoints")) == [1, 2, 3]
        assert main([*args, "--resume"]) == 0
    assert sorted(list_checkpoints(run / "checkpoints")) == [2, 3]
