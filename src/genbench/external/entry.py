"""Entry folders: where the scores of samples or models from outside genbench are kept.

``genbench eval PATH`` (PATH not a run) writes ``--out`` (default ``runs/external-<name>``):
``entry.json`` (the source's path, kind, dataset, how it was read, a content fingerprint),
``eval/*.json`` and ``samples/grid-000000000.png``. ``genbench compare`` reads such a folder beside
run directories. A folder is reused for the same source only; when the source's content changed,
its old evaluations no longer describe it and are replaced only with ``--overwrite``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from genbench.errors import GenbenchError
from genbench.external import ENTRY_FILE
from genbench.files import read_json, write_json

ENTRY_FIX = "delete the entry folder and score the source again (genbench eval SOURCE --out FOLDER)"
ASIDE = ".genbench-replaced"   # an overwritten entry's old content, kept until its replacement exists
REPLACED = (ENTRY_FILE, "eval", "samples")


def default_entry_dir(source: Path) -> Path:
    """``runs/external-<name>``: the source's file or folder name, made safe as a folder name."""
    stem = Path(source).resolve().stem if Path(source).is_file() else Path(source).resolve().name
    name = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in stem).strip(".") or "samples"
    return Path("runs") / f"external-{name}"


def read_entry(folder: Path) -> dict:
    entry = read_json(Path(folder) / ENTRY_FILE, ENTRY_FIX, "entry description")
    bad = [k for k in ("kind", "source", "dataset", "name") if not isinstance(entry.get(k), str)]
    if bad or entry.get("genbench_entry") != 1:
        raise GenbenchError(f"{Path(folder) / ENTRY_FILE} is damaged or not genbench's (missing: "
                            f"{', '.join(bad) or 'genbench_entry'})", ENTRY_FIX)
    return entry


def files_fingerprint(paths: list[Path]) -> str:
    """sha256 over the names and bytes of ``paths`` (a model's weights files), read in blocks."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(f"{p.name};".encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


@contextmanager
def opened_entry(folder: Path, entry: dict, overwrite: bool) -> Iterator[None]:
    """Make ``folder`` the entry of ``entry`` (its source, dataset and fingerprint) for the evaluation run
    inside the block; refuse another source's folder, a folder genbench did not make, and (without
    ``overwrite``) a source whose content changed. With ``overwrite`` the old description, evaluations and
    grid are set aside, deleted once the block has written the new ones, and put back if it fails."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise GenbenchError(f"{folder} is a file", "choose another --out folder")
    marker, aside = folder / ENTRY_FILE, folder / ASIDE
    if aside.is_dir():   # a replacement that never finished: its old content comes back first
        _restore(folder, aside)
    changed = False
    if marker.is_file():
        old = read_entry(folder)
        if old["source"] != entry["source"]:
            raise GenbenchError(f"{folder} holds the scores of {old['source']}, not of {entry['source']}",
                                "choose another --out folder for this source")
        changed = (old.get("fingerprint"), old.get("dataset")) != (entry.get("fingerprint"), entry.get("dataset"))
        if changed and not overwrite:
            raise GenbenchError(f"{entry['source']} (or its --dataset) changed since {folder} scored it: the "
                                "evaluations there describe the old content",
                                "add --overwrite to replace them, or choose another --out folder")
    elif folder.is_dir() and any(folder.iterdir()):
        raise GenbenchError(f"{folder} already holds files and is not a genbench entry folder",
                            "choose another (or an empty) --out folder")
    record = {"genbench_entry": 1, **entry}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if changed:
            aside.mkdir()
            for name in REPLACED:
                if (folder / name).exists():
                    (folder / name).rename(aside / name)
        if not (marker.is_file() and read_entry(folder) == json.loads(json.dumps(record))):
            write_json(marker, record)
    except OSError as err:
        raise GenbenchError(f"cannot write {folder}: {err.strerror}", "choose a writable --out folder") from None
    try:
        yield
    except BaseException:
        if changed:
            _restore(folder, aside)
        raise
    if changed:
        shutil.rmtree(aside, ignore_errors=True)


def _restore(folder: Path, aside: Path) -> None:
    """Put a set-aside entry back over what its unfinished replacement wrote (genbench's own files)."""
    for name in REPLACED:
        if (aside / name).exists():
            new = folder / name
            if new.is_dir():
                shutil.rmtree(new)
            elif new.exists():
                new.unlink()
            (aside / name).rename(new)
    shutil.rmtree(aside, ignore_errors=True)
