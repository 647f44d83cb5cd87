"""MNIST and Fashion-MNIST: their official files and checksums, their layout, and the reader.

Layout: four IDX files (``{train,t10k}-{images,labels}-idx?-ubyte``) side by side in one folder,
each either as published (``.gz``) or decompressed; a split needs its two.

Checksums:
* Fashion-MNIST (Xiao et al. 2017): md5 of the published ``.gz`` files from
  https://github.com/zalandoresearch/fashion-mnist (README, "Get the Data"). Debian's
  ``dataset-fashion-mnist`` re-compresses the files, so local copies are checked by the
  sha256 of the decompressed content instead (computed from the official release).
* MNIST (LeCun et al. 1998): md5 of the ``.gz`` files as mirrored by PyTorch
  (``torchvision.datasets.MNIST.resources``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from genbench.data.base import InMemoryData
from genbench.data.idx import read_idx_pair
from genbench.data.sources import Source, SourceFile
from genbench.errors import GenbenchError


def idx_file(folder: Path, filename: str) -> Path | None:
    """``folder/filename`` (the .gz) or its decompressed twin, whichever exists (gz first)."""
    for candidate in (folder / filename, folder / filename.removesuffix(".gz")):
        if candidate.exists() and not candidate.is_dir():   # read_idx refuses a device or FIFO
            return candidate
    return None


@dataclass(frozen=True)
class IdxSource(Source):
    """A dataset published as IDX image and label files per split (MNIST's layout)."""

    def roles(self, split: str | None) -> list[str]:
        splits = ("train", "test") if split is None else (split,)
        return [f"{s}_{kind}" for s in splits for kind in ("images", "labels")]

    def probe(self, place: Path, split: str | None = None) -> Path | None:
        if place.is_dir() and all(idx_file(place, self.files[r].filename) for r in self.roles(split)):
            return place
        return None

    def read(self, where: Path, split: str) -> InMemoryData:
        img_info, lab_info = self.files[f"{split}_images"], self.files[f"{split}_labels"]
        img_path, lab_path = idx_file(where, img_info.filename), idx_file(where, lab_info.filename)
        assert img_path is not None and lab_path is not None   # probe checked both exist
        x, y, img_sha, lab_sha = read_idx_pair(img_path, lab_path, self.repair_hint(where))
        verified = all(
            _official(path, sha, info) for path, sha, info in ((img_path, img_sha, img_info), (lab_path, lab_sha, lab_info))
        )
        if not verified:   # files of the other set (Fashion-MNIST given as MNIST, or back) are refused
            self._check_not_other(img_path, img_sha, lab_path, lab_sha, split)
        return InMemoryData(x, y, "image", self.name, list(self.class_names), str(where), verified=verified)

    def _check_not_other(self, img_path: Path, img_sha: str, lab_path: Path, lab_sha: str, split: str) -> None:
        for other in IDX_SOURCES:
            if other.name == self.name:
                continue
            for path, sha, role in ((img_path, img_sha, "images"), (lab_path, lab_sha, "labels")):
                if _official(path, sha, other.files[f"{split}_{role}"]):
                    raise GenbenchError(
                        f"data.name={self.name}, but {path} is the official {other.name} {split} {role} file "
                        f"(its checksum matches {other.name}'s, not {self.name}'s)",
                        f"set data.name={other.name}, or point data.root/--data-dir at the {self.name} files")


def _official(path: Path, decoded_sha256: str, info: SourceFile) -> bool:
    """The decoded content's sha256 is the official one, or the file is the official .gz (md5)."""
    if info.sha256_raw is not None:
        return decoded_sha256 == info.sha256_raw
    if path.name != info.filename:   # a decompressed copy, and no known hash of the content
        return False
    return hashlib.md5(path.read_bytes()).hexdigest() == info.md5


FASHION_MNIST = IdxSource(
    name="fashion_mnist",
    base_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    files={
        "train_images": SourceFile(
            "train-images-idx3-ubyte.gz",
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        "train_labels": SourceFile(
            "train-labels-idx1-ubyte.gz",
            "25c81989df183df01b3e8a0aad5dffbe",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        "test_images": SourceFile(
            "t10k-images-idx3-ubyte.gz",
            "bef4ecab320f06d8554ea6380940ec79",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        "test_labels": SourceFile(
            "t10k-labels-idx1-ubyte.gz",
            "bb300cfdad3c16e7a12a480ee83cd310",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    },
    class_names=(
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    debian_name="fashion-mnist",
    debian_package="dataset-fashion-mnist",
)

MNIST = IdxSource(
    name="mnist",
    base_url="https://ossci-datasets.s3.amazonaws.com/mnist/",
    files={
        "train_images": SourceFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        "train_labels": SourceFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        "test_images": SourceFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        "test_labels": SourceFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    },
    class_names=tuple(str(d) for d in range(10)),
    debian_name="mnist",
)

# the IDX datasets, each checked against the others' official checksums (a set given under the wrong name)
IDX_SOURCES = (FASHION_MNIST, MNIST)
