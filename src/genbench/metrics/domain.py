"""Domain feature extractor: a small CNN classifier trained on the 28x28 greyscale dataset itself.

Inception-v3 features (trained on 299x299 ImageNet photos) describe upsampled 28x28 greyscale
images poorly, so for Fashion-MNIST and MNIST the features are the 128-d penultimate activations
(after the last ReLU) of a classifier trained on that dataset's training split, and its logits
feed an Inception-Score-style score. This follows the common practice of dataset-specific
classifiers for MNIST-like data (e.g. the LeNet-based "MNIST score" and FID variants used by
Lucic et al. 2018, "Are GANs Created Equal?").

Network: three conv-BN-ReLU stages (32, 64, 128 channels, 3x3, each followed by 2x2 max-pooling;
Ioffe & Szegedy 2015 for batch norm), flatten, linear to 128, BN, ReLU (the features), dropout
(Srivastava et al. 2014), linear to 10 classes. Input: ``to_model_range`` pixels in ``[-1, 1]``.

The weights ship as safetensors (no pickle) in ``genbench/metrics/weights/`` and their sha256 is
pinned below: a missing, truncated, tampered or silently retrained file is refused, because
every number computed with these features is only comparable with the same weights.
``scripts/train_domain_classifier.py`` trains them and prints the hash to pin.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from torch import Tensor, nn

from genbench.data.transforms import to_model_range
from genbench.errors import GenbenchError
from genbench.metrics.features import Features, batched, check_uint8_images

DOMAIN_DATASETS = ("fashion_mnist", "mnist")   # the datasets a domain classifier exists for
ARCH_VERSION = "v1"
IMAGE_SHAPE = (1, 28, 28)
NUM_CLASSES = 10
STAGE_CHANNELS = (32, 64, 128)
FEATURE_DIM = 128
DROPOUT = 0.3
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

# sha256 of the shipped weights; None = no weights shipped for that dataset (train and pin them).
PINNED_SHA256: dict[str, str | None] = {
    "fashion_mnist": "bfaf32aefd933dc3671cc5d369be330541cf08876760bbab958f3f4ea224aac6",
    "mnist": None,   # the MNIST files were not available where the shipped weights were trained
}


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class DomainClassifier(nn.Module):
    """28x28 greyscale classifier; ``forward(x in [-1, 1]) -> (features N x 128, logits N x 10)``."""

    def __init__(self, num_classes: int = NUM_CLASSES, dropout: float = DROPOUT):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = IMAGE_SHAPE[0]
        for c_out in STAGE_CHANNELS:          # 28 -> 14 -> 7 -> 3
            layers += [*_conv_bn_relu(c_in, c_out), nn.MaxPool2d(2)]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        side = IMAGE_SHAPE[1] // 2 ** len(STAGE_CHANNELS)
        self.embed = nn.Sequential(
            nn.Flatten(), nn.Linear(c_in * side * side, FEATURE_DIM, bias=False),
            nn.BatchNorm1d(FEATURE_DIM), nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.embed(self.body(x))
        return features, self.head(self.dropout(features))


def default_weights_path(dataset: str) -> Path:
    """Where the shipped weights for ``dataset`` live (inside the installed package)."""
    return WEIGHTS_DIR / f"{dataset}_classifier.safetensors"


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def safetensors_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors blob (8-byte little-endian header length, then JSON)."""
    (n,) = struct.unpack("<Q", data[:8])
    return dict(json.loads(data[8:8 + n]).get("__metadata__", {}))


def _fix(dataset: str, path: Path) -> str:
    return (f"restore the file from git (git checkout -- {path}) or retrain with "
            f"scripts/train_domain_classifier.py --dataset {dataset} and update the pin "
            f"(PINNED_SHA256 in genbench/metrics/domain.py)")


def load_verified_weights(dataset: str, weights_path: str | Path | None = None) -> tuple[dict, str, dict]:
    """Read the weights for ``dataset``, check their sha256 against the pin -> (tensors, sha256, metadata)."""
    if dataset not in DOMAIN_DATASETS:
        raise GenbenchError(
            f"there is no domain classifier for dataset '{dataset}' (only {', '.join(DOMAIN_DATASETS)})",
            "use the inception extractor for this dataset",
        )
    pinned = PINNED_SHA256.get(dataset)
    if pinned is None:
        raise GenbenchError(
            f"no domain classifier weights are pinned for {dataset}",
            f"train them with scripts/train_domain_classifier.py --dataset {dataset} (needs the {dataset} "
            f"files), keep the output at {default_weights_path(dataset)} and put the printed sha256 into "
            "PINNED_SHA256 in genbench/metrics/domain.py; or use the inception extractor",
        )
    path = Path(weights_path).expanduser() if weights_path is not None else default_weights_path(dataset)
    if not path.is_file():
        raise GenbenchError(
            f"domain classifier weights {path} are missing, so their sha256 cannot match the pinned "
            f"{pinned[:16]}...", _fix(dataset, path),
        )
    data = path.read_bytes()   # hash and parse the same bytes: nothing can change in between
    sha = file_sha256(data)
    if sha != pinned:
        raise GenbenchError(
            f"domain classifier weights {path} ({len(data)} bytes) have sha256 {sha[:16]}..., which does not "
            f"match the pinned {pinned[:16]}... (tampered, truncated or retrained)", _fix(dataset, path),
        )
    return load_safetensors(data), sha, safetensors_metadata(data)


class DomainExtractor:
    """Penultimate features (128-d, after ReLU) and logits of the pinned domain classifier; its logits
    are over the dataset's own classes (``num_classes``), so its argmax is a class prediction."""

    feature_dim = FEATURE_DIM
    num_classes = NUM_CLASSES

    def __init__(self, dataset: str, weights_path: str | Path | None = None, device: str | torch.device = "cpu"):
        tensors, sha, metadata = load_verified_weights(dataset, weights_path)
        self.dataset = dataset
        self.name = f"domain-{dataset}-{ARCH_VERSION}"
        self.weights_sha256 = sha
        self.metadata = metadata
        self.device = torch.device(device)
        self.net = DomainClassifier()
        self.net.load_state_dict(tensors)
        self.net.to(self.device).eval().requires_grad_(False)

    def extract(self, images: Tensor, batch_size: int = 500) -> Features:
        """uint8 ``N x 1 x 28 x 28`` -> features ``N x 128`` and logits ``N x 10`` (float64)."""
        check_uint8_images(images, self.name)
        if tuple(images.shape[1:]) != IMAGE_SHAPE:
            raise GenbenchError(
                f"{self.name} expects images of shape N x 1 x 28 x 28, got {tuple(images.shape)}",
                "use the inception extractor for other image sizes or colour images",
            )
        return batched(images, batch_size, self.device, lambda x: self.net(to_model_range(x)),
                       FEATURE_DIM, NUM_CLASSES)
