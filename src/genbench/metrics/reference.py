"""Reference features of real data, cached on disk per (dataset, split, count, extractor).

The cache key holds the dataset's content fingerprint and the extractor's name and weights
hash, so a changed dataset file or extractor can never be served stale statistics. The real-data
floor's scores (:func:`cached_scores`) are kept beside them, keyed by everything they depend on.
The reference's class labels (for the class metrics, :mod:`genbench.metrics.classes`) are not
cached: they come from the dataset read to fingerprint it (the fingerprint covers the labels), so
the cache files and their keys are those of before, and a cache can never give stale labels.
Location: ``$GENBENCH_CACHE/refstats`` or ``~/.cache/genbench/refstats``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genbench.config import DataConfig
from genbench.files import atomic_savez
from genbench.limits import NPZ_FILE_BYTES, check_file


@dataclass
class Reference:
    features: np.ndarray          # N×D float64
    logits: np.ndarray | None
    info: dict                    # dataset, split, classes, n, fingerprint, verified_official, extractor
    labels: np.ndarray | None = None         # N int64 labels of the reference images (None: unlabelled data)
    class_counts: np.ndarray | None = None   # images per class in the whole split (after data.classes)
    class_names: list[str] | None = None

    @property
    def class_shares(self) -> np.ndarray | None:
        """The split's class distribution (0.1 each for Fashion-MNIST's train split), or None."""
        return None if self.class_counts is None else self.class_counts / self.class_counts.sum()


def cache_dir() -> Path:
    root = os.environ.get("GENBENCH_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "genbench") / "refstats"


def _read_cache(path: Path, n: int) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The cached features (and logits) of ``n`` images, or None when the cache file is damaged:
    it is then computed again (and rewritten), with a note on stderr."""
    try:
        check_file(path, NPZ_FILE_BYTES, "reference-feature cache", "")   # refused: rebuilt below
        with np.load(path, allow_pickle=False) as z:
            features = z["features"]
            logits = z["logits"] if "logits" in z.files else None
        ok = (features.ndim == 2 and len(features) == n and features.dtype.kind == "f"
              and (logits is None or (logits.ndim == 2 and len(logits) == n and logits.dtype.kind == "f")))
        problem = "" if ok else f"features of shape {features.shape}, expected {n} rows of floats"
    except Exception as err:   # any damage (truncated zip, not an npz, missing array): rebuild the cache
        problem = f"{type(err).__name__}: {' '.join(str(err).split())[:100]}"
    if problem:
        print(f"genbench: note: the reference-feature cache {path} is damaged ({problem}); computing it again",
              file=sys.stderr, flush=True)
        return None
    return features.astype(np.float64), None if logits is None else logits.astype(np.float64)


def real_items(data_cfg: DataConfig, split: str, n: int | None, seed: int = 0):
    """Up to n images of a split (a fixed random subset when the split is larger), their labels (None
    for unlabelled data) and the dataset."""
    from genbench.data import load_dataset

    data = load_dataset(data_cfg.model_copy(update={"split": split, "limit": None}))
    idx = torch.arange(len(data))
    if n is not None and n < len(data):
        idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return data.x[idx], None if data.y is None else data.y[idx], data


def real_images(data_cfg: DataConfig, split: str, n: int | None, seed: int = 0):
    """Up to n images of a split (:func:`real_items`) and the dataset."""
    images, _, data = real_items(data_cfg, split, n, seed)
    return images, data


def _class_fields(labels, data) -> dict:
    """The reference's labels, its split's class counts and the class names (nothing for unlabelled data)."""
    if labels is None or data.kind != "image":
        return {}
    counts = torch.bincount(data.y, minlength=len(data.class_names or ())).numpy()
    return {"labels": labels.numpy().astype(np.int64), "class_counts": counts,
            "class_names": list(data.class_names) if data.class_names else None}


def reference_features(extractor, data_cfg: DataConfig, split: str, n: int | None, batch_size: int = 500,
                       use_cache: bool = True) -> Reference:
    images, labels, data = real_items(data_cfg, split, n)
    classes = _class_fields(labels, data)
    info = {"dataset": data.name, "split": split, "classes": data_cfg.classes, "n": len(images),
            "fingerprint": data.fingerprint, "verified_official": bool(data.verified),
            "extractor": extractor.name, "extractor_sha256": extractor.weights_sha256}
    key = hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()[:24]
    path = cache_dir() / f"{data.name}-{split}-{len(images)}-{key}.npz"
    if use_cache and path.is_file():
        cached = _read_cache(path, len(images))
        if cached is not None:
            return Reference(*cached, info, **classes)
    feats = extractor.extract(images, batch_size=batch_size)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"features": feats.features.astype(np.float32)}
        if feats.logits is not None:
            arrays["logits"] = feats.logits.astype(np.float32)
        atomic_savez(path, **arrays)
        # round-trip through float32 so a cached and a fresh reference give the same numbers
        feats.features = feats.features.astype(np.float32).astype(np.float64)
        if feats.logits is not None:
            feats.logits = feats.logits.astype(np.float32).astype(np.float64)
    return Reference(feats.features, feats.logits, info, **classes)


def cached_scores(what: dict, compute) -> dict:
    """``compute()``, a dict of scores, kept on disk under a hash of ``what`` (the reference and held-out
    sets' info, the metrics and their parameters, the genbench version): the floor is a pure function
    of these, and recomputing it (a second 10k x 10k P/R/D/C) would double the time of every evaluation.
    A damaged or foreign cache file is computed again and rewritten."""
    from genbench.files import write_json
    from genbench.limits import JSON_FILE_BYTES

    what = json.loads(json.dumps(what, sort_keys=True, default=str))
    key = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:24]
    path = cache_dir() / f"floor-{key}.json"
    if path.is_file():
        try:
            check_file(path, JSON_FILE_BYTES, "floor cache", "")
            data = json.loads(path.read_text())
            if data.get("what") == what and isinstance(data.get("scores"), dict):
                return data["scores"]
        except Exception:   # any damage: computed again below
            pass
    scores = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"what": what, "scores": scores})
    return scores
