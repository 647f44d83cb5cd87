"""Bad-input catalogue: every case gives exactly one stderr line naming the problem and the fix,
a non-zero exit code, no traceback (unless --debug), and leaves every existing file as it was."""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from fileformats import IDX_NAMES, idx_bytes, make_idx_dataset
from genbench.cli import main
from genbench.data import sources
from genbench.errors import GenbenchError

IMG_TINY = ["nets.model.ch=8", "nets.model.ch_mult=[1, 2]", "nets.model.attn_resolutions=[14]",
            "nets.model.groups=4", "sample.nfe=2"]


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def refused(argv: list[str], capsys, root: Path, *expect: str, may_change: tuple[str, ...] = ()) -> str:
    """Run the CLI; check the one-line contract and that nothing existing under root changed
    (``may_change``: run.json of a resumed run, which records the failure)."""
    before = snapshot(root)
    code = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code != 0, err
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("genbench: error: ") and "(fix: " in line and "Traceback" not in err, line
    for text in expect:
        assert text in line, line
    after = snapshot(root)
    changed = [k for k, h in before.items() if after.get(k) != h and k not in may_change]
    assert not changed, f"changed or deleted: {changed}"
    return line


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GENBENCH_DATA", str(tmp_path / "nodata"))
    monkeypatch.setattr(sources, "SYSTEM_DATASETS_DIR", tmp_path / "nosystem")
    return tmp_path


def img_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "configs/fmnist/ddpm.yaml", *IMG_TINY, f"data.root={data}", "data.download=false",
            "train.batch_size=8", "train.budget={steps: 2}", "train.tensorboard=false", "--no-progress",
            "--out", str(out), *extra]


