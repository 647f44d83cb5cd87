"""Run-directory safety (issue 13): --overwrite replaces only what genbench made, and only once the
replacement has started; a failed start removes only what it created; one writer per run; the
report and study folders follow the same rules; SIGTERM leaves no temporary file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genbench.cli import main
from genbench.rundir import ASIDE_SUFFIX, MARKER, RunLock, recover_aside
from test_bad_input import refused, snapshot, toy_args


def _ok(argv, capsys) -> None:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 0, err


@pytest.fixture
def run(tmp_path, capsys) -> Path:
    """A finished 2-step toy flow run."""
    out = tmp_path / "run"
    _ok(toy_args("flow", out), capsys)
    return out


def test_overwrite_refuses_a_users_folder_that_looks_like_a_run(tmp_path, capsys):
    mine = tmp_path / "myproject"
    (mine / "src").mkdir(parents=True)
    (mine / "src" / "main.py").write_text("print('hello')\n")
    (mine / "thesis.tex").write_text("\\documentclass{article}\n")
    (mine / "config.yaml").write_text("name: my own config\n")
    before = snapshot(tmp_path)
    refused(toy_args("flow", mine, 2, "--overwrite"), capsys, tmp_path, "refusing to overwrite",
            "genbench did not make it")
    assert snapshot(tmp_path) == before


def test_overwrite_refuses_a_run_holding_a_users_files(run, tmp_path, capsys):
    (run / "notes.txt").write_text("my notes\n")
    refused(toy_args("flow", run, 2, "--overwrite"), capsys, tmp_path, "holds files genbench did not make",
            "notes.txt")


def test_a_failed_overwrite_puts_the_old_run_back(run, tmp_path, capsys):
    before = snapshot(tmp_path)
    empty = tmp_path / "empty_images"
    empty.mkdir()
    argv = ["train", "configs/fmnist/ddpm.yaml", "data.name=folder", f"data.root={empty}", "data.img_size=8",
            "train.budget={steps: 2}", "--no-progress", "--out", str(run), "--overwrite"]
    refused(argv, capsys, tmp_path)
    assert snapshot(tmp_path) == before   # checkpoints, metrics, grids, config: all as they were
    assert not list(tmp_path.glob(f".*{ASIDE_SUFFIX}"))


def test_overwrite_replaces_the_run_once_the_new_one_has_a_checkpoint(run, tmp_path, capsys):
    old_config = (run / "config.yaml").read_text()
    _ok(toy_args("flow", run, 4, "--overwrite"), capsys)
    assert (run / "config.yaml").read_text() != old_config and "steps: 4" in (run / "config.yaml").read_text()
    assert (run / MARKER).is_file() and sorted(p.name for p in (run / "checkpoints").glob("*.pt"))[-1].endswith("4.pt")
    assert not list(tmp_path.glob(f".*{ASIDE_SUFFIX}"))


def test_a_folder_with_a_users_dotfile_is_not_taken(tmp_path, capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / ".env").write_text("SECRET=1\n")
    refused(toy_args("flow", folder), capsys, tmp_path, "already exists")
    assert sorted(p.name for p in folder.iterdir()) == [".env"]


def test_a_failed_start_removes_only_what_it_made(tmp_path, capsys):
    """A folder holding only a temp-named file (as an interrupted write leaves) counts as empty and
    is used; the failed start then removes genbench's files only, and keeps the folder."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / ".draft.tmp").write_text("a user's file\n")
    empty = tmp_path / "empty_images"
    empty.mkdir()
    argv = ["train", "configs/fmnist/ddpm.yaml", "data.name=folder", f"data.root={empty}", "data.img_size=8",
            "--no-progress", "--out", str(folder)]
    line = refused(argv, capsys, tmp_path)
    assert "already exists" not in line
    assert sorted(p.name for p in folder.iterdir()) == [".draft.tmp"]


def test_a_failed_new_run_leaves_nothing(tmp_path, capsys):
    empty = tmp_path / "empty_images"
    empty.mkdir()
    out = tmp_path / "new" / "run"
    argv = ["train", "configs/fmnist/ddpm.yaml", "data.name=folder", f"data.root={empty}", "data.img_size=8",
            "--no-progress", "--out", str(out)]
    refused(argv, capsys, tmp_path)
    assert not out.exists()


