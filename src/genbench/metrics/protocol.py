"""The evaluation protocol: what samples are compared against, how they are scored, and the floor.

One protocol serves `genbench eval` (:mod:`genbench.evaluate`) and the in-training proxy scores
(:mod:`genbench.train.proxy`); they differ only in their numbers (reference count, KID subsets),
which are parameters here.

- Images (:class:`ImageProtocol`): features of an extractor (:mod:`genbench.metrics.extractors`);
  the reference is ``ref_n`` real images of ``ref_split`` (cached, :mod:`genbench.metrics.reference`);
  the scores are FID, KID, IS, precision/recall/density/coverage and, for stacked images, mode
  counts; the floor is the same scores of the other split's real images against the reference.
- 2-D points (:class:`PointProtocol`): the reference is the fixed training set of the toy data; the
  scores are mode counts and precision/recall/density/coverage; the floor scores fresh draws from
  the true distribution.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from genbench.config import DataConfig
from genbench.data.toy2d import default_std, fixed_toy_set, mode_centers, sample_toy
from genbench.data.transforms import to_uint8
from genbench.metrics.extractors import ChannelStacked, extractor_for_data
from genbench.metrics.features import FeatureExtractor
from genbench.metrics.fid import fid_from_features, inception_score, kid
from genbench.metrics.modes import toy_mode_stats
from genbench.metrics.prdc import prdc
from genbench.metrics.reference import Reference, reference_features

FID_REFERENCE_N = 10_000      # real images in the reference of a train-split evaluation
KID_SUBSETS = 100             # random subsets KID averages over
KID_SUBSET_SIZE = 1000        # their size (clamped to the set sizes)
EXTRACTOR_METRICS = ("fid", "kid", "is", "prdc", "modes")   # the image metrics that need features
FLOOR_SEED = 12345            # the held-out draw of a 2-D set's floor


def image_scores(metrics: list[str], real: np.ndarray, fake: np.ndarray, fake_logits: np.ndarray | None,
                 kid_subset: int = KID_SUBSET_SIZE, kid_subsets: int = KID_SUBSETS) -> dict:
    """The chosen feature scores of ``fake`` against ``real`` (FID, KID, IS, P/R/D/C)."""
    out: dict = {}
    if "fid" in metrics:
        out["fid"] = fid_from_features(real, fake)
    if "kid" in metrics:
        size = min(kid_subset, len(real), len(fake))
        out["kid"], out["kid_std"] = kid(real, fake, subsets=kid_subsets, subset_size=size)
        out["kid_subset_size"] = size
    if "is" in metrics and fake_logits is not None:
        out["is"], out["is_std"] = inception_score(fake_logits, splits=10)
    if "prdc" in metrics:
        out.update(prdc(real, fake, k_pr=3, k_dc=5))
    return out


class ImageProtocol:
    """Images scored in the features of ``extractor`` against ``ref_n`` real images of ``ref_split``
    (None: the whole split); the reference is computed (or read from the cache) on first use."""

    def __init__(self, data_cfg: DataConfig, extractor: FeatureExtractor, ref_split: str = "train",
                 ref_n: int | None = FID_REFERENCE_N, kid_subsets: int = KID_SUBSETS):
        self.data_cfg, self.extractor = data_cfg, extractor
        self.ref_split, self.ref_n, self.kid_subsets = ref_split, ref_n, kid_subsets
        self._reference: Reference | None = None

    @classmethod
    def for_data(cls, data_cfg: DataConfig, device, extractor_kind: str | None = None,
                 inception_weights: str | None = None, **kwargs) -> ImageProtocol:
        """The protocol with the dataset's extractor (:func:`~genbench.metrics.extractors.extractor_for_data`)."""
        return cls(data_cfg, extractor_for_data(data_cfg.name, extractor_kind, inception_weights, device=str(device)),
                   **kwargs)

    @property
    def tag(self) -> str:
        """What the samples are compared in, for file names: the extractor's name."""
        return self.extractor.name

    @property
    def extractor_info(self) -> dict:
        return {"name": self.extractor.name, "weights_sha256": self.extractor.weights_sha256}

    def reference(self) -> Reference:
        """The real features samples are compared with (computed, or read from the cache, once)."""
        if self._reference is None:
            self._reference = reference_features(self.extractor, self.data_cfg, self.ref_split, self.ref_n)
        return self._reference

    @property
    def reference_info(self) -> dict:
        return self.reference().info

    def scores(self, metrics: list[str], x: Tensor) -> dict:
        """The chosen scores of samples ``x`` (model range) against the reference."""
        images = to_uint8(x)
        ref = self.reference()
        fake = self.extractor.extract(images, batch_size=500)
        out: dict = {}
        if "modes" in metrics and isinstance(self.extractor, ChannelStacked):   # the 1000 class triples
            out.update(self.extractor.mode_stats(images))
        out.update(image_scores(metrics, ref.features, fake.features, fake.logits, kid_subsets=self.kid_subsets))
        return out

    def floor(self, metrics: list[str], n: int) -> dict:
        """The same scores (but modes) of up to ``n`` real images of the other split: the best a model can do."""
        held_split = "test" if self.ref_split == "train" else "train"
        held = reference_features(self.extractor, self.data_cfg, held_split, min(n, FID_REFERENCE_N))
        out = image_scores([m for m in metrics if m != "modes"], self.reference().features, held.features,
                           held.logits, kid_subsets=self.kid_subsets)
        out["split"] = held_split
        out["n"] = held.info["n"]
        return out


class PointProtocol:
    """2-D points scored against ``ref_n`` points of the fixed training set (None: all of it)."""

    tag = "points"
    extractor_info = None

    def __init__(self, data_cfg: DataConfig, ref_n: int | None = None):
        self.data_cfg = data_cfg
        self.ref_n = data_cfg.n_points if ref_n is None else ref_n
        self.std = data_cfg.std or default_std(data_cfg.name)
        self._reference: np.ndarray | None = None

    def reference(self) -> np.ndarray:
        """The first ``ref_n`` points of the fixed training set, float64."""
        if self._reference is None:
            real = fixed_toy_set(self.data_cfg.name, self.ref_n, self.std)
            self._reference = (real[0] if isinstance(real, tuple) else real).double().numpy()
        return self._reference

    @property
    def reference_info(self) -> dict:
        return {"dataset": self.data_cfg.name, "split": "train", "n": len(self.reference()), "std": self.std}

    def _scores(self, metrics: list[str], points: np.ndarray) -> dict:
        out: dict = {}
        if "modes" in metrics:
            out.update(toy_mode_stats(points, mode_centers(self.data_cfg.name).numpy(), self.std))
        if "prdc" in metrics:
            out.update(prdc(self.reference(), points))
        return out

    def scores(self, metrics: list[str], x: Tensor) -> dict:
        """Mode counts and/or P/R/D/C of the samples ``x``."""
        return self._scores(metrics, x.double().numpy())

    def floor(self, metrics: list[str], n: int | None = None) -> dict:
        """The same scores of as many fresh draws from the true distribution as the reference holds."""
        held, _ = sample_toy(self.data_cfg.name, len(self.reference()), self.std,
                             torch.Generator().manual_seed(FLOOR_SEED))
        return self._scores(metrics, held.double().numpy())

