"""The feature-extractor interface shared by FID, precision/recall/density/coverage and mode counts.

An extractor maps uint8 images ``N x C x H x W`` to one feature vector per image (and, where it
has a classifier head, logits for an Inception-Score-style score). Two kinds exist:

- ``domain``: a small CNN trained on the dataset itself (Fashion-MNIST, MNIST), whose penultimate
  activations are the features (:mod:`genbench.metrics.domain`); Inception features are a poor
  fit for 28x28 greyscale images, so 28x28 datasets default to this one.
- ``inception``: the Inception-v3 pool features of FID (Heusel et al. 2017) through
  torch-fidelity's TensorFlow-compatible port (:mod:`genbench.metrics.inception`).

Every extractor carries a ``name`` and the sha256 of its weights, so that cached statistics and
reported numbers can always say exactly which network produced them.

This module is the interface only; :mod:`genbench.metrics.extractors` builds the extractors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from genbench.errors import GenbenchError


@dataclass
class Features:
    """Per-image features (``N x D`` float64) and, when the extractor has a classifier head, logits."""

    features: np.ndarray
    logits: np.ndarray | None = None


@runtime_checkable
class FeatureExtractor(Protocol):
    """What every extractor offers: an identity (name + weights hash) and batched extraction."""

    name: str            # e.g. "domain-fashion_mnist-v1", "inception-v3-compat"
    weights_sha256: str  # sha256 of the weights file the network was loaded from
    feature_dim: int

    def extract(self, images: torch.Tensor, batch_size: int = 500) -> Features:
        """uint8 images ``N x C x H x W`` -> :class:`Features` (inference mode, batched, on its device)."""
        ...


def check_uint8_images(images: torch.Tensor, who: str) -> None:
    """Refuse anything but a uint8 ``N x C x H x W`` tensor, with a one-line error."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise GenbenchError(
            f"{who} expects uint8 images N x C x H x W, got {got}",
            "convert samples with genbench.data.to_uint8 before extracting features",
        )


def batched(
    images: torch.Tensor, batch_size: int, device: torch.device, fn, feature_dim: int, logit_dim: int | None
) -> Features:
    """Run ``fn(batch on device) -> (features, logits or None)`` over ``images`` in batches.

    Results are gathered on the CPU as float64 numpy arrays, in input order; an empty input
    gives ``0 x feature_dim`` (and ``0 x logit_dim``) arrays.
    """
    if batch_size < 1:
        raise GenbenchError(f"batch_size must be >= 1, got {batch_size}", "pass a positive batch size")
    feats: list[np.ndarray] = []
    logits: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, images.shape[0], batch_size):
            f, lg = fn(images[start:start + batch_size].to(device))
            feats.append(f.detach().to("cpu", torch.float64).numpy())
            if lg is not None:
                logits.append(lg.detach().to("cpu", torch.float64).numpy())
    if not feats:
        return Features(np.zeros((0, feature_dim)), None if logit_dim is None else np.zeros((0, logit_dim)))
    return Features(np.concatenate(feats), np.concatenate(logits) if logits else None)
