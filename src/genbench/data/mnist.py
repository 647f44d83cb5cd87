"""MNIST and Fashion-MNIST: find the IDX files, read one split, check it against the official release."""

from __future__ import annotations

import hashlib
from pathlib import Path

from genbench.data.base import InMemoryData
from genbench.data.download import find_dataset, idx_file, repair_hint
from genbench.data.idx import read_idx_pair
from genbench.data.sources import SOURCES, SourceFile


def load_mnist_like(name: str, root: str | Path | None, split: str, allow_download: bool) -> InMemoryData:
    """Find (or download) and read one split of ``mnist`` or ``fashion_mnist``."""
    src = SOURCES[name]
    folder = find_dataset(name, root, split, allow_download)
    img_info, lab_info = src.files[f"{split}_images"], src.files[f"{split}_labels"]
    img_path, lab_path = idx_file(folder, img_info.filename), idx_file(folder, lab_info.filename)
    assert img_path is not None and lab_path is not None   # find_dataset checked both exist
    x, y, img_sha, lab_sha = read_idx_pair(img_path, lab_path, repair_hint(name, folder))
    verified = all(
        _official(path, sha, info) for path, sha, info in ((img_path, img_sha, img_info), (lab_path, lab_sha, lab_info))
    )
    return InMemoryData(x, y, "image", name, list(src.class_names), str(folder), verified=verified)


def _official(path: Path, decoded_sha256: str, info: SourceFile) -> bool:
    """The decoded content's sha256 is the official one, or the file is the official .gz (md5)."""
    if info.sha256_raw is not None:
        return decoded_sha256 == info.sha256_raw
    if path.name != info.filename:   # a decompressed copy, and no known hash of the content
        return False
    return hashlib.md5(path.read_bytes()).hexdigest() == info.md5
