"""Building feature extractors: by kind and dataset, with stacked images handled channel by channel.

The interface they implement is :mod:`genbench.metrics.features`; the two kinds are
:mod:`genbench.metrics.domain` and :mod:`genbench.metrics.inception`.
"""

from __future__ import annotations

import numpy as np
import torch

from genbench.errors import GenbenchError
from genbench.metrics.domain import DOMAIN_DATASETS, DomainExtractor
from genbench.metrics.features import FeatureExtractor, Features
from genbench.metrics.inception import InceptionExtractor
from genbench.metrics.modes import stacked_mode_stats

EXTRACTOR_KINDS = ("domain", "inception")
STACKED = {"stacked_fashion_mnist": "fashion_mnist"}   # a stacked dataset -> the dataset of its channels


def default_extractor_kind(dataset: str) -> str:
    """``"domain"`` for the 28x28 greyscale sets (fashion_mnist, mnist), ``"inception"`` otherwise."""
    return "domain" if dataset in DOMAIN_DATASETS else "inception"


def build_extractor(
    kind: str, dataset: str, weights_path: str | None = None, device: str | torch.device = "cpu"
) -> FeatureExtractor:
    """The extractor of ``kind`` ("domain" | "inception") for ``dataset``, with verified weights."""
    if kind == "domain":
        return DomainExtractor(dataset, weights_path=weights_path, device=device)
    if kind == "inception":
        return InceptionExtractor(weights_path=weights_path, device=device)
    raise GenbenchError(f"unknown feature extractor '{kind}'", f"choose one of {', '.join(EXTRACTOR_KINDS)}")


def extractor_for_data(dataset: str, kind: str | None = None, inception_weights: str | None = None,
                       device: str | torch.device = "cpu") -> FeatureExtractor:
    """The extractor that scores samples of ``dataset``: ``kind`` (default: :func:`default_extractor_kind`)
    for the dataset, or for a stacked dataset its channels' dataset, applied channel by channel.
    ``inception_weights`` is used by the inception kind only."""
    base = STACKED.get(dataset, dataset)
    kind = kind or default_extractor_kind(base)
    extractor = build_extractor(kind, base, inception_weights if kind == "inception" else None, device=device)
    return ChannelStacked(extractor) if dataset in STACKED else extractor


class ChannelStacked:
    """A 1-channel extractor applied to each channel of stacked images, features concatenated.

    Logits are not defined for the stack (no Inception-Score-style score); ``mode_stats``
    classifies each channel and counts the 1000 (a, b, c) class triples.
    """

    def __init__(self, base: FeatureExtractor):
        self.base = base
        self.name = f"stacked3-{base.name}"
        self.weights_sha256 = base.weights_sha256
        self.feature_dim = 3 * base.feature_dim

    def extract(self, images, batch_size: int = 500) -> Features:
        flat = self.base.extract(images.reshape(-1, 1, *images.shape[2:]), batch_size)
        flat.features = flat.features.reshape(len(images), -1)
        flat.logits = None
        return flat

    def channel_labels(self, images) -> np.ndarray:
        """The base classifier's class of each channel: ``N x 3`` ints."""
        logits = self.base.extract(images.reshape(-1, 1, *images.shape[2:]), batch_size=500).logits
        return np.asarray(logits).argmax(1).reshape(len(images), 3)

    def mode_stats(self, images) -> dict:
        return stacked_mode_stats(self.channel_labels(images))
