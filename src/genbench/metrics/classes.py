"""Class metrics of generated images: which classes a domain classifier sees, and per-class FID.

- ``class_histogram``: the share of samples the classifier assigns to each class, beside the real
  data's class distribution p (the label shares of the reference split: 0.1 each for Fashion-MNIST's
  train split; all on one class for ``data.classes=[bag]``). ``kl`` is KL(q || p) in nats, q the
  samples' histogram: the reverse KL of PacGAN (Lin et al. 2018, Sec. 4) and of
  :mod:`genbench.metrics.modes`, with p the real class shares instead of uniform modes (the
  class-histogram check of mode collapse, e.g. Salimans et al. 2016 for Inception-Score classes).
  Classes absent from the reference (p = 0) would make it infinite: their share is reported as
  ``outside`` and q is renormalised over the reference's classes before the KL. A class is
  *covered* when it holds at least :data:`COVERED_RATIO` of its reference share.
- ``class_consistency``: with the class each sample was asked for (conditional generation), the
  share the classifier assigns to that class, overall and per requested class (the
  "classification accuracy score" direction of Ravuri & Vinyals 2019, with the classifier fixed).
- ``class_fid``: per requested class, FID (Heusel et al. 2017) of that class's samples against the
  reference features of that class's real images, and the mean over the classes (the intra-class
  FID of Miyato & Koyama 2018, Sec. 5.1).

Pure functions of predicted labels, labels and feature arrays.
"""

from __future__ import annotations

import numpy as np

from genbench.errors import GenbenchError
from genbench.metrics.fid import fid_from_features

COVERED_RATIO = 0.1   # a class is covered with >= 10% of its reference share (1% of samples for 10 equal classes)
CLASSES_INFO = {"kl": "KL(q || p) in nats, q the samples' predicted-class shares renormalised over the reference's "
                      "classes, p the reference split's label shares",
                "covered": f"classes of the reference holding >= {COVERED_RATIO} x their reference share",
                "outside": "share of samples predicted in a class the reference does not hold",
                "consistency": "share of samples predicted as the class they were generated for"}


def _ints(x, name: str) -> np.ndarray:
    a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
    if a.ndim != 1 or not (np.issubdtype(a.dtype, np.integer) or a.size == 0):
        raise ValueError(f"{name} must be a 1-D array of integers, got dtype {a.dtype} shape {a.shape}")
    return a.astype(np.int64)


def _name(names: list[str] | None, c: int) -> str:
    return names[c] if names and 0 <= c < len(names) else str(c)


def class_shares(labels, num_classes: int) -> np.ndarray:
    """Shares of each of ``num_classes`` classes among integer ``labels`` (sums to 1)."""
    lab = _ints(labels, "labels")
    if len(lab) == 0:
        raise ValueError("no labels to count")
    if lab.min() < 0 or lab.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes - 1}], got [{lab.min()}, {lab.max()}]")
    return np.bincount(lab, minlength=num_classes) / len(lab)


def class_histogram(predicted, reference, names: list[str] | None = None) -> dict:
    """Predicted-class shares of the samples against the reference class distribution ``reference``
    (K shares summing to 1; K = the classifier's classes). Returns ``fractions`` and ``reference``
    (lists in class order), ``names``, ``kl``, ``outside``, ``covered`` of ``reference_classes``."""
    p = np.asarray(reference, dtype=np.float64)
    if p.ndim != 1 or len(p) == 0 or (p < 0).any() or not np.isclose(p.sum(), 1.0):
        raise ValueError(f"reference must be class shares summing to 1, got {p}")
    pred = _ints(predicted, "predicted")
    q = class_shares(pred, len(p))
    held = p > 0
    outside = float(q[~held].sum())
    kl = None
    if outside < 1.0:
        qh, ph = q[held] / q[held].sum(), p[held]
        nz = qh > 0
        kl = float(np.sum(qh[nz] * np.log(qh[nz] / ph[nz])))   # empty bins add 0 (q log q -> 0)
    return {"names": [_name(names, c) for c in range(len(p))], "fractions": q.tolist(), "reference": p.tolist(),
            "kl": kl, "outside": outside, "covered": int((held & (q >= COVERED_RATIO * p)).sum()),
            "reference_classes": int(held.sum()), "covered_ratio": COVERED_RATIO, "n": len(pred)}


def class_consistency(predicted, requested, names: list[str] | None = None) -> dict:
    """The share of samples predicted as the class they were generated for: ``consistency`` overall and
    ``consistency_per_class`` (by class name, for each requested class)."""
    pred, req = _ints(predicted, "predicted"), _ints(requested, "requested labels")
    if len(pred) != len(req) or len(pred) == 0:
        raise ValueError(f"{len(pred)} predictions but {len(req)} requested labels")
    hit = pred == req
    return {"consistency": float(hit.mean()),
            "consistency_per_class": {_name(names, int(c)): float(hit[req == c].mean()) for c in np.unique(req)}}


def class_fid(real, real_labels, fake, fake_labels, names: list[str] | None = None) -> dict:
    """Per requested class c, FID of ``fake[fake_labels == c]`` against ``real[real_labels == c]``
    (``per_class``, by class name), their ``mean``, and the counts on each side (``samples``, ``reference``).
    A class with fewer than 2 samples or real images (no covariance) is refused."""
    rl, fl = _ints(real_labels, "reference labels"), _ints(fake_labels, "requested labels")
    if len(rl) != len(real) or len(fl) != len(fake):
        raise ValueError(f"labels ({len(rl)}, {len(fl)}) do not match the features ({len(real)}, {len(fake)})")
    per_class, samples, reference = {}, {}, {}
    for c in np.unique(fl):
        name = _name(names, int(c))
        n_fake, n_real = int((fl == c).sum()), int((rl == c).sum())
        if n_fake < 2 or n_real < 2:
            raise GenbenchError(f"class_fid: class {name} has {n_fake} samples and {n_real} reference images; "
                                "a covariance needs at least 2 of each",
                                "generate more samples per class, or drop class_fid from --metrics")
        per_class[name] = fid_from_features(real[rl == c], fake[fl == c])
        samples[name], reference[name] = n_fake, n_real
    return {"per_class": per_class, "mean": float(np.mean(list(per_class.values()))), "samples": samples,
            "reference": reference}


def summary(key: str, value: dict) -> str:
    """A short terminal line for a ``classes`` or ``class_fid`` record (the full record is in the JSON)."""
    if key == "classes":
        kl = "-" if value.get("kl") is None else f"{value['kl']:.3g}"
        text = f"classes: KL {kl}, covered {value.get('covered')}/{value.get('reference_classes')}"
        return text + (f", consistency {value['consistency']:.3f}" if "consistency" in value else "")
    if key == "class_fid":
        return f"class_fid: mean {value.get('mean', float('nan')):.4g} over {len(value.get('per_class') or {})} classes"
    return f"{key}: {value}"
