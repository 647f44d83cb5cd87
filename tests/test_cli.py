"""The CLI end to end on tiny models: train -> checkpoint -> resume -> sample, and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fileformats import make_idx_dataset
from genbench.cli import main
from genbench.data import sources

TINY = {
    "ddpm": ["nets.model.ch=8", "nets.model.ch_mult=[1, 2]", "nets.model.attn_resolutions=[14]",
             "nets.model.groups=4", "sample.nfe=2"],
    "flow": ["nets.model.ch=8", "nets.model.ch_mult=[1, 2]", "nets.model.attn_resolutions=[14]",
             "nets.model.groups=4", "sample.nfe=2"],
    "gan": ["nets.G.ch=8", "nets.G.z_dim=8", "nets.D.ch=8"],
}


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GENBENCH_DATA", str(tmp_path / "nodata"))
    monkeypatch.setattr(sources, "SYSTEM_DATASETS_DIR", tmp_path / "nosystem")
    make_idx_dataset(tmp_path / "fmnist", n_train=48, n_test=8)
    return tmp_path / "fmnist"


def tiny_args(family: str, data_dir: Path, steps: int, *extra: str) -> list[str]:
    return [f"configs/fmnist/{family}.yaml", *TINY[family], f"data.root={data_dir}", "data.download=false",
            "data.hflip=true", "train.batch_size=8", f"train.budget={{steps: {steps}}}", "train.ckpt_every=2",
            "train.sample_every=3", "train.grid_n=4", "train.log_every=1", "train.tensorboard=false",
            "--no-progress", *extra]


def run_cli(argv, capsys) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def error_line(code: int, err: str) -> str:
    assert code != 0
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("genbench: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_help_is_light():
    """--help must not import torch (it would take seconds)."""
    code = ("import sys; from genbench.cli import build_parser\n"
            "try:\n build_parser().parse_args(['train', '--help'])\nexcept SystemExit: pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_train_resume_sample_round_trip(tmp_path, data_dir, capsys):
    run = tmp_path / "run"
    assert main(["train", *tiny_args("ddpm", data_dir, 4), "--out", str(run)]) == 0
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "run.json", "metrics.jsonl", "checkpoints", "samples"}
    ckpts = sorted(p.name for p in (run / "checkpoints").glob("*.pt"))
    assert ckpts == ["ckpt-000000002.pt", "ckpt-000000004.pt"]
    assert (run / "samples" / "grid-000000003.png").exists() and (run / "samples" / "grid-000000004.png").exists()
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["step"] == 4 and info["images_seen"] == 32
    assert info["data"]["verified_official"] is False  # generated files are not the official release

    # resume with a larger budget continues from step 4, not from the start
    assert main(["train", *tiny_args("ddpm", data_dir, 6), "--out", str(run), "--resume"]) == 0
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert json.loads((run / "run.json").read_text())["step"] == 6

    code = main(["sample", str(run), "-n", "5", "--batch-size", "2", "--solver", "ddim", "--nfe", "3",
                 "-o", str(tmp_path / "s")])
    assert code == 0
    arr = np.load(tmp_path / "s.npz")
    assert arr["samples"].shape == (5, 28, 28, 1) and arr["samples"].dtype == np.uint8
    assert int(arr["nfe"]) == 3 and arr["seeds"].tolist() == [0, 1, 2, 3, 4]
    assert (tmp_path / "s.png").exists()
    # same seeds, other batch size -> same images (per-sample noise streams)
    assert main(["sample", str(run), "-n", "3", "--batch-size", "3", "--solver", "ddim", "--nfe", "3",
                 "-o", str(tmp_path / "t"), "--format", "npz"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "t.npz")["samples"].astype(int),
                               arr["samples"][:3].astype(int), atol=1)
    # never overwrite unasked
    code, err = run_cli(["sample", str(run), "-n", "5", "-o", str(tmp_path / "s")], capsys)
    assert "already exists" in error_line(code, err)


@pytest.mark.parametrize("family", ["gan", "ddpm", "flow"])
def test_resume_is_exact(tmp_path, data_dir, family):
    """Four steps, then resume to eight == eight steps straight: weights, EMA, optimisers, logged losses."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", *tiny_args(family, data_dir, 8), "--out", str(a)]) == 0
    assert main(["train", *tiny_args(family, data_dir, 4), "--out", str(b)]) == 0
    assert main(["train", *tiny_args(family, data_dir, 8), "--out", str(b), "--resume"]) == 0
    sa = torch.load(a / "checkpoints" / "ckpt-000000008.pt", weights_only=True)
    sb = torch.load(b / "checkpoints" / "ckpt-000000008.pt", weights_only=True)

    def same(x, y, where):
        if isinstance(x, dict):
            assert x.keys() == y.keys(), where
            for k in x:
                same(x[k], y[k], f"{where}.{k}")
        elif isinstance(x, torch.Tensor):
            assert torch.equal(x, y), where
        elif where.endswith("seconds"):
            pass
        else:
            assert x == y, where

    for key in ("nets", "ema", "optim", "sched", "sampler", "rng", "step", "images_seen"):
        same(sa[key], sb[key], key)
    losses = lambda run: [{k: v for k, v in json.loads(ln).items() if k.startswith("loss")}  # noqa: E731
                          for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert losses(a) == losses(b)


def test_existing_run_is_refused_and_kept(tmp_path, data_dir, capsys):
    run = tmp_path / "run"
    assert main(["train", *tiny_args("gan", data_dir, 2), "--out", str(run)]) == 0
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    code, err = run_cli(["train", *tiny_args("gan", data_dir, 2), "--out", str(run)], capsys)
    assert "already exists" in error_line(code, err) and "--resume" in err
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before
    assert main(["train", *tiny_args("gan", data_dir, 2), "--out", str(run), "--overwrite"]) == 0
    code, err = run_cli(["train", *tiny_args("gan", data_dir, 4, "train.batch_size=4"), "--out", str(run),
                         "--resume"], capsys)
    assert "cannot resume with a different 'train.batch_size'" in error_line(code, err)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, data_dir, capsys):
    run = tmp_path / "run"
    args = tiny_args("flow", data_dir, 50, "optim.model.lr=1e30", "optim.model.schedule.warmup_steps=0",
                     "train.ckpt_every=1")
    code, err = run_cli(["train", *args, "--out", str(run)], capsys)
    line = error_line(code, err)
    assert "non-finite model loss at step" in line and "last good checkpoint" in line
    from genbench.run import load_run

    loaded = load_run(run)
    assert all(torch.isfinite(p).all() for p in loaded.nets["model"].parameters())


