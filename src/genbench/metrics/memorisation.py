"""Does a model reproduce its training data? Two numbers per sample set, each beside real held-out data.

- **Nearest-neighbour ratio** (pixel L2): a sample counts as a copy when its nearest training image
  is much closer than its second nearest, d1 / d2 < :data:`NN_RATIO` = 1/3 — the criterion of Yoon
  et al. 2023 ("Diffusion Probabilistic Models Generalize when They Fail to Memorize") and Gu et al.
  2023 ("On Memorization in Diffusion Models", Sec. 3). ``memorised_fraction`` is the fraction of
  samples that do; on real unseen images (the floor) it measures how often the data itself holds
  near-duplicates.
- **Data-copying test C_T** (Meehan, Chaudhuri & Dasgupta 2020, "A Non-Parametric Test to Detect
  Data-Copying in Generative Models", Sec. 4, Eq. 3): the training set T is cut into cells by k-means;
  in each cell pi, the distances to the nearest training point of the cell of held-out real points
  P_n and of generated points Q_m are compared with the Mann-Whitney U test, as the z-score
  Z_U = (U - mn/2) / sqrt(mn(m + n + 1)/12), U counting the pairs where the generated point is
  farther (ties count 1/2). C_T = sum_pi P_n(pi) Z_U(pi) / sum_pi P_n(pi) over the cells holding at
  least tau m generated points (tau = 20 / m, their choice). C_T << 0: samples sit closer to the
  training data than unseen data does (copying); >> 0: farther (underfitting); about 0: neither.
  Computed in the extractor's features; the floor is C_T of a second held-out half against the first.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import rankdata

NN_RATIO = 1 / 3          # d1 / d2 below this: a copy (Yoon et al. 2023; Gu et al. 2023)
MEMO_SAMPLES = 2000       # samples (and held-out images) searched against the training set, for time
CT_CELLS = 10             # k-means cells of the training features (Meehan et al. choose k per dataset)
CT_MIN_GENERATED = 20     # tau m: a cell needs this many generated points (Meehan et al., tau = 20 / m)
KMEANS_ITERS = 25
KMEANS_SEED = 0


def _flat(x) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.reshape(len(t), -1).float()


def two_nearest(queries, train, chunk: int = 256) -> torch.Tensor:
    """Distances (N x 2, float64) from each query row to its nearest and second-nearest train row.

    Candidates come from the fast matrix-product distances (4 nearest), their distances are then
    recomputed from the differences, so an exact duplicate has distance exactly 0."""
    q, t = _flat(queries), _flat(train)
    if len(t) < 2:
        raise ValueError(f"the nearest-neighbour ratio needs at least 2 training images, got {len(t)}")
    m = min(4, len(t))
    out = torch.empty(len(q), 2, dtype=torch.float64)
    for s in range(0, len(q), chunk):
        rows = q[s:s + chunk]
        cand = torch.cdist(rows, t, compute_mode="use_mm_for_euclid_dist").topk(m, dim=1, largest=False).indices
        exact = torch.stack([torch.linalg.vector_norm((rows - t[cand[:, j]]).double(), dim=1) for j in range(m)], 1)
        out[s:s + chunk] = exact.sort(dim=1).values[:, :2]
    return out


def memorised_fraction(queries, train, threshold: float = NN_RATIO) -> float:
    """Fraction of ``queries`` whose nearest ``train`` row is closer than ``threshold`` x the second nearest."""
    d = two_nearest(queries, train)
    ratio = d[:, 0] / d[:, 1].clamp(min=1e-12)
    return float((ratio < threshold).double().mean())


def kmeans(x: np.ndarray, k: int, seed: int = KMEANS_SEED, iters: int = KMEANS_ITERS) -> np.ndarray:
    """Centres (k x D) of Lloyd's k-means from a k-means++ start (Arthur & Vassilvitskii 2007), seeded."""
    xt = torch.as_tensor(x, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    centres = [xt[int(torch.randint(len(xt), (1,), generator=g))]]
    d2 = torch.cdist(xt, centres[0][None]).square()[:, 0]
    for _ in range(1, k):
        probs = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full_like(d2, 1 / len(d2))
        centres.append(xt[int(torch.multinomial(probs, 1, generator=g))])
        d2 = torch.minimum(d2, torch.cdist(xt, centres[-1][None]).square()[:, 0])
    c = torch.stack(centres)
    for _ in range(iters):
        labels = torch.cdist(xt, c).argmin(1)
        new = torch.stack([xt[labels == j].mean(0) if bool((labels == j).any()) else c[j] for j in range(k)])
        if torch.equal(new, c):
            break
        c = new
    return c.numpy()


def assign(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return torch.cdist(torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(centres)).argmin(1).numpy()


def mann_whitney_z(p: np.ndarray, q: np.ndarray) -> float:
    """Z_U of Meehan et al. 2020: U counts pairs (p_i, q_j) with q_j > p_i (ties 1/2), standardised
    by its null mean mn/2 and variance mn(m + n + 1)/12."""
    n, m = len(p), len(q)
    ranks = rankdata(np.concatenate([p, q]))     # average ranks for ties
    u = ranks[n:].sum() - m * (m + 1) / 2
    return float((u - m * n / 2) / np.sqrt(m * n * (m + n + 1) / 12))


def _nn_dist(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return torch.cdist(torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(ref, dtype=torch.float64)) \
        .min(1).values.numpy()


def data_copying_ct(train: np.ndarray, held: np.ndarray, generated: np.ndarray, cells: int = CT_CELLS,
                    min_generated: int = CT_MIN_GENERATED) -> float:
    """C_T of Meehan et al. 2020 (Eq. 3) for ``generated`` against ``held``-out real features, with the
    cells of ``train`` (k-means, :data:`CT_CELLS`). NaN when no cell holds enough of both."""
    centres = kmeans(train, min(cells, len(train)))
    t_lab, p_lab, q_lab = assign(train, centres), assign(held, centres), assign(generated, centres)
    num = den = 0.0
    for c in range(len(centres)):
        t, p, q = train[t_lab == c], held[p_lab == c], generated[q_lab == c]
        if len(q) < min_generated or len(p) < 1 or len(t) < 1:
            continue
        weight = len(p) / len(held)
        num += weight * mann_whitney_z(_nn_dist(p, t), _nn_dist(q, t))
        den += weight
    return num / den if den > 0 else float("nan")
