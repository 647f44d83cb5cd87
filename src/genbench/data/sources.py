"""A dataset read from files: where they may be, how to fetch them, what to say when they are missing.

Each such dataset is one :class:`Source` (``FASHION_MNIST`` and ``MNIST`` in :mod:`.mnist`,
``CIFAR10`` in :mod:`.cifar`, listed in :data:`genbench.data.SOURCES`): its official URL and
checksums, and its layout (the files a split needs, how to recognise them in a folder, how to read
them). What is shared lives here, once:

Search order (first hit wins), :func:`places`:

1. ``data.root`` / ``--data-dir`` (for CIFAR-10 also the tar.gz itself),
2. ``$GENBENCH_DATA/<name>``, then ``$GENBENCH_DATA``,
3. ``/usr/share/datasets/<debian-name>`` (Debian packages; Fashion-MNIST only so far),
4. ``~/.cache/genbench/<name>``.

Downloads go to the first writable of ``data.root``, ``$GENBENCH_DATA/<name>``,
``~/.cache/genbench/<name>``, and are checked against the official md5 (torchvision's
``download_url``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from genbench.data.base import InMemoryData
from genbench.errors import GenbenchError

# Debian/Ubuntu install packaged datasets here (e.g. ``apt-get install dataset-fashion-mnist``);
# a module attribute so that tests can point it elsewhere
SYSTEM_DATASETS_DIR = Path("/usr/share/datasets")


def places(name: str, root: str | Path | None = None, debian_name: str | None = None) -> list[tuple[Path, bool]]:
    """Where the files of dataset ``name`` may be, in search order, each with whether downloads may go there."""
    out = [(Path(root).expanduser(), True)] if root is not None else []
    env = os.environ.get("GENBENCH_DATA")
    if env:
        if env.startswith("~") and os.path.expanduser(env) == env:
            raise GenbenchError(f"$GENBENCH_DATA={env} names the home of a user unknown here",
                                "set GENBENCH_DATA to the full path")
        out += [(Path(env).expanduser() / name, True), (Path(env).expanduser(), False)]
    if debian_name:
        out.append((SYSTEM_DATASETS_DIR / debian_name, False))
    out.append((Path.home() / ".cache" / "genbench" / name, True))
    return out


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


@dataclass(frozen=True)
class SourceFile:
    filename: str                     # as published
    md5: str                          # of the published file
    sha256_raw: str | None = None     # of the decompressed content, where known


@dataclass(frozen=True)
class Source:
    """One dataset's official files and where to find them; a subclass adds its layout and reader.

    A subclass defines :meth:`roles` (the files a split needs), :meth:`probe` (what to read at a
    searched place, if anything) and :meth:`read` (the data from what :meth:`probe` returned).
    """

    name: str
    base_url: str
    files: dict[str, SourceFile]      # role -> file
    class_names: tuple[str, ...]
    debian_name: str | None = None    # folder under SYSTEM_DATASETS_DIR
    debian_package: str | None = None

    # ------------------------------------------------------------------ layout (per subclass)

    def roles(self, split: str | None) -> list[str]:
        """The roles of the files that ``split`` needs (both splits when None)."""
        raise NotImplementedError

    def probe(self, place: Path, split: str | None = None) -> Path | None:
        """What to read for ``split`` (default: both splits) at ``place``, or None when it is not there."""
        raise NotImplementedError

    def read(self, where: Path, split: str) -> InMemoryData:
        """Read ``split`` from ``where`` (a hit of :meth:`probe`)."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        """The address shown to users: the folder of the official files."""
        return self.base_url

    # ------------------------------------------------------------------ shared

    def load(self, root: str | Path | None, split: str, allow_download: bool) -> InMemoryData:
        """Find (or download) and read ``split``."""
        return self.read(self.find(root, split, allow_download), split)

    def search_dirs(self, root: str | Path | None = None) -> list[Path]:
        """The places searched, in order (they need not exist), each once."""
        seen: set[Path] = set()   # e.g. root == $GENBENCH_DATA comes up twice
        return [p for p, _ in places(self.name, root, self.debian_name) if not (p in seen or seen.add(p))]

    def download_targets(self, root: str | Path | None = None) -> list[Path]:
        """The folders a download may go to, in order of preference."""
        return [p for p, target in places(self.name, root, self.debian_name) if target]

    def locate(self, root: str | Path | None = None, split: str | None = None) -> list[tuple[Path, bool]]:
        """Every searched place with whether the files for ``split`` (default: both splits) are there."""
        return [(place, self.probe(place, split) is not None) for place in self.search_dirs(root)]

    def find(self, root: str | Path | None, split: str, allow_download: bool) -> Path:
        """Where to read ``split`` from: a search hit, else a fresh download if allowed."""
        for place in self.search_dirs(root):
            hit = self.probe(place, split)
            if hit is not None:
                return hit
        if not allow_download:
            raise GenbenchError(
                f"{self.name} ({split}) not found; searched {self._searched(root)} "
                "(downloading is off: data.download=false)",
                self.how_to_get(),
            )
        hit = self.probe(self.download(root, split), split)
        if hit is None:   # download_url succeeded, so this means the files landed elsewhere
            raise GenbenchError(f"{self.name} was downloaded but its files are not where expected", self.how_to_get())
        return hit

    def download(self, root: str | Path | None = None, split: str | None = None) -> Path:
        """Download the official files for ``split`` (md5-checked) and return the folder they are in."""
        target = next((d for d in self.download_targets(root) if _writable(d)), None)
        if target is None:
            raise GenbenchError(
                f"{self.name} not found and no writable folder to download it to (tried "
                f"{', '.join(map(str, self.download_targets(root)))})",
                self.how_to_get(),
            )
        try:
            from torchvision.datasets.utils import download_url  # heavy import: only when downloading
        except ImportError:
            raise GenbenchError(f"{self.name} must be downloaded but torchvision is not installed",
                                "pip install torchvision, or " + self.how_to_get()) from None
        for role in self.roles(split):
            f = self.files[role]
            try:
                download_url(self.base_url + f.filename, root=str(target), filename=f.filename, md5=f.md5)
            except Exception as err:   # network errors, HTTP errors, md5 mismatch: all mean "not here"
                raise GenbenchError(
                    f"{self.name} is not on this machine (searched {self._searched(root)}) and downloading "
                    f"{self.base_url + f.filename} failed ({type(err).__name__}: {err})",
                    self.how_to_get(after_failed_download=True),
                ) from None
        return target

    def how_to_get(self, after_failed_download: bool = False) -> str:
        """One line telling the user how to obtain the dataset."""
        fetch = "retry with network access to" if after_failed_download else "set data.download=true to fetch it from"
        ways = [f"{fetch} {self.url}"]
        if self.debian_package:
            ways.append(f"run `apt-get install {self.debian_package}`")
        files = ", ".join(f.filename for f in self.files.values())
        ways.append(f"copy {files} into one of the searched folders (or point data.root/--data-dir at them)")
        return "; or ".join(ways)

    def repair_hint(self, place: Path) -> str:
        """How to replace a damaged file found in ``place``."""
        if self.debian_package and place.is_relative_to(SYSTEM_DATASETS_DIR):
            return f"reinstall the package: `apt-get install --reinstall {self.debian_package}`"
        hint = "delete the file and let genbench download it again (data.download=true)"
        if self.debian_package:
            return f"{hint}, or `apt-get install {self.debian_package}` and delete this copy"
        return f"{hint}, or copy the official file from {self.base_url} over it"

    def describe(self, root: str | Path | None = None) -> dict:
        """For ``genbench data``: whether and where it was found, where we looked, how to get it.

        Only checks that files exist (no decoding), so it is fast.
        """
        located = self.locate(root)
        where = next((self.probe(p) for p, found in located if found), None)
        return {
            "name": self.name,
            "found": where is not None,
            "where": None if where is None else str(where),
            "searched": [str(p) for p, _ in located],
            "how_to_get": self.how_to_get(),
        }

    def _searched(self, root: str | Path | None) -> str:
        return ", ".join(str(p) for p in self.search_dirs(root))
