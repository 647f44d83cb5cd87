"""Precision, recall, density and coverage of generated features against real ones.

Each set X (real, N samples) and Y (fake, M samples) defines a manifold estimate: the union of
balls B(x, NND_k(x)) around its points, NND_k(x) being the distance from x to its k-th nearest
neighbour in the same set, the point itself excluded.

- Precision / recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for
  Assessing Generative Models", Eq. 1-2, Sec. 2.1, k = 3): precision is the fraction of FAKE
  samples inside the real manifold, recall the fraction of REAL samples inside the fake one.
- Density / coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for
  Generative Models", Eq. 3-4, k = 5), using only the real balls:
      density  = 1/(kM) Σ_j Σ_i 1[Y_j ∈ B(X_i, NND_k(X_i))]   (can exceed 1)
      coverage = 1/N Σ_i 1[∃ j: Y_j ∈ B(X_i, NND_k(X_i))]

"Inside" means distance <= radius, as in Eq. 1 of Kynkäänniemi et al., and ties are honoured
exactly: distances come from torch.cdist's fast matrix-product form, one block of rows at a
time (memory O(chunk · max(N, M))), but that form rounds differently for (a, b) and (b, a) and
for different block shapes. So every radius, and every comparison closer than the rounding
bound, is recomputed from the coordinates by one symmetric formula. Without this a real set
compared with itself would lose neighbours sitting exactly on a radius.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _as_tensor(x, name: str, dtype: torch.dtype, device: torch.device | None) -> Tensor:
    t = x.detach() if isinstance(x, Tensor) else torch.as_tensor(x)
    if t.ndim != 2:
        raise ValueError(f"{name} must be N×D, got shape {tuple(t.shape)}")
    return t.to(device=device if device is not None else t.device, dtype=dtype)


def _fast_sq_dist(a: Tensor, b: Tensor) -> Tensor:
    # ||a||² + ||b||² - 2 a·b through a GEMM: what makes 10k×10k×2048 feasible on CPU
    return torch.cdist(a, b, compute_mode="use_mm_for_euclid_dist").square()


def _pair_dist(a: Tensor, b: Tensor) -> Tensor:
    """Distances between matching rows of a and b, from the differences: symmetric in (a, b)
    bit for bit, and the same whichever block the pair comes from."""
    return torch.linalg.vector_norm(a - b, dim=-1)


def _rounding_bound(a: Tensor, b: Tensor) -> float:
    """Bound on the rounding error of _fast_sq_dist over all pairs of rows of a and b: dot
    products and norms carry at most about (D + 2) unit roundoffs times ||a||² + ||b||² (the
    standard inner-product error bound), taken at the largest norms so it is one number."""
    eps = torch.finfo(a.dtype).eps
    return 2.0 * (a.shape[1] + 2) * eps * float(a.square().sum(dim=1).max() + b.square().sum(dim=1).max())


def knn_radii(x: Tensor, ks: Sequence[int], chunk: int = 2048) -> list[Tensor]:
    """For each k in ks, the distance from every row of x to its k-th nearest other row.

    Candidates come from the fast distances (max(ks) + 3 nearest, a margin against rounding); their
    exact distances are sorted, and entry k is taken: entry 0 is the point itself (distance
    exactly 0), and a duplicate of the point, also at 0, gives the same values.
    """
    n = len(x)
    for k in ks:
        if not 1 <= k < n:
            raise ValueError(f"k-th nearest neighbour needs 1 <= k < number of samples; got k={k}, n={n}")
    m = min(max(ks) + 3, n)
    out = [torch.empty(n, dtype=x.dtype, device=x.device) for _ in ks]
    for s in range(0, n, chunk):
        rows = x[s:s + chunk]
        cand = _fast_sq_dist(rows, x).topk(m, dim=1, largest=False).indices
        # one candidate column at a time keeps memory at chunk × D
        exact = torch.stack([_pair_dist(rows, x[cand[:, t]]) for t in range(m)], dim=1).sort(dim=1).values
        for radii, k in zip(out, ks, strict=True):
            radii[s:s + chunk] = exact[:, k]
    return out


def _within(sq_dist: Tensor, bound: float, radius: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """dist(rows[i], cols[j]) <= radius for a block of fast squared distances; radius is a row
    (1, C) or a column (R, 1). Comparisons within the rounding bound are redone exactly."""
    r2 = radius.square()
    inside = sq_dist <= r2 + bound  # inside, or too close to the radius to tell
    i, j = (inside ^ (sq_dist <= r2 - bound)).nonzero(as_tuple=True)  # the too-close ones
    if len(i):
        inside[i, j] = _pair_dist(rows[i], cols[j]) <= radius.expand_as(sq_dist)[i, j]
    return inside


def prdc(real, fake, k_pr: int = 3, k_dc: int = 5, chunk: int = 2048, dtype: torch.dtype = torch.float64,
         device: torch.device | str | None = None) -> dict:
    """Precision, recall (k = k_pr) and density, coverage (k = k_dc) of fake against real.

    real: N×D, fake: M×D, numpy arrays or torch tensors. Computed in ``dtype`` (float64 by
    default) on ``device`` (by default the tensors' own device; CPU for numpy input).
    Returns plain floats under the keys precision, recall, density, coverage.
    """
    dev = torch.device(device) if device is not None else None
    x = _as_tensor(real, "real", dtype, dev)
    y = _as_tensor(fake, "fake", dtype, dev).to(x.device)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: real {x.shape[1]}, fake {y.shape[1]}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    # distances do not change under a shift, but the fast form's rounding grows with the norms
    center = x.mean(dim=0)
    x, y = x - center, y - center

    r_real_pr, r_real_dc = knn_radii(x, (k_pr, k_dc), chunk)
    (r_fake_pr,) = knn_radii(y, (k_pr,), chunk)

    # One pass over fake-vs-real blocks (fake rows j, real columns i) serves all four metrics:
    # "is Y_j in some real ball" (precision, density), "is X_i in Y_j's ball" (recall) and
    # "does X_i's ball hold some Y_j" (coverage).
    bound = _rounding_bound(y, x)
    precise = 0
    density_hits = 0
    recalled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    covered = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for s in range(0, len(y), chunk):
        rows = y[s:s + chunk]
        d2 = _fast_sq_dist(rows, x)
        precise += int(_within(d2, bound, r_real_pr[None, :], rows, x).any(dim=1).sum())
        in_dc = _within(d2, bound, r_real_dc[None, :], rows, x)
        density_hits += int(in_dc.sum())
        covered |= in_dc.any(dim=0)
        recalled |= _within(d2, bound, r_fake_pr[s:s + chunk, None], rows, x).any(dim=0)

    n, m = len(x), len(y)
    return {
        "precision": precise / m,
        "recall": float(recalled.sum()) / n,
        "density": density_hits / (k_dc * m),
        "coverage": float(covered.sum()) / n,
    }
