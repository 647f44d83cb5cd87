"""The evaluation protocol: what samples are compared against, how they are scored, and the floor.

One protocol serves `genbench eval` (:mod:`genbench.evaluate`) and the in-training proxy scores
(:mod:`genbench.train.proxy`); they differ only in their numbers (reference count, KID subsets),
which are parameters here.

- Images (:class:`ImageProtocol`): features of an extractor (:mod:`genbench.metrics.extractors`);
  the reference is ``ref_n`` real images of ``ref_split`` (cached, :mod:`genbench.metrics.reference`);
  the scores are FID, KID, IS, precision/recall/density/coverage and, for stacked images, mode
  counts, and with ``memorisation`` the copy measures of :mod:`genbench.metrics.memorisation`; the
  floor is the same scores of the other split's real images against the reference.
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
from genbench.metrics.memorisation import (
    CT_CELLS,
    CT_MIN_GENERATED,
    MEMO_SAMPLES,
    NN_RATIO,
    data_copying_ct,
    memorised_fraction,
)
from genbench.metrics.modes import toy_mode_stats
from genbench.metrics.prdc import prdc
from genbench.metrics.reference import Reference, cached_scores, reference_features

FID_REFERENCE_N = 10_000      # real images in the reference of a train-split evaluation
KID_SUBSETS = 100             # random subsets KID averages over
KID_SUBSET_SIZE = 1000        # their size (clamped to the set sizes)
EXTRACTOR_METRICS = ("fid", "kid", "is", "prdc", "modes", "memorisation")   # the image metrics that need features
# the fewest samples each metric is defined for: two for a covariance or an unbiased MMD, k_dc + 1 = 6 for
# the 5th nearest neighbour, 10 for IS's splits, a C_T cell's 20 generated points
MIN_SAMPLES = {"fid": 2, "kid": 2, "is": 10, "prdc": 6, "modes": 1, "memorisation": CT_MIN_GENERATED}
MEMORISATION_INFO = {"nn_ratio_threshold": NN_RATIO, "samples_searched": MEMO_SAMPLES, "distance": "pixel L2",
                     "ct_cells": CT_CELLS, "ct_min_generated_per_cell": CT_MIN_GENERATED,
                     "ct_space": "extractor features", "ct_held_out": "even rows of the held-out split",
                     "floor": "odd rows of the held-out split"}
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
        self._memo: tuple | None = None

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
        """The chosen scores of samples ``x`` (model range, or uint8 images) against the reference."""
        images = x if x.dtype == torch.uint8 else to_uint8(x)
        ref = self.reference()
        fake = self.extractor.extract(images, batch_size=500)
        out: dict = {}
        if "modes" in metrics and isinstance(self.extractor, ChannelStacked):   # the 1000 class triples
            out.update(self.extractor.mode_stats(images))
        out.update(image_scores(metrics, ref.features, fake.features, fake.logits, kid_subsets=self.kid_subsets))
        if "memorisation" in metrics:
            out.update(self._memorisation(images, fake.features))
        return out

    def _held_split(self) -> str:
        return "test" if self.ref_split == "train" else "train"

    def _memorisation_data(self) -> tuple:
        """Training images (pixels, the whole reference split), and the held-out split's features cut
        in two halves: the even rows are C_T's held-out set, the odd rows the floor's "samples"."""
        if self._memo is None:
            from genbench.metrics.reference import real_images

            train, _ = real_images(self.data_cfg, self.ref_split, None)
            held_images, _ = real_images(self.data_cfg, self._held_split(), FID_REFERENCE_N)
            held = reference_features(self.extractor, self.data_cfg, self._held_split(), FID_REFERENCE_N).features
            self._memo = (train, held[0::2], held[1::2], held_images[1::2])
        return self._memo

    def _memorisation(self, images: Tensor, features: np.ndarray) -> dict:
        train, held_even, _, _ = self._memorisation_data()
        return {"memorised_fraction": memorised_fraction(images[:MEMO_SAMPLES], train),
                "ct": data_copying_ct(self.reference().features, held_even, features)}

    def floor(self, metrics: list[str], n: int) -> dict:
        """The same scores (but modes) of up to ``n`` real images of the other split: the best a model can do."""
        held_split = "test" if self.ref_split == "train" else "train"
        held = reference_features(self.extractor, self.data_cfg, held_split, min(n, FID_REFERENCE_N))
        chosen = sorted(m for m in metrics if m != "modes")

        def compute() -> dict:
            out = image_scores(chosen, self.reference().features, held.features, held.logits,
                               kid_subsets=self.kid_subsets)
            if "memorisation" in metrics:
                train, held_even, held_odd, odd_images = self._memorisation_data()
                out["memorised_fraction"] = memorised_fraction(odd_images[:MEMO_SAMPLES], train)
                out["ct"] = data_copying_ct(self.reference().features, held_even, held_odd)
            return out

        import genbench

        what = {"floor": 1, "genbench": genbench.__version__, "reference": self.reference().info,
                "held": held.info, "metrics": chosen, "kid_subsets": self.kid_subsets,
                "memorisation": MEMORISATION_INFO if "memorisation" in metrics else None}
        out = cached_scores(what, compute)
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

