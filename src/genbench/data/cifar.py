"""CIFAR-10: its official archive and checksums, its layout, and the "python version" reader.

Layout (https://www.cs.toronto.edu/~kriz/cifar.html): ``cifar-10-python.tar.gz`` holds the folder
``cifar-10-batches-py``, which is read from the archive itself (nothing is extracted), from the
folder, or from a folder that contains it. ``data_batch_1..5`` and ``test_batch`` are
pickled dicts with ``b'data'`` (N x 3072 uint8: 1024 red, then green, then blue values, each a
32 x 32 image in row-major order) and ``b'labels'`` (N ints in 0..9); ``batches.meta`` holds
``b'label_names'``. They were written by Python 2, hence ``encoding='bytes'``.

Checksums: md5 of ``cifar-10-python.tar.gz`` from https://www.cs.toronto.edu/~kriz/cifar.html, and
of its extracted members (``torchvision.datasets.CIFAR10.train_list/test_list/meta``).

Unpickling can run arbitrary code, so :class:`SafeUnpickler` only hands out the few numpy
callables that rebuild arrays and refuses every other global.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import pickle
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from genbench.data.base import InMemoryData
from genbench.data.sources import Source, SourceFile
from genbench.errors import GenbenchError
from genbench.limits import CIFAR_ARCHIVE_BYTES, CIFAR_BATCH_BYTES, check_file, read_bytes, show_bytes

CIFAR_DIRNAME = "cifar-10-batches-py"
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCHES = ("test_batch",)
CIFAR_META = "batches.meta"
_OFFICIAL = "use the official cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html)"


def _numpy_attr(name: str, candidates: tuple[str, ...]) -> Any:
    # numpy 2 moved numpy.core to numpy._core; import the real module, not the deprecated shim
    for module in candidates:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    return None


def _latin1_encode(obj: str, encoding: str = "latin1") -> bytes:
    """Python 3 protocol-2 pickles spell bytes as ``_codecs.encode(str, 'latin1')``; allow only that."""
    if not isinstance(obj, str) or encoding.replace("-", "").lower() != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return obj.encode("latin1")


_RECONSTRUCT = _numpy_attr("_reconstruct", ("numpy._core.multiarray", "numpy.core.multiarray"))
_FROMBUFFER = _numpy_attr("_frombuffer", ("numpy._core.numeric", "numpy.core.numeric"))

# (module, name) -> object: everything a pickled uint8 array (any protocol) needs, nothing more
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    if _RECONSTRUCT is not None:
        _ALLOWED[(_mod, "_reconstruct")] = _RECONSTRUCT
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    if _FROMBUFFER is not None:
        _ALLOWED[(_mod, "_frombuffer")] = _FROMBUFFER


class _Refused(Exception):
    def __init__(self, what: str):
        self.what = what


class SafeUnpickler(pickle.Unpickler):
    """Unpickler whose ``find_class`` allows only the numpy array-rebuilding globals."""

    def find_class(self, module: str, name: str) -> Any:
        obj = _ALLOWED.get((module, name))
        if obj is None:
            raise _Refused(f"{module}.{name}")
        return obj


def safe_load(data: bytes, what: str) -> Any:
    """Unpickle ``data`` (named ``what`` in errors) with :class:`SafeUnpickler`, ``encoding='bytes'``."""
    try:
        return SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except _Refused as err:
        raise GenbenchError(
            f"refusing to load '{what}': it asks for {err.what}, which a CIFAR-10 batch never needs",
            "use the official cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html)",
        ) from None
    except Exception as err:  # any decoding failure means a damaged file
        raise GenbenchError(
            f"'{what}' is not a readable CIFAR-10 pickle ({type(err).__name__}: {err})",
            "delete it and download cifar-10-python.tar.gz again",
        ) from None


def _read_members(source: Path, names: list[str]) -> dict[str, bytes]:
    """Raw bytes of the named batch files from a batches folder or from the tar.gz (one pass)."""
    if source.is_dir():
        out = {}
        for name in names:
            out[name] = read_bytes(source / name, CIFAR_BATCH_BYTES, "CIFAR-10 batch file",
                                   "re-extract cifar-10-python.tar.gz, or point data.root at the tar.gz itself")
        return out
    check_file(source, CIFAR_ARCHIVE_BYTES, "CIFAR-10 archive", _OFFICIAL)
    out = {}
    try:
        with tarfile.open(source, "r:*") as tar:
            # members are read as they stream past; nothing is extracted to disk
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.size > CIFAR_BATCH_BYTES.value:   # refused before it is decompressed, even to skip it
                    raise GenbenchError(
                        f"'{source}' holds '{member.name}' of {show_bytes(member.size)}, above the limit of "
                        f"{CIFAR_BATCH_BYTES.show()} for one member ({CIFAR_BATCH_BYTES.reason})",
                        f"{_OFFICIAL}; {CIFAR_BATCH_BYTES.raise_hint()}")
                if member.isfile() and base in names and base not in out:
                    handle = tar.extractfile(member)
                    if handle is not None:
                        out[base] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as err:
        raise GenbenchError(
            f"'{source}' is not a readable tar archive ({err})",
            "delete it and let genbench download cifar-10-python.tar.gz again (data.download=true)",
        ) from None
    missing = [n for n in names if n not in out]
    if missing:
        raise GenbenchError(
            f"'{source}' lacks {', '.join(missing)}",
            "use the official cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html)",
        )
    return out


def _decode_batch(obj: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(obj, dict) or b"data" not in obj or b"labels" not in obj:
        raise GenbenchError(
            f"'{what}' is not a CIFAR-10 batch (no b'data'/b'labels' entries)",
            "use the official cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html)",
        )
    data = np.asarray(obj[b"data"])
    try:
        labels = np.asarray(obj[b"labels"])
    except (ValueError, TypeError):   # ragged or otherwise not an array
        labels = np.asarray([], dtype=object)
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or (labels.size and not 0 <= labels.min() <= labels.max() <= 9):
        raise GenbenchError(
            f"'{what}': b'labels' must be a list of whole numbers in 0..9 (got {labels.dtype} {labels.shape})",
            "use the official cifar-10-python.tar.gz",
        )
    labels = labels.astype(np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise GenbenchError(
            f"'{what}': b'data' is {data.dtype} {data.shape}, expected uint8 N x 3072",
            "use the official cifar-10-python.tar.gz",
        )
    if len(labels) != len(data):
        raise GenbenchError(f"'{what}' holds {len(data)} images but {len(labels)} labels",
                            "use the official cifar-10-python.tar.gz")
    return data, labels


def read_cifar10(source: str | Path, split: str) -> tuple[Tensor, Tensor, list[str], dict[str, str]]:
    """Images (uint8 ``N x 3 x 32 x 32``), labels (int64), class names and the md5 of each file read.

    ``source`` is the ``cifar-10-batches-py`` folder, a folder that contains it, or the tar.gz.
    """
    source = Path(source)
    if source.is_dir() and (source / CIFAR_DIRNAME).is_dir():
        source = source / CIFAR_DIRNAME
    batches = list(CIFAR_TRAIN_BATCHES if split == "train" else CIFAR_TEST_BATCHES)
    raw = _read_members(source, batches + [CIFAR_META])
    xs, ys = [], []
    for name in batches:
        data, labels = _decode_batch(safe_load(raw[name], f"{source}/{name}"), f"{source}/{name}")
        xs.append(data)
        ys.append(labels)
    meta = safe_load(raw[CIFAR_META], f"{source}/{CIFAR_META}")
    names = meta.get(b"label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list):
        raise GenbenchError(f"'{source}/{CIFAR_META}' has no b'label_names'", "use the official archive")
    class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    x = torch.from_numpy(np.concatenate(xs).reshape(-1, 3, 32, 32))
    y = torch.from_numpy(np.concatenate(ys))
    return x, y, class_names, {name: hashlib.md5(data).hexdigest() for name, data in raw.items()}


@dataclass(frozen=True)
class CifarSource(Source):
    """CIFAR-10's layout: the tar.gz, its ``cifar-10-batches-py`` folder, or a folder holding either."""

    member_md5: dict[str, str] = field(default_factory=dict)   # of the archive's members

    @property
    def url(self) -> str:
        return self.base_url + self.files["archive"].filename

    def roles(self, split: str | None) -> list[str]:
        return ["archive"]   # one archive holds both splits

    def probe(self, place: Path, split: str | None = None) -> Path | None:
        if place.is_file() and place.name.endswith((".tar.gz", ".tgz", ".tar")):
            return place
        if not place.is_dir():
            return None
        for folder in (place, place / CIFAR_DIRNAME):
            needed = list(CIFAR_TRAIN_BATCHES) if split in (None, "train") else []
            needed += list(CIFAR_TEST_BATCHES) if split in (None, "test") else []
            if all((folder / f).is_file() for f in needed + [CIFAR_META]):
                return folder
        archive = place / self.files["archive"].filename
        return archive if archive.is_file() else None

    def read(self, where: Path, split: str) -> InMemoryData:
        x, y, class_names, md5s = read_cifar10(where, split)
        verified = all(md5 == self.member_md5.get(name) for name, md5 in md5s.items())
        return InMemoryData(x, y, "image", self.name, class_names, str(where), verified=verified)


CIFAR10 = CifarSource(
    name="cifar10",
    base_url="https://www.cs.toronto.edu/~kriz/",
    files={"archive": SourceFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")},
    class_names=(
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ),
    member_md5={
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
)
