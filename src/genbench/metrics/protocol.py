"""The evaluation protocol: what samples are compared against, how they are scored, and the floor.

One protocol serves `genbench eval` (:mod:`genbench.evaluate`) and the in-training proxy scores
(:mod:`genbench.train.proxy`); they differ only in their numbers (reference count, KID subsets),
which are parameters here.

- Images (:class:`ImageProtocol`): features of an extractor (:mod:`genbench.metrics.extractors`);
  the reference is ``ref_n`` real images of ``ref_split`` (cached, :mod:`genbench.metrics.reference`);
  the scores are FID, KID, IS, precision/recall/density/coverage and, for stacked images, mode
  counts, with ``memorisation`` the copy measures of :mod:`genbench.metrics.memorisation`, and with
  ``classes``/``class_fid`` the class metrics of :mod:`genbench.metrics.classes` (the domain
  classifier's predicted classes; given the requested class of each sample, consistency and
  per-class FID); the floor is the same scores of the other split's real images against the
  reference (their true labels standing for the requested ones).
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
from genbench.errors import GenbenchError
from genbench.metrics.classes import CLASSES_INFO, class_consistency, class_fid, class_histogram
from genbench.metrics.domain import DOMAIN_DATASETS
from genbench.metrics.extractors import ChannelStacked, extractor_for_data
from genbench.metrics.features import FeatureExtractor, Features
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
CLASS_METRICS = ("classes", "class_fid")
# the image metrics that need features
EXTRACTOR_METRICS = ("fid", "kid", "is", "prdc", "modes", "memorisation", *CLASS_METRICS)
# the fewest samples each metric is defined for: two for a covariance or an unbiased MMD, k_dc + 1 = 6 for
# the 5th nearest neighbour, 10 for IS's splits, a C_T cell's 20 generated points, one for a class histogram
MIN_SAMPLES = {"fid": 2, "kid": 2, "is": 10, "prdc": 6, "modes": 1, "memorisation": CT_MIN_GENERATED,
               "classes": 1, "class_fid": 2}
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

    def check(self, metrics: list[str], labelled: bool) -> None:
        """Refuse, before any sampling, the class metrics these samples cannot have: ``classes`` without a
        classifier over the dataset's classes, ``class_fid`` without the requested class of each sample
        (``labelled``: a class-conditional model)."""
        if "classes" in metrics and not getattr(self.extractor, "num_classes", None):
            data = self.data_cfg.name
            if isinstance(self.extractor, ChannelStacked):
                raise GenbenchError("the classes metric predicts one class per image; stacked images hold three "
                                    "(their class triples are counted by the modes metric)",
                                    "use --metrics modes instead of classes")
            if data in DOMAIN_DATASETS:
                raise GenbenchError(f"the classes metric needs the domain classifier of {data}, and these samples "
                                    f"are scored with {self.extractor.name}", "drop --extractor (the domain "
                                    f"classifier is the default for {data}), or drop classes from --metrics")
            raise GenbenchError(f"there is no domain classifier for {data} (Inception's logits are ImageNet "
                                "classes, not the dataset's), so the classes metric cannot be computed",
                                f"drop classes from --metrics (domain classifiers exist for {', '.join(DOMAIN_DATASETS)})")
        if "class_fid" in metrics and not labelled:
            raise GenbenchError("class_fid compares each class's samples with that class's real images, and these "
                                "samples carry no requested class (an unconditional model)",
                                "drop class_fid from --metrics (classes gives the predicted-class histogram), or "
                                "score a class-conditional model")

    def scores(self, metrics: list[str], x: Tensor, labels: Tensor | list[int] | None = None) -> dict:
        """The chosen scores of samples ``x`` (model range, or uint8 images) against the reference;
        ``labels`` (int64 tensor or a list of ints, one per sample) is the class each sample was generated
        for, or None."""
        self.check(metrics, labels is not None)
        labels = None if labels is None else torch.as_tensor(labels)
        if labels is not None and (labels.dim() != 1 or len(labels) != len(x) or labels.is_floating_point()):
            raise GenbenchError(f"{len(x)} samples need one integer class label each, got {labels.dtype} "
                                f"{tuple(labels.shape)}", "pass labels as an int64 tensor of shape (N,)")
        images = x if x.dtype == torch.uint8 else to_uint8(x)
        ref = self.reference()
        fake = self.extractor.extract(images, batch_size=500)
        out: dict = {}
        if "modes" in metrics and isinstance(self.extractor, ChannelStacked):   # the 1000 class triples
            out.update(self.extractor.mode_stats(images))
        out.update(image_scores(metrics, ref.features, fake.features, fake.logits, kid_subsets=self.kid_subsets))
        if "memorisation" in metrics:
            out.update(self._memorisation(images, fake.features))
        out.update(self._class_scores(metrics, fake, None if labels is None else labels.cpu().numpy()))
        return out

    def _class_scores(self, metrics: list[str], feats: Features, labels: np.ndarray | None,
                      min_per_class: int = 0) -> dict:
        """``classes`` and ``class_fid`` of ``feats`` (generated for ``labels``, or None); ``min_per_class``
        leaves out of class_fid the classes with fewer samples (the floor's small classes)."""
        if not set(metrics) & set(CLASS_METRICS):
            return {}
        ref = self.reference()
        if ref.labels is None or ref.class_shares is None:
            raise GenbenchError(f"the reference images of {ref.info['dataset']} have no class labels, so the class "
                                "metrics have nothing to compare with", "drop classes and class_fid from --metrics")
        names, out = ref.class_names, {}
        if "classes" in metrics:
            if feats.logits is None or feats.logits.shape[1] != len(ref.class_shares):
                got = None if feats.logits is None else feats.logits.shape[1]
                raise GenbenchError(f"the classifier predicts {got} classes but {ref.info['dataset']} has "
                                    f"{len(ref.class_shares)}", "drop classes from --metrics")
            predicted = feats.logits.argmax(1)
            out["classes"] = class_histogram(predicted, ref.class_shares, names)
            if labels is not None:
                out["classes"].update(class_consistency(predicted, labels, names))
        if "class_fid" in metrics and labels is not None:
            keep = np.isin(labels, [c for c in np.unique(labels) if (labels == c).sum() >= min_per_class
                                    and (ref.labels == c).sum() >= min_per_class])
            if keep.any():
                out["class_fid"] = class_fid(ref.features, ref.labels, feats.features[keep], labels[keep], names)
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
        """The same scores of up to ``n`` real images of the other split: the best a model can do. For
        stacked images the modes too: real triples through the same classifier, whose mistakes and the
        finite sample set how low the KL can go."""
        held_split = "test" if self.ref_split == "train" else "train"
        held = reference_features(self.extractor, self.data_cfg, held_split, min(n, FID_REFERENCE_N))
        stacked_modes = "modes" in metrics and isinstance(self.extractor, ChannelStacked)
        chosen = sorted(m for m in metrics if m != "modes" or stacked_modes)

        def compute() -> dict:
            out = image_scores([m for m in chosen if m != "modes"], self.reference().features, held.features,
                               held.logits, kid_subsets=self.kid_subsets)
            if stacked_modes:
                from genbench.metrics.reference import real_images

                out.update(self.extractor.mode_stats(real_images(self.data_cfg, held_split, held.info["n"])[0]))
            # the held-out images' true labels stand for the requested classes: consistency is the
            # classifier's accuracy, class_fid the per-class FID of real images (classes with >= 2 each side)
            out.update(self._class_scores(chosen, Features(held.features, held.logits), held.labels, min_per_class=2))
            if "memorisation" in metrics:
                train, held_even, held_odd, odd_images = self._memorisation_data()
                out["memorised_fraction"] = memorised_fraction(odd_images[:MEMO_SAMPLES], train)
                out["ct"] = data_copying_ct(self.reference().features, held_even, held_odd)
            return out

        import genbench

        what = {"floor": 1, "genbench": genbench.__version__, "reference": self.reference().info,
                "held": held.info, "metrics": chosen, "kid_subsets": self.kid_subsets,
                "memorisation": MEMORISATION_INFO if "memorisation" in metrics else None,
                **({"classes": CLASSES_INFO} if set(metrics) & set(CLASS_METRICS) else {})}
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

    def scores(self, metrics: list[str], x: Tensor, labels: Tensor | None = None) -> dict:
        """Mode counts and/or P/R/D/C of the samples ``x`` (``labels``, for one signature with images, unused)."""
        return self._scores(metrics, x.double().numpy())

    def floor(self, metrics: list[str], n: int | None = None) -> dict:
        """The same scores of as many fresh draws from the true distribution as the reference holds."""
        held, _ = sample_toy(self.data_cfg.name, len(self.reference()), self.std,
                             torch.Generator().manual_seed(FLOOR_SEED))
        return self._scores(metrics, held.double().numpy())