def toy_args(family: str, out: Path, steps: int = 2, *extra: str) -> list[str]:
    nets = (["nets.G.hidden=16", "nets.D.hidden=16", "nets.G.z_dim=4"] if family == "gan"
            else ["nets.model.hidden=16", "sample.nfe=2"])
    return ["train", f"configs/toy2d/{family}.yaml", *nets, "data.n_points=64", "train.batch_size=16",
            f"train.budget={{steps: {steps}}}", "train.ckpt_every=2", "train.sample_every=1000",
            "train.grid_n=4", "train.tensorboard=false", "--no-progress", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished flow run and a finished GAN run (2 steps each), copied by the tests that alter them."""
    root = tmp_path_factory.mktemp("trained")
    assert main(toy_args("flow", root / "flow")) == 0
    assert main(toy_args("gan", root / "gan")) == 0
    return root


def copy_run(trained: Path, name: str, dest: Path) -> Path:
    shutil.copytree(trained / name, dest / name)
    return dest / name


# ----------------------------------------------------------------------------- config

CONFIG_CASES = {
    "unknown key": (["train.bogus=1"], ["unknown key 'train.bogus'", "batch_size"]),
    "unknown nested key": (["nets.model.chh=8"], ["unknown key", "chh"]),
    "wrong type": (["train.batch_size=abc"], ["train.batch_size", "'abc'"]),
    "out of range": (["train.batch_size=0"], ["train.batch_size", "greater than or equal to 1"]),
    "negative lr": (["optim.model.lr=-1"], ["optim.model.lr", "greater than 0"]),
    "bad choice": (["method.prediction=noise"], ["method.diffusion.prediction", "'eps'"]),
    "method vs network": (["method={kind: flow}", "nets={G: {kind: dcgan_g}, D: {kind: dcgan_d}}",
                           "optim={G: {}, D: {}}"], ["nets must have exactly the keys ['model']"]),
    "network role": (["nets.model={kind: dcgan_g}"], ["network 'dcgan_g' cannot be the model"]),
    "network vs data": (["data.name=ring"], ["network 'unet' does not fit dataset 'ring'"]),
    "solver vs method": (["method={kind: flow}", "sample.solver=ddpm"], ["sample.solver 'ddpm' does not fit method"]),
    "empty budget": (["train.budget={}"], ["set at least one of steps, epochs, kimg, minutes"]),
    "beta order": (["method.beta_end=0.00001"], ["beta_end must be larger than beta_start"]),
    "ema twice": (["train.ema.decay=0.9"], ["either decay or halflife_kimg"]),
    "override syntax": (["train.batch_size"], ["not key=value"]),
    "value is not a section": (["seed.x=1"], ["'seed' is a value, not a section"]),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_config_errors(env, capsys, case):
    overrides, expect = CONFIG_CASES[case]
    refused(["train", "configs/fmnist/ddpm.yaml", *overrides, "--out", str(env / "r")], capsys, env, *expect)
    assert not (env / "r").exists()


def test_config_file_missing_invalid_and_not_a_mapping(env, capsys):
    refused(["train", "fmnist/nope"], capsys, env, "config 'fmnist/nope' not found", "fmnist/ddpm")
    bad = env / "bad.yaml"
    bad.write_text("train: {batch_size: [1,\n")
    refused(["train", str(bad)], capsys, env, "not valid YAML at line")
    bad.write_text("- 1\n- 2\n")
    refused(["train", str(bad)], capsys, env, "must hold a mapping")


# ----------------------------------------------------------------------------- data


def broken_idx(env: Path, how: str) -> Path:
    folder = env / "fmnist"
    make_idx_dataset(folder, n_train=24, n_test=8)
    target = folder / (IDX_NAMES["train_images"] + ".gz")
    if how == "truncated gz":
        target.write_bytes(target.read_bytes()[:200])
    elif how == "wrong magic":
        target.write_bytes(gzip.compress(struct.pack(">I", 0x0801) + gzip.decompress(target.read_bytes())[4:]))
    elif how == "wrong shape":   # header says 24x28x28 but 100 bytes are missing
        target.write_bytes(gzip.compress(gzip.decompress(target.read_bytes())[:-100]))
    elif how == "label count":
        labels = folder / (IDX_NAMES["train_labels"] + ".gz")
        labels.write_bytes(gzip.compress(idx_bytes(np.zeros(5, np.uint8), 0x801)))
    elif how == "too short":
        target.write_bytes(gzip.compress(b"\x00\x00"))
    return folder


DATA_CASES = {
    "truncated gz": ["truncated or corrupt gzip", "delete the file"],
    "wrong magic": ["magic number 0x00000801, expected 0x00000803"],
    "wrong shape": ["data bytes but its header 24x28x28 needs"],
    "label count": ["24 images but", "5 labels"],
    "too short": ["too short to be an IDX file"],
}


@pytest.mark.parametrize("how", sorted(DATA_CASES))
def test_damaged_idx_files(env, capsys, how):
    folder = broken_idx(env, how)
    refused(img_args(folder, env / "r"), capsys, env, *DATA_CASES[how])
    assert not (env / "r" / "checkpoints").exists()


def test_missing_dataset(env, capsys):
    refused(img_args(env / "nowhere", env / "r"), capsys, env, "fashion_mnist (train) not found",
            str(env / "nowhere"), "data.download=true")


def test_batch_larger_than_dataset(env, capsys):
    make_idx_dataset(env / "fmnist", n_train=4, n_test=2)
    refused(img_args(env / "fmnist", env / "r"), capsys, env, "batch size 8 is larger than the dataset (4 items)")


def test_unknown_class_name(env, capsys):
    make_idx_dataset(env / "fmnist", n_train=24, n_test=8)
    refused(img_args(env / "fmnist", env / "r", "data.classes=[unicorn]"), capsys, env, "unicorn")


def folder_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "configs/fmnist/gan.yaml", "nets.G.ch=8", "nets.G.z_dim=8", "nets.D.ch=8", "data.name=folder",
            f"data.root={root}", "data.channels=1", "train.batch_size=2", "train.budget={steps: 1}",
            "train.tensorboard=false", "--no-progress", "--out", str(out), *extra]


def test_empty_image_folder(env, capsys):
    (env / "imgs").mkdir()
    refused(folder_args(env / "imgs", env / "r", "data.img_size=28"), capsys, env, "has no files", "PNG or JPEG")


def test_folder_of_non_images(env, capsys):
    (env / "imgs").mkdir()
    (env / "imgs" / "notes.txt").write_text("hello")
    (env / "imgs" / "data.csv").write_text("1,2\n")
    refused(folder_args(env / "imgs", env / "r", "data.img_size=28"), capsys, env, "only 2 non-image files")


def test_corrupt_image_in_folder(env, capsys):
    (env / "imgs").mkdir()
    (env / "imgs" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    refused(folder_args(env / "imgs", env / "r", "data.img_size=28"), capsys, env, "cannot read image", "a.png")


def test_folder_without_size(env, capsys):
    (env / "imgs").mkdir()
    refused(folder_args(env / "imgs", env / "r"), capsys, env, "needs an image size", "data.img_size=64")


# ----------------------------------------------------------------------------- checkpoints


def test_truncated_checkpoint(env, capsys, trained):
    run = copy_run(trained, "flow", env)
    ckpt = run / "checkpoints" / "ckpt-000000002.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    refused(["sample", str(run), "-n", "2"], capsys, env, "is corrupt", "sha256 does not match")


def test_truncated_checkpoint_without_checksum(env, capsys, trained):
    run = copy_run(trained, "flow", env)
    ckpt = run / "checkpoints" / "ckpt-000000002.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    ckpt.with_suffix(".pt.sha256").unlink()
    # a checkpoint without its checksum is not listed as complete (the writer was killed before it)
    refused(["sample", str(run), "-n", "2"], capsys, env, "no complete checkpoint", "ckpt-000000002.pt")


def test_checkpoint_from_another_method(env, capsys, trained):
    run = copy_run(trained, "flow", env)
    for suffix in (".pt", ".pt.sha256"):
        shutil.copy(trained / "gan" / "checkpoints" / f"ckpt-000000002{suffix}",
                    run / "checkpoints" / f"ckpt-000000002{suffix}")
    refused(["sample", str(run), "-n", "2"], capsys, env, "is from method 'gan'", "checkpoint's own run directory")
    refused(toy_args("flow", run, 4, "--resume"), capsys, env, "from method 'gan'")


def test_checkpoint_with_wrong_shapes(env, capsys, trained):
    run = copy_run(trained, "flow", env)
    cfg = run / "config.yaml"
    cfg.write_text(cfg.read_text().replace("hidden: 16", "hidden: 24"))
    refused(["sample", str(run), "-n", "2"], capsys, env, "does not fit the model network", "config.yaml")


def test_missing_checkpoint_step_and_no_checkpoint(env, capsys, trained):
    run = copy_run(trained, "flow", env)
    refused(["sample", str(run), "-n", "2", "--checkpoint", "7"], capsys, env, "no checkpoint at step 7", "[2]")
    shutil.rmtree(run / "checkpoints")
    refused(["sample", str(run), "-n", "2"], capsys, env, "has no checkpoint yet")


def test_resume_refusals(env, capsys, trained):
    run = copy_run(trained, "flow", env)
    refused(toy_args("flow", run, 4, "optim.model.lr=0.5", "--resume"), capsys, env,
            "cannot resume with a different 'optim.model.lr'")
    (env / "plain").mkdir()
    (env / "plain" / "keep.txt").write_text("mine")
    refused(toy_args("flow", env / "plain", 4, "--resume"), capsys, env, "is not a genbench run")


def test_dopri5_tolerance_refusals(env, capsys, trained):
    run = copy_run(trained, "flow", env)
    refused(["sample", str(run), "-n", "2", "--solver", "euler", "--nfe", "2", "--tol", "1e-3"], capsys, env,
            "--tol is dopri5's tolerance", "--solver dopri5")
    refused(["eval", str(run), "-n", "2", "--solver", "dopri5", "--tol", "2"], capsys, env,
            "--tol must be between 0 and 1", "1e-4")


def test_mark_best_of_missing_step(env, capsys, trained):
    run = copy_run(trained, "flow", env)
    refused(["mark-best", str(run), "5"], capsys, env, "no complete checkpoint at step 5", "[2]")


# ----------------------------------------------------------------------------- outputs


def test_existing_run_is_not_replaced(env, capsys, trained):
    run = copy_run(trained, "flow", env)
    refused(toy_args("flow", run), capsys, env, "already exists", "--resume")
    (env / "other").mkdir()
    (env / "other" / "thesis.tex").write_text("years of work")
    refused(toy_args("flow", env / "other", 2, "--overwrite"), capsys, env, "not a genbench run directory")


def test_unwritable_run_directory(env, capsys):
    """A path below a regular file cannot be created (even as root, unlike a chmod-ed folder)."""
    blocker = env / "blocker"
    blocker.write_text("a file, not a folder")
    refused(toy_args("flow", blocker / "run"), capsys, env, "cannot create run directory", "writable --out")
    refused(toy_args("flow", blocker), capsys, env, "is a file", "another --out")


def test_sample_output_exists_or_unwritable(env, capsys, trained):
    run = copy_run(trained, "flow", env)
    (env / "s.npz").write_bytes(b"precious")
    refused(["sample", str(run), "-n", "2", "-o", str(env / "s")], capsys, env, "already exists", "--overwrite")
    (env / "blocker").write_text("x")
    refused(["sample", str(run), "-n", "2", "-o", str(env / "blocker" / "s")], capsys, env, "cannot write to")


def test_disk_full_while_checkpointing_keeps_the_previous_one(env, capsys, trained, monkeypatch):
    run = copy_run(trained, "flow", env)
    real_save = torch.save

    def full(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    refused(toy_args("flow", run, 4, "--resume"), capsys, env, "could not write checkpoint",
            "No space left on device", "earlier checkpoints are intact", may_change=("flow/run.json",))
    assert json.loads((run / "run.json").read_text())["status"].startswith("failed: could not write checkpoint")
    monkeypatch.setattr(torch, "save", real_save)
    assert not list((run / "checkpoints").glob(".*.tmp"))
    from genbench.train.checkpoint import list_checkpoints, load_checkpoint

    assert list(list_checkpoints(run / "checkpoints")) == [2]
    assert load_checkpoint(run / "checkpoints" / "ckpt-000000002.pt")["step"] == 2


def test_disk_full_while_logging(env, capsys, trained, monkeypatch):
    from genbench.train import logger

    run = copy_run(trained, "flow", env)

    def full(self, record):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    monkeypatch.setattr(logger.MetricsLogger, "log", full)
    refused(toy_args("flow", run, 4, "train.log_every=1", "--resume"), capsys, env, "No space left on device",
            "metrics.jsonl", "free disk space", may_change=("flow/run.json",))


def test_bad_sample_arguments(env, capsys, trained):
    run = copy_run(trained, "flow", env)
    refused(["sample", str(run), "-n", "0"], capsys, env, "must be positive")
    refused(["sample", str(run), "-n", "2", "--batch-size", "0"], capsys, env, "must be positive")
    refused(["eval", str(run), "-n", "4", "--batch-size", "0"], capsys, env, "--batch-size must be positive")
    refused(["sample", str(run), "-n", "2", "--format", "gif"], capsys, env, "unknown output format")
    refused(["sample", str(run), "-n", "2", "--solver", "magic"], capsys, env, "has no solver 'magic'")
    refused(["sample", str(env / "nothing")], capsys, env, "is not a genbench run")


def test_debug_shows_the_traceback(env):
    with pytest.raises(GenbenchError, match="unknown key"):
        main(["train", "configs/fmnist/ddpm.yaml", "train.bogus=1", "--debug"])