def test_missing_dataset_names_the_places_searched(tmp_path, data_dir, capsys):
    args = tiny_args("ddpm", data_dir, 2)
    args = [a if not a.startswith("data.root=") else f"data.root={tmp_path / 'empty'}" for a in args]
    code, err = run_cli(["train", *args, "--out", str(tmp_path / "r")], capsys)
    line = error_line(code, err)
    assert str(tmp_path / "empty") in line and "apt-get install dataset-fashion-mnist" in line
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_corrupt_and_foreign_checkpoints_are_refused(tmp_path, data_dir, capsys):
    run = tmp_path / "run"
    assert main(["train", *tiny_args("ddpm", data_dir, 2), "--out", str(run)]) == 0
    ckpt = run / "checkpoints" / "ckpt-000000002.pt"
    good = ckpt.read_bytes()
    ckpt.write_bytes(good[: len(good) // 2])
    code, err = run_cli(["sample", str(run), "-n", "2"], capsys)
    assert "corrupt" in error_line(code, err)
    # a truncated file without its checksum sidecar still fails cleanly at load
    (run / "checkpoints" / "ckpt-000000002.pt.sha256").unlink()
    from genbench.train.checkpoint import load_checkpoint

    with pytest.raises(Exception) as exc:
        load_checkpoint(ckpt)
    assert "cannot load checkpoint" in str(exc.value)


def test_malicious_checkpoint_runs_no_code(tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "ckpt-000000001.pt"
    with open(path, "wb") as f:
        pickle.dump({"step": 1, "x": Evil()}, f)
    from genbench.errors import GenbenchError
    from genbench.train.checkpoint import load_checkpoint

    with pytest.raises(GenbenchError, match="cannot load checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_data_command_lists_datasets(tmp_path, data_dir, capsys):
    assert main(["data", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "fashion_mnist" in out and "found" in out and "cifar10" in out and "missing" in out


def test_unknown_config_lists_presets(capsys):
    code, err = run_cli(["train", "fmnist/nothing"], capsys)
    assert "fmnist/ddpm" in error_line(code, err)