def test_a_second_writer_is_refused_and_a_killed_one_leaves_no_lock(run, tmp_path, capsys):
    lock = RunLock(run)
    try:
        line = refused(toy_args("flow", run, 4, "--resume"), capsys, tmp_path, "being written by another genbench",
                       f"pid {os.getpid()}")
        assert "stop it" in line
        refused(toy_args("flow", run, 4, "--overwrite"), capsys, tmp_path, "being written by another genbench")
    finally:
        lock.release()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from genbench.rundir import RunLock; RunLock(Path(sys.argv[1])); "
                               "print('locked', flush=True); time.sleep(60)", str(run)], stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == b"locked"
    holder.kill()
    holder.wait()
    _ok(toy_args("flow", run, 4, "--resume"), capsys)
    assert json.loads((run / "run.json").read_text())["step"] == 4


def test_an_interrupted_overwrite_is_resolved_at_the_next_start(run, tmp_path, capsys):
    aside = run.with_name(f".{run.name}{ASIDE_SUFFIX}")
    before = snapshot(run)
    os.rename(run, aside)             # killed after setting the old run aside,
    run.mkdir()                       # with the new one started but without a checkpoint
    (run / MARKER).write_text("{}\n")
    (run / "config.yaml").write_text("name: half-started\n")
    recover_aside(run)
    assert snapshot(run) == before and not aside.exists()
    assert "restored" in capsys.readouterr().err


def test_compare_refuses_an_existing_folder_unless_asked_and_only_replaces_a_report(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "paper.md").write_text("draft\n")
    refused(["compare", str(tmp_path / "r1"), str(tmp_path / "r2"), "-o", str(mine)], capsys, tmp_path,
            "already exists", "--overwrite")
    refused(["compare", str(tmp_path / "r1"), str(tmp_path / "r2"), "-o", str(mine), "--overwrite"], capsys,
            tmp_path, "refusing to overwrite", "not a genbench report folder")
    refused(["compare", str(tmp_path / "r1"), "-o", ""], capsys, tmp_path, "--out is empty")


def test_a_study_refuses_a_folder_that_is_not_its_own(tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.csv").write_text("1,2\n")
    refused(["study", "toy2d", "--out", str(other)], capsys, tmp_path, "is not a genbench study")
    (other / "data.csv").unlink()
    (other / "study.json").write_text(json.dumps({"name": "fmnist"}))
    refused(["study", "toy2d", "--out", str(other)], capsys, tmp_path, "holds the study 'fmnist'")


def test_sigterm_during_a_checkpoint_write_leaves_no_temp_file(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "GENBENCH_TEST_CKPT_PAUSE": "30@2"}
    proc = subprocess.Popen([sys.executable, "-m", "genbench", *toy_args("flow", out, 4)], env=env,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list((out / "checkpoints").glob(".*.tmp")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert list((out / "checkpoints").glob(".*.tmp")), "the test hook did not pause at the checkpoint write"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "terminated" in err, err
    assert not out.exists() or not list(out.rglob("*.tmp")), list(out.rglob("*"))


def test_sample_overwrite_replaces_only_genbench_outputs(run, tmp_path, capsys):
    from PIL import Image

    stem = tmp_path / "pics" / "s"
    stem.parent.mkdir()
    Image.new("RGB", (4, 4)).save(f"{stem}.png")           # a user's picture under the same name
    refused(["sample", str(run), "-n", "4", "-o", str(stem), "--overwrite"], capsys, tmp_path,
            "refusing to overwrite", "s.png", "genbench did not write it")
    Path(f"{stem}.png").unlink()
    _ok(["sample", str(run), "-n", "4", "-o", str(stem)], capsys)
    first = Path(f"{stem}.npz").read_bytes()
    _ok(["sample", str(run), "-n", "4", "-o", str(stem), "--overwrite", "--seed", "7"], capsys)
    assert Path(f"{stem}.npz").read_bytes() != first
    assert sorted(p.name for p in stem.parent.iterdir()) == ["s.npz", "s.png"]
