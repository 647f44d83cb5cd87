"""Checkpoints: written atomically, verified by checksum, loaded without running code.

Write: temp file in the same folder, fsync, rename over the final name, fsync the folder —
a kill at any moment leaves either the old set of checkpoints or the new one, never a torn
file. A ``.sha256`` sidecar is written after the rename and checked at load. Loading uses
``torch.load(weights_only=True)``, which refuses pickled code.

Pruning keeps the last ``keep_last`` complete checkpoints, every checkpoint marked best
(a ``ckpt-<step>.pt.best`` marker file, made by :func:`mark_best` / ``genbench mark-best``) and,
with ``keep_every``, those whose step is a multiple of it (a thinned history of the run).
Temp files and unverified checkpoints left by a killed writer are ignored when listing and
removed at the next save.

Test hook: ``GENBENCH_TEST_CKPT_PAUSE=SECONDS`` (or ``SECONDS@STEP`` for one step only) sleeps
after the temp file is written and before the rename, so that tests can kill a writer there.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import time
import warnings
from pathlib import Path

import torch

from genbench.errors import GenbenchError
from genbench.files import atomic_write_bytes, fsync_dir
from genbench.limits import CHECKPOINT_BYTES, SIDECAR_BYTES, check_file, read_text

_NAME = re.compile(r"^ckpt-(\d{9})\.pt$")
_TMP = re.compile(r"^\..+\.tmp$")
BEST_SUFFIX = ".pt.best"


def ckpt_path(folder: Path, step: int) -> Path:
    return folder / f"ckpt-{step:09d}.pt"


def list_checkpoints(folder: Path) -> dict[int, Path]:
    """Complete checkpoints (those with a sidecar checksum) by step."""
    out = {}
    if folder.is_dir():
        for p in folder.iterdir():
            m = _NAME.match(p.name)
            if m and p.with_suffix(".pt.sha256").exists():
                out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def best_checkpoints(folder: Path) -> set[int]:
    """Steps whose checkpoint is marked best (never pruned)."""
    out = set()
    if folder.is_dir():
        for p in folder.glob(f"ckpt-*{BEST_SUFFIX}"):
            m = _NAME.match(p.name[: -len(".best")])
            if m:
                out.add(int(m.group(1)))
    return out


def mark_best(folder: Path, step: int) -> Path:
    """Mark checkpoint ``step`` as best: pruning never deletes it. Returns the marker file."""
    ckpts = list_checkpoints(folder)
    if step not in ckpts:
        raise GenbenchError(f"no complete checkpoint at step {step} in {folder}",
                            f"choose one of {list(ckpts) or '(none yet)'}")
    marker = ckpts[step].with_suffix(BEST_SUFFIX)
    atomic_write_bytes(marker, f"{step}\n".encode())
    return marker


def _clean_leftovers(folder: Path, below: int) -> None:
    """Remove temp files of killed writers, and checkpoints that never got their checksum
    (a kill between the rename and the sidecar) older than step ``below``."""
    complete = list_checkpoints(folder)
    for p in folder.iterdir():
        m = _NAME.match(p.name)
        if _TMP.match(p.name) or (m and int(m.group(1)) < below and int(m.group(1)) not in complete):
            p.unlink(missing_ok=True)


def _test_pause(step: int) -> None:
    value = os.environ.get("GENBENCH_TEST_CKPT_PAUSE")
    if not value:
        return
    seconds, _, only = value.partition("@")
    if not only or int(only) == step:
        time.sleep(float(seconds))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(state: dict, folder: Path, step: int, keep_last: int, keep_every: int | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = ckpt_path(folder, step)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        _clean_leftovers(folder, step)
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        _test_pause(step)
        os.replace(tmp, path)
        fsync_dir(folder)
        atomic_write_bytes(path.with_suffix(".pt.sha256"), (_sha256(path) + "\n").encode())
    except (OSError, RuntimeError) as err:   # torch.save reports a failed write as RuntimeError
        tmp.unlink(missing_ok=True)
        if isinstance(err, RuntimeError) and "write" not in str(err).lower():
            raise
        raise GenbenchError(
            f"could not write checkpoint {path}: {getattr(err, 'strerror', None) or err}",
            "free disk space or choose a writable run directory; earlier checkpoints are intact",
        ) from None
    except BaseException:   # interrupted (Ctrl-C, SIGTERM): no temp file left behind
        tmp.unlink(missing_ok=True)
        raise
    prune(folder, keep_last, keep_every)
    return path


def prune(folder: Path, keep_last: int, keep_every: int | None = None) -> None:
    """Delete the complete checkpoints beyond the last ``keep_last`` (marked best and ``keep_every``
    multiples kept). Run after every save and when a run resumes (a writer killed between its save and
    its pruning leaves one more, which a resumed run with nothing left to train would otherwise keep)."""
    kept = best_checkpoints(folder)
    prunable = [k for k in list_checkpoints(folder) if k not in kept and not (keep_every and k % keep_every == 0)]
    for old in prunable[:-keep_last]:
        # the sidecar first: a kill in between leaves an unlisted file, cleaned at the next save
        ckpt_path(folder, old).with_suffix(".pt.sha256").unlink(missing_ok=True)
        ckpt_path(folder, old).unlink(missing_ok=True)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    side = path.with_suffix(".pt.sha256")
    if not path.exists():
        raise GenbenchError(f"checkpoint {path} not found", "list the run's checkpoints/ folder")
    check_file(path, CHECKPOINT_BYTES, "checkpoint", "use another checkpoint")
    if side.exists():
        want = read_text(side, SIDECAR_BYTES, "checksum file",
                         "resume from an earlier checkpoint: delete this checkpoint and its .sha256").strip()
        if _sha256(path) != want:
            raise GenbenchError(
                f"checkpoint {path} is corrupt (its sha256 does not match {side.name})",
                "resume from an earlier checkpoint: delete this file and its .sha256",
            )
    try:
        with warnings.catch_warnings():   # torch warns about pickle protocols: not the user's concern
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:  # the weights-only unpickler met something other than weights
        found = re.search(r"(?:unsupported GLOBAL|Unsupported global: GLOBAL) ([\w.]+)", str(err), re.IGNORECASE)
        what = f"it would call {found.group(1)} when loaded" if found else "it holds objects other than tensors"
        raise GenbenchError(
            f"cannot load checkpoint {path}: refused, {what}; genbench loads weights only, "
            "so nothing was executed",
            "load only checkpoints written by `genbench train`; use another checkpoint",
        ) from None
    except Exception as err:  # torch raises many types for bad files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise GenbenchError(
            f"cannot load checkpoint {path}: {first[:200]}",
            "it is truncated, not a genbench checkpoint, or holds code (refused); use another checkpoint",
        ) from None
