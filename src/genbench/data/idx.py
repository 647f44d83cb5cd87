"""Reader for IDX files (MNIST, Fashion-MNIST), gzip-compressed or raw.

Format (http://yann.lecun.com/exdb/mnist/, "FILE FORMATS"): a big-endian 32-bit magic
``0x0000TTDD`` (TT = element type, 0x08 = unsigned byte; DD = number of dimensions), then DD
big-endian 32-bit sizes, then the data in row-major order. Images are ``0x00000803``
(N x rows x cols), labels ``0x00000801`` (N).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from torch import Tensor

from genbench.errors import GenbenchError
from genbench.limits import DATA_FILE_BYTES, check_memory, read_bytes, show_bytes

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class IdxArray:
    array: np.ndarray
    sha256: str          # of the decoded (decompressed) bytes, header included


# bytes read beyond what the header declares, to report how many there are (more: "more than")
_EXCESS_SHOWN = 1 << 20


def _open(path: Path, fix: str) -> BinaryIO:
    """A stream of the decoded bytes: the file itself, or its gzip stream decompressed as it is
    read (so a gzip bomb is never decompressed past what its header declares)."""
    raw = read_bytes(path, DATA_FILE_BYTES, "dataset file", fix)
    stream: BinaryIO = io.BytesIO(raw)
    return gzip.GzipFile(fileobj=stream, mode="rb") if raw.startswith(_GZIP_MAGIC) else stream


def _read(stream: BinaryIO, size: int, path: Path, fix: str) -> bytes:
    try:
        return stream.read(size)
    except (EOFError, OSError, zlib.error) as err:
        # EOFError: truncated stream; BadGzipFile (an OSError) / zlib.error: corrupt data
        raise GenbenchError(f"'{path}' is a truncated or corrupt gzip file ({err})", fix) from None


def read_idx(path: str | Path, magic: int, fix: str) -> IdxArray:
    """Decode one IDX file whose magic must be ``magic``; ``fix`` tells the user how to replace it.

    The header's dimensions are checked against :data:`genbench.limits.DATA_FILE_BYTES` and the
    memory available before the data is decoded."""
    path = Path(path)
    with _open(path, fix) as stream:
        data = _read(stream, 4, path, fix)
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
        data += _read(stream, header - 4, path, fix)
        if len(data) < header:
            raise GenbenchError(f"'{path}' ends inside its IDX header", fix)
        dims = struct.unpack(f">{ndim}I", data[4:header])
        expected = math.prod(dims)
        shape = "x".join(map(str, dims))
        if header + expected > DATA_FILE_BYTES.value:
            raise GenbenchError(
                f"'{path}': its IDX header declares {shape} = {show_bytes(expected)} of data, above the limit of "
                f"{DATA_FILE_BYTES.show()} for one dataset file ({DATA_FILE_BYTES.reason})",
                f"{fix}; {DATA_FILE_BYTES.raise_hint()}",
            )
        # decoded bytes, then the array copied into a tensor
        check_memory(2 * expected, f"reading '{path}' (IDX header {shape})", fix)
        body = _read(stream, expected + _EXCESS_SHOWN + 1, path, fix)
    if len(body) != expected:
        more = len(body) > expected + _EXCESS_SHOWN
        raise GenbenchError(
            f"'{path}' holds {'more than ' if more else ''}{min(len(body), expected + _EXCESS_SHOWN)} "
            f"data bytes but its header {shape} needs {expected}",
            fix,
        )
    sha = hashlib.sha256(data)
    sha.update(body)
    return IdxArray(np.frombuffer(body, dtype=np.uint8).reshape(dims), sha.hexdigest())


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
