"""Reader for IDX files (MNIST, Fashion-MNIST), gzip-compressed or raw.

Format (http://yann.lecun.com/exdb/mnist/, "FILE FORMATS"): a big-endian 32-bit magic
``0x0000TTDD`` (TT = element type, 0x08 = unsigned byte; DD = number of dimensions), then DD
big-endian 32-bit sizes, then the data in row-major order. Images are ``0x00000803``
(N x rows x cols), labels ``0x00000801`` (N).
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from genbench.errors import GenbenchError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class IdxArray:
    array: np.ndarray
    sha256: str          # of the decoded (decompressed) bytes, header included


def _read_bytes(path: Path, fix: str) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise GenbenchError(f"cannot read '{path}': {err.strerror or err}", fix) from None
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:
        # EOFError: truncated stream; BadGzipFile (an OSError) / zlib.error: corrupt data
        raise GenbenchError(f"'{path}' is a truncated or corrupt gzip file ({err})", fix) from None


def read_idx(path: str | Path, magic: int, fix: str) -> IdxArray:
    """Decode one IDX file whose magic must be ``magic``; ``fix`` tells the user how to replace it."""
    path = Path(path)
    data = _read_bytes(path, fix)
    if len(data) < 4:
        raise GenbenchError(f"'{path}' is too short to be an IDX file ({len(data)} bytes)", fix)
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        kind = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}.get(magic, "IDX")
        raise GenbenchError(
            f"'{path}' is not an IDX {kind} file: magic number 0x{found:08x}, expected 0x{magic:08x}",
            fix,
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise GenbenchError(f"'{path}' ends inside its IDX header", fix)
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != expected:
        raise GenbenchError(
            f"'{path}' holds {len(data) - header} data bytes but its header "
            f"{'x'.join(map(str, dims))} needs {expected}",
            fix,
        )
    array = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)
    return IdxArray(array, hashlib.sha256(data).hexdigest())


def read_idx_pair(images_path: str | Path, labels_path: str | Path, fix: str) -> tuple[Tensor, Tensor, str, str]:
    """Images (uint8 ``N x 1 x H x W``) and labels (int64) with the sha256 of each decoded file."""
    images = read_idx(images_path, IMAGES_MAGIC, fix)
    labels = read_idx(labels_path, LABELS_MAGIC, fix)
    n_img, n_lab = images.array.shape[0], labels.array.shape[0]
    if n_img != n_lab:
        raise GenbenchError(
            f"'{images_path}' holds {n_img} images but '{labels_path}' holds {n_lab} labels", fix
        )
    # frombuffer arrays are read-only views of bytes; copy into tensors we own
    x = torch.from_numpy(images.array.copy()).unsqueeze(1)
    y = torch.from_numpy(labels.array.astype(np.int64))
    return x, y, images.sha256, labels.sha256
