"""Small file helpers: atomic writes, JSON records, and the provenance every record carries.

An atomic write goes to a temp file in the same folder (``.<name>.tmp``), is fsynced, renamed
over the final name and the folder fsynced: a kill at any moment leaves the old file or the new
one, never a torn one.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
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
    fsync_dir(path.parent)


def write_json(path: Path, record: dict) -> None:
    """``record`` as indented JSON with a final newline, written atomically."""
    atomic_write_bytes(path, (json.dumps(record, indent=2) + "\n").encode())


def environment() -> dict:
    """Versions, platform and device: the provenance of a run or an evaluation."""
    import numpy
    import torch

    import genbench

    return {
        "genbench": genbench.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cpu_threads": torch.get_num_threads(),
    }


def write_run_json(path: Path, info: dict) -> None:
    """A run directory's ``run.json`` (provenance and status)."""
    write_json(path / "run.json", info)
