"""Checkpoints: written atomically, verified by checksum, loaded without running code.

Write: temp file in the same folder, fsync, rename over the final name, fsync the folder —
a kill at any moment leaves either the old set of checkpoints or the new one, never a torn
file. A ``.sha256`` sidecar is written after the rename and checked at load. Loading uses
``torch.load(weights_only=True)``, which refuses pickled code.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch

from genbench.errors import GenbenchError

_NAME = re.compile(r"^ckpt-(\d{9})\.pt$")


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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def save_checkpoint(state: dict, folder: Path, step: int, keep_last: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = ckpt_path(folder, step)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(folder)
        atomic_write_bytes(path.with_suffix(".pt.sha256"), (_sha256(path) + "\n").encode())
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise GenbenchError(
            f"could not write checkpoint {path}: {err.strerror or err}",
            "free disk space or choose a writable run directory; earlier checkpoints are intact",
        ) from None
    for old in list(list_checkpoints(folder))[:-keep_last]:
        ckpt_path(folder, old).unlink(missing_ok=True)
        ckpt_path(folder, old).with_suffix(".pt.sha256").unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    side = path.with_suffix(".pt.sha256")
    if not path.is_file():
        raise GenbenchError(f"checkpoint {path} not found", "list the run's checkpoints/ folder")
    if side.exists():
        want = side.read_text().strip()
        if _sha256(path) != want:
            raise GenbenchError(
                f"checkpoint {path} is corrupt (its sha256 does not match {side.name})",
                "resume from an earlier checkpoint: delete this file and its .sha256",
            )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for bad files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise GenbenchError(
            f"cannot load checkpoint {path}: {first[:200]}",
            "it is truncated, not a genbench checkpoint, or holds code (refused); use another checkpoint",
        ) from None
