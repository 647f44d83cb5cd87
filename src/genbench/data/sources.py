"""Official sources, file names and checksums of the downloadable datasets.

Checksums:
* Fashion-MNIST (Xiao et al. 2017): md5 of the published ``.gz`` files from
  https://github.com/zalandoresearch/fashion-mnist (README, "Get the Data"). Debian's
  ``dataset-fashion-mnist`` re-compresses the files, so local copies are checked by the
  sha256 of the decompressed content instead (computed from the official release).
* MNIST (LeCun et al. 1998): md5 of the ``.gz`` files as mirrored by PyTorch
  (``torchvision.datasets.MNIST.resources``).
* CIFAR-10 (Krizhevsky 2009): md5 of ``cifar-10-python.tar.gz`` from
  https://www.cs.toronto.edu/~kriz/cifar.html, and of its extracted members
  (``torchvision.datasets.CIFAR10.train_list/test_list/meta``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Debian/Ubuntu install packaged datasets here (e.g. ``apt-get install dataset-fashion-mnist``);
# a module attribute so that tests can point it elsewhere
SYSTEM_DATASETS_DIR = Path("/usr/share/datasets")


@dataclass(frozen=True)
class SourceFile:
    filename: str                     # as published
    md5: str                          # of the published file
    sha256_raw: str | None = None     # of the decompressed content, where known


@dataclass(frozen=True)
class DatasetSource:
    name: str
    base_url: str
    files: dict[str, SourceFile]      # role -> file
    class_names: tuple[str, ...]
    debian_name: str | None = None    # folder under SYSTEM_DATASETS_DIR
    debian_package: str | None = None
    member_md5: dict[str, str] = field(default_factory=dict)   # archive members (CIFAR)


FASHION_MNIST = DatasetSource(
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

MNIST = DatasetSource(
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

CIFAR10 = DatasetSource(
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

SOURCES: dict[str, DatasetSource] = {s.name: s for s in (FASHION_MNIST, MNIST, CIFAR10)}

CIFAR_DIRNAME = "cifar-10-batches-py"
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCHES = ("test_batch",)
CIFAR_META = "batches.meta"


def idx_roles(split: str | None) -> list[str]:
    """File roles an IDX dataset needs for ``split`` (both splits when None)."""
    splits = ("train", "test") if split is None else (split,)
    return [f"{s}_{kind}" for s in splits for kind in ("images", "labels")]
