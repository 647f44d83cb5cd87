"""Finding dataset files on disk, and downloading them when allowed.

Search order for ``mnist`` / ``fashion_mnist`` / ``cifar10`` (first hit wins):

1. ``data.root`` / ``--data-dir`` (for CIFAR-10 also the tar.gz itself),
2. ``$GENBENCH_DATA/<name>``, then ``$GENBENCH_DATA``,
3. ``/usr/share/datasets/<debian-name>`` (Debian packages; Fashion-MNIST only so far),
4. ``~/.cache/genbench/<name>``.

Downloads go to the first writable of ``data.root``, ``$GENBENCH_DATA/<name>``,
``~/.cache/genbench/<name>``, and are checked against the official md5.
"""

from __future__ import annotations

import os
from pathlib import Path

from genbench.data import sources
from genbench.data.sources import CIFAR_DIRNAME, CIFAR_META, CIFAR_TRAIN_BATCHES, SOURCES, idx_roles
from genbench.errors import GenbenchError

TOY_SETS = ("ring", "grid")


def _source(name: str) -> sources.DatasetSource:
    if name not in SOURCES:
        raise GenbenchError(f"dataset '{name}' has no files to find", f"choose one of {', '.join(SOURCES)}")
    return SOURCES[name]


def search_dirs(name: str, root: str | Path | None = None) -> list[Path]:
    """The places searched for dataset ``name``, in order (they need not exist)."""
    src = _source(name)
    out: list[Path] = []
    if root is not None:
        out.append(Path(root).expanduser())
    env = os.environ.get("GENBENCH_DATA")
    if env:
        out += [Path(env).expanduser() / name, Path(env).expanduser()]
    if src.debian_name:
        out.append(sources.SYSTEM_DATASETS_DIR / src.debian_name)
    out.append(Path.home() / ".cache" / "genbench" / name)
    # the same folder may come up twice (e.g. root == $GENBENCH_DATA); search it once
    seen: set[Path] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def idx_file(folder: Path, filename: str) -> Path | None:
    """``folder/filename`` (the .gz) or its decompressed twin, whichever exists (gz first)."""
    for candidate in (folder / filename, folder / filename.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def probe(name: str, place: Path, split: str | None = None) -> Path | None:
    """What to read for ``name`` at ``place`` (a folder, or CIFAR's batches folder / tar.gz), or None."""
    src = _source(name)
    if name == "cifar10":
        if place.is_file() and place.name.endswith((".tar.gz", ".tgz", ".tar")):
            return place
        if not place.is_dir():
            return None
        for folder in (place, place / CIFAR_DIRNAME):
            needed = list(CIFAR_TRAIN_BATCHES) if split in (None, "train") else []
            needed += ["test_batch"] if split in (None, "test") else []
            if all((folder / f).is_file() for f in needed + [CIFAR_META]):
                return folder
        archive = place / src.files["archive"].filename
        return archive if archive.is_file() else None
    if place.is_dir() and all(idx_file(place, src.files[r].filename) for r in idx_roles(split)):
        return place
    return None


def locate(name: str, root: str | Path | None = None, split: str | None = None) -> list[tuple[Path, bool]]:
    """Every searched place with whether the files for ``split`` (default: both splits) are there."""
    return [(place, probe(name, place, split) is not None) for place in search_dirs(name, root)]


def how_to_get(name: str, after_failed_download: bool = False) -> str:
    """One line telling the user how to obtain dataset ``name``."""
    if name in TOY_SETS:
        return "nothing to get: generated on the fly"
    if name == "folder":
        return "set data.root to a folder of PNG/JPEG images"
    src = _source(name)
    files = ", ".join(f.filename for f in src.files.values())
    fetch = "retry with network access to" if after_failed_download else "set data.download=true to fetch it from"
    url = src.base_url + src.files["archive"].filename if "archive" in src.files else src.base_url
    ways = [f"{fetch} {url}"]
    if src.debian_package:
        ways.append(f"run `apt-get install {src.debian_package}`")
    ways.append(f"copy {files} into one of the searched folders (or point data.root/--data-dir at them)")
    return "; or ".join(ways)


def repair_hint(name: str, place: Path) -> str:
    """How to replace a damaged file of ``name`` found in ``place``."""
    src = _source(name)
    if src.debian_package and place.is_relative_to(sources.SYSTEM_DATASETS_DIR):
        return f"reinstall the package: `apt-get install --reinstall {src.debian_package}`"
    hint = "delete the file and let genbench download it again (data.download=true)"
    if src.debian_package:
        return f"{hint}, or `apt-get install {src.debian_package}` and delete this copy"
    return f"{hint}, or copy the official file from {src.base_url} over it"


def download_targets(name: str, root: str | Path | None = None) -> list[Path]:
    out = [Path(root).expanduser()] if root is not None else []
    env = os.environ.get("GENBENCH_DATA")
    if env:
        out.append(Path(env).expanduser() / name)
    out.append(Path.home() / ".cache" / "genbench" / name)
    return out


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def _searched(name: str, root: str | Path | None) -> str:
    return ", ".join(str(p) for p in search_dirs(name, root))


def download(name: str, root: str | Path | None = None, split: str | None = None) -> Path:
    """Download the official files of ``name`` (md5-checked) and return the folder they are in."""
    src = _source(name)
    target = next((d for d in download_targets(name, root) if _writable(d)), None)
    if target is None:
        raise GenbenchError(
            f"{name} not found and no writable folder to download it to (tried "
            f"{', '.join(map(str, download_targets(name, root)))})",
            how_to_get(name),
        )
    try:
        from torchvision.datasets.utils import download_url  # heavy import: only when downloading
    except ImportError:
        raise GenbenchError(f"{name} must be downloaded but torchvision is not installed",
                            "pip install torchvision, or " + how_to_get(name)) from None
    roles = ["archive"] if name == "cifar10" else idx_roles(split)
    for role in roles:
        f = src.files[role]
        try:
            download_url(src.base_url + f.filename, root=str(target), filename=f.filename, md5=f.md5)
        except Exception as err:   # network errors, HTTP errors, md5 mismatch: all mean "not here"
            raise GenbenchError(
                f"{name} is not on this machine (searched {_searched(name, root)}) and downloading "
                f"{src.base_url + f.filename} failed ({type(err).__name__}: {err})",
                how_to_get(name, after_failed_download=True),
            ) from None
    return target


def find_dataset(name: str, root: str | Path | None, split: str, allow_download: bool) -> Path:
    """Where to read ``name``'s ``split`` from: a search hit, else a fresh download if allowed."""
    for place in search_dirs(name, root):
        hit = probe(name, place, split)
        if hit is not None:
            return hit
    if not allow_download:
        raise GenbenchError(
            f"{name} ({split}) not found; searched {_searched(name, root)} (downloading is off: data.download=false)",
            how_to_get(name),
        )
    hit = probe(name, download(name, root, split), split)
    if hit is None:   # download_url succeeded, so this means the files landed elsewhere
        raise GenbenchError(f"{name} was downloaded but its files are not where expected", how_to_get(name))
    return hit


def describe_datasets(root: str | Path | None = None) -> list[dict]:
    """For ``genbench data``: each dataset, whether and where it was found, where we looked, how to get it.

    Only checks that files exist (no decoding), so it is fast.
    """
    out = []
    for name in SOURCES:
        places = locate(name, root)
        where = next((probe(name, p) for p, found in places if found), None)
        out.append({
            "name": name,
            "found": where is not None,
            "where": None if where is None else str(where),
            "searched": [str(p) for p, _ in places],
            "how_to_get": how_to_get(name),
        })
    for name in TOY_SETS:
        out.append({"name": name, "found": True, "where": "generated", "searched": [],
                    "how_to_get": how_to_get(name)})
    return out
