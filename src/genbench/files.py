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
    """Write ``path`` so that a reader (or a kill) sees the old bytes or the new ones, never a torn
    file: a temp file ``.<name>.tmp`` beside it, fsync, rename, fsync the folder. The temp file is
    removed if the write fails or is interrupted."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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


def read_json(path: Path, fix: str, what: str = "") -> dict:
    """A JSON object from ``path``; a missing, undecodable or damaged file is refused in one line
    naming the file, what is wrong with it and ``fix``."""
    from genbench.errors import GenbenchError
    from genbench.limits import JSON_FILE_BYTES, check_file

    path = Path(path)
    name = f"{what} {path}" if what else str(path)
    if path.exists():   # not a device or FIFO, and not larger than any real one (genbench.limits)
        check_file(path, JSON_FILE_BYTES, what or "JSON file", fix)
    try:
        text = path.read_bytes().decode("utf-8")
        record = json.loads(text)
    except FileNotFoundError:
        raise GenbenchError(f"{name} is missing", fix) from None
    except UnicodeDecodeError as err:
        raise GenbenchError(f"{name} is damaged: byte {err.start} is not UTF-8 text (a binary or corrupt file)",
                            fix) from None
    except json.JSONDecodeError as err:
        raise GenbenchError(f"{name} is damaged: not valid JSON ({err.msg} at line {err.lineno} column {err.colno})",
                            fix) from None
    except (ValueError, RecursionError) as err:   # e.g. nesting too deep, numbers too long
        raise GenbenchError(f"{name} is damaged: not valid JSON ({' '.join(str(err).split())[:80]})", fix) from None
    if not isinstance(record, dict):
        raise GenbenchError(f"{name} is damaged: it holds a JSON {type(record).__name__}, not an object", fix)
    return record


def atomic_savez(path: Path, **arrays) -> None:
    """``np.savez`` to ``path`` atomically: into ``.<name>.tmp`` beside it, fsynced, renamed over
    ``path``. The temp file is removed if anything (an error, Ctrl-C, SIGTERM) stops the write."""
    import numpy as np

    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
