"""The memorisation measures: nearest/second-nearest ratio and Meehan et al.'s data-copying C_T."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import mannwhitneyu

from genbench.metrics.memorisation import (
    NN_RATIO,
    data_copying_ct,
    kmeans,
    mann_whitney_z,
    memorised_fraction,
    two_nearest,
)


def test_two_nearest_is_exact_for_duplicates_and_sorted():
    g = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (50, 1, 6, 6), generator=g, dtype=torch.uint8)
    d = two_nearest(train[:10], train)
    assert torch.equal(d[:, 0], torch.zeros(10, dtype=torch.float64))   # each query is in the set
    brute = torch.cdist(train[:10].flatten(1).double(), train.flatten(1).double()).sort(1).values[:, :2]
    assert torch.allclose(d, brute, atol=1e-9)


def test_copies_count_and_fresh_samples_do_not():
    g = torch.Generator().manual_seed(1)
    train = torch.randint(0, 256, (200, 1, 8, 8), generator=g, dtype=torch.uint8)
    fresh = torch.randint(0, 256, (40, 1, 8, 8), generator=g, dtype=torch.uint8)
    assert memorised_fraction(train[:40], train) == 1.0
    assert memorised_fraction(fresh, train) == 0.0
    # a half-way blend of two training images is as close to both: ratio 1, not a copy
    blend = ((train[:20].int() + train[20:40].int()) // 2).to(torch.uint8)
    assert memorised_fraction(blend, train, NN_RATIO) == 0.0


def test_mann_whitney_z_matches_scipy_u():
    rng = np.random.default_rng(0)
    p, q = rng.normal(size=70), rng.normal(0.3, 1, size=50)
    q[:5] = p[:5]   # ties count 1/2
    n, m = len(p), len(q)
    u = mannwhitneyu(q, p).statistic   # pairs with q > p, ties 1/2
    assert mann_whitney_z(p, q) == pytest.approx((u - n * m / 2) / np.sqrt(n * m * (n + m + 1) / 12), rel=1e-12)
    assert mann_whitney_z(p, p - 10) < -8 < 8 < mann_whitney_z(p, p + 10)


def test_kmeans_is_seeded_and_finds_separated_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = np.concatenate([c + rng.normal(scale=0.5, size=(100, 2)) for c in centres])
    a, b = kmeans(x, 3), kmeans(x, 3)
    assert np.array_equal(a, b)
    assert np.abs(np.sort(a[:, 0] + 3 * a[:, 1]) - np.sort(centres[:, 0] + 3 * centres[:, 1])).max() < 0.5


def test_data_copying_ct_separates_copies_fresh_draws_and_underfit():
    """Meehan et al. 2020's three regimes on a Gaussian: copies << 0, fresh draws ~ 0, too spread >> 0."""
    rng = np.random.default_rng(0)
    train = rng.normal(size=(2000, 4))
    held = rng.normal(size=(1000, 4))
    copies = train[:1000] + rng.normal(scale=0.01, size=(1000, 4))
    fresh = rng.normal(size=(1000, 4))
    spread = rng.normal(scale=1.5, size=(1000, 4))
    assert data_copying_ct(train, held, copies) < -10
    assert abs(data_copying_ct(train, held, fresh)) < 3
    assert data_copying_ct(train, held, spread) > 3
    # no cell with enough generated points: not defined
    assert np.isnan(data_copying_ct(train, held, fresh[:5]))


def test_the_report_names_copying_among_the_cons():
    from genbench.report.verdicts import COPY_EXCESS, CT_COPYING, derive

    values = {"copier": {"memorised_fraction": (0.2, None), "ct": (-12.0, None), "recall": (0.9, None)},
              "honest": {"memorised_fraction": (0.001, None), "ct": (0.4, None), "recall": (0.9, None)}}
    v = derive(values, {"memorised_fraction": 0.0, "ct": 0.1})
    cons = [c.text for c in v.cons["copier"]]
    assert any("copies training images: 20.0%" in c for c in cons) and any("C_T -12.00" in c for c in cons)
    assert not v.cons["honest"] and COPY_EXCESS > 0 > CT_COPYING
