"""Mode counting for the mode-collapse benchmarks: 2-D Gaussian mixtures and Stacked MNIST.

- 2-D mixtures (ring / grid), as in VEEGAN (Srivastava et al. 2017, Sec. 5.1) and PacGAN
  (Lin et al. 2018, Sec. 4.1): each sample belongs to its nearest mode and is "high quality"
  if within n_std standard deviations of it; a mode is captured when it receives high-quality
  samples; the reverse KL compares the high-quality samples' mode histogram with the uniform
  distribution over modes.
- Stacked MNIST (Metz et al. 2017, "Unrolled GANs", Sec. 3.3.2; also VEEGAN and PacGAN): three
  digits classified per image give one of 10³ modes; count the distinct ones and the KL of
  their histogram to uniform.

All KLs are in nats; empty bins contribute 0 (q log q -> 0 as q -> 0).
"""

from __future__ import annotations

import numpy as np
import torch


def _as_numpy(x, name: str, shape_tail: tuple[int, ...], dtype: type | None) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 1 + len(shape_tail) or x.shape[1:] != shape_tail or len(x) == 0:
        raise ValueError(f"{name} must have shape (N>0, {', '.join(map(str, shape_tail))}), got {x.shape}")
    return x if dtype is None else x.astype(dtype, copy=False)


def kl_to_uniform(counts: np.ndarray) -> float:
    """KL(q || uniform) in nats for the histogram ``counts`` over len(counts) bins."""
    q = counts[counts > 0] / counts.sum()
    return float(np.sum(q * np.log(q * len(counts))))


def toy_mode_stats(samples, centers, std: float, n_std: float = 3.0, min_count: int = 1) -> dict:
    """Mode statistics of N×2 samples against K×2 mixture centres with component std ``std``.

    Returns
    - ``modes``: number of modes with at least ``min_count`` high-quality samples (of ``modes_total``). The default 1
      is the rule of VEEGAN and PacGAN (a mode is lost when no sample lands within 3 std of it);
      a larger value makes the count ignore a few stray samples.
    - ``hq_fraction``: fraction of samples within n_std·std of their nearest centre.
    - ``reverse_kl``: KL(q || p) in nats, q the mode histogram of the high-quality samples, p
      uniform over the K modes (PacGAN's "reverse KL"); NaN when there is no high-quality sample,
      since q is then undefined.
    """
    x = _as_numpy(samples, "samples", (2,), np.float64)
    c = _as_numpy(centers, "centers", (2,), np.float64)
    if not std > 0 or not n_std > 0:
        raise ValueError(f"std and n_std must be positive, got std={std}, n_std={n_std}")
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")

    dist = np.linalg.norm(x[:, None, :] - c[None, :, :], axis=2)  # N×K
    nearest = dist.argmin(axis=1)
    hq = dist[np.arange(len(x)), nearest] <= n_std * std
    counts = np.bincount(nearest[hq], minlength=len(c))
    return {
        "modes": int((counts >= min_count).sum()),
        "modes_total": len(c),
        "hq_fraction": float(hq.mean()),
        "reverse_kl": kl_to_uniform(counts) if hq.any() else float("nan"),
    }


def stacked_mode_stats(labels, n_classes: int = 10) -> dict:
    """Mode statistics of N×3 predicted digit labels (Stacked MNIST): a mode is a label triple,
    n_classes³ in all (``modes_total``). ``modes`` = distinct triples seen; ``kl`` = KL(q || uniform) in nats."""
    raw = _as_numpy(labels, "labels", (3,), None)
    if not np.issubdtype(raw.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {raw.dtype}")
    lab = raw.astype(np.int64)
    if lab.min() < 0 or lab.max() >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes - 1}], got range [{lab.min()}, {lab.max()}]")
    mode = (lab[:, 0] * n_classes + lab[:, 1]) * n_classes + lab[:, 2]
    counts = np.bincount(mode, minlength=n_classes**3)
    return {"modes": int((counts > 0).sum()), "modes_total": n_classes**3, "kl": kl_to_uniform(counts)}
