"""Metric mathematics: closed forms, constructed sets with known answers, brute-force references,
and agreement with torch-fidelity's own FID / KID / IS computations on the same features."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from genbench.metrics import (
    feature_stats,
    fid_from_features,
    frechet_distance,
    inception_score,
    kid,
    prdc,
    stacked_mode_stats,
    toy_mode_stats,
)

# ---------------------------------------------------------------------------------------- FID


def _gaussian_params(rng: np.random.Generator, d: int):
    """Two Gaussians with commuting covariances: same eigenvectors, different eigenvalues."""
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a, b = rng.uniform(0.2, 3.0, d), rng.uniform(0.2, 3.0, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    # commuting: Tr (S1 S2)^{1/2} = Σ sqrt(a_i b_i), so the trace term is Σ (sqrt a_i - sqrt b_i)²
    expected = float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    return mu1, s1, mu2, s2, expected


def test_frechet_distance_closed_form_diagonal_and_commuting():
    rng = np.random.default_rng(0)
    d = 6
    a, b = rng.uniform(0.2, 3.0, d), rng.uniform(0.2, 3.0, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=0, abs=1e-8)

    mu1, s1, mu2, s2, expected = _gaussian_params(rng, 8)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=0, abs=1e-8)


def test_frechet_distance_closed_form_non_commuting_2x2():
    # for a 2×2 matrix M with positive eigenvalues, Tr sqrt(M) = sqrt(Tr M + 2 sqrt(det M))
    s1 = np.array([[2.0, 0.7], [0.7, 1.0]])
    s2 = np.array([[0.5, -0.2], [-0.2, 1.5]])
    m = s1 @ s2
    assert not np.allclose(m, m.T)  # the two covariances really do not commute
    tr_sqrt = math.sqrt(np.trace(m) + 2 * math.sqrt(np.linalg.det(m)))
    mu1, mu2 = np.array([1.0, -2.0]), np.array([0.5, 0.5])
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=0, abs=1e-8)


def test_fid_of_gaussian_samples_matches_closed_form():
    rng = np.random.default_rng(1)
    mu1, s1, mu2, s2, expected = _gaussian_params(rng, 3)
    n = 200_000
    x = rng.multivariate_normal(mu1, s1, size=n)
    y = rng.multivariate_normal(mu2, s2, size=n)
    # The plug-in estimate's sampling std here is ≈ 0.02 (mean term 2·sqrt(Δμᵀ(S1+S2)Δμ / N) ≈ 0.013,
    # plus the covariance term); over 10 other seeds the error stayed below 0.07. Tolerance: 0.1 on ≈ 2.45.
    assert expected == pytest.approx(2.45, abs=0.01)
    assert fid_from_features(x, y) == pytest.approx(expected, abs=0.1)


def test_feature_stats_unbiased_and_accepts_torch():
    x = np.random.default_rng(2).normal(size=(50, 4))
    mu, sigma = feature_stats(torch.from_numpy(x).float())
    assert mu.dtype == np.float64 and sigma.shape == (4, 4)
    c = x.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(sigma, (c - c.mean(0)).T @ (c - c.mean(0)) / 49, rtol=1e-12)


def test_fid_symmetric_and_zero_for_identical_stats():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(300, 10)), rng.normal(0.3, 1.2, size=(300, 10))
    assert fid_from_features(x, y) == pytest.approx(fid_from_features(y, x), rel=1e-9)
    mu, sigma = feature_stats(x)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-9
    assert abs(fid_from_features(x, x)) < 1e-9


def test_fid_fewer_samples_than_dims_is_finite():
    rng = np.random.default_rng(4)
    value = fid_from_features(rng.normal(size=(10, 32)), rng.normal(size=(12, 32)))
    assert math.isfinite(value) and value > 0


def test_fid_with_constant_features_is_finite_and_quiet():
    # features that never vary (a dead unit) make both covariances singular: scipy's sqrtm warns,
    # the retry with eps*I handles it, so no warning reaches the user
    rng = np.random.default_rng(5)
    a = np.c_[rng.normal(size=(100, 8)), np.zeros((100, 4))]
    b = np.c_[rng.normal(size=(100, 8)), np.zeros((100, 4))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = fid_from_features(a, b)
    assert math.isfinite(value) and 0 < value == pytest.approx(fid_from_features(a[:, :8], b[:, :8]), rel=1e-3)


def test_fid_rejects_invalid_covariance():
    # S1 S2 = diag(1, -1): its square root has an imaginary diagonal that cannot be rounding error
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))


# ---------------------------------------------------------------------------------------- KID


def _mmd2_loops(x: np.ndarray, y: np.ndarray) -> float:
    """Gretton et al. 2012 Eq. 3 written out term by term, cubic kernel with gamma = 1/D."""
    def k(a, b):
        return (a @ b / x.shape[1] + 1.0) ** 3
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_matches_explicit_estimator():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(20, 3)), rng.normal(0.5, 1.0, size=(20, 3))
    # one subset of every sample: the draw only permutes rows, which leaves the statistic unchanged
    mean, std = kid(x, y, subsets=1, subset_size=20)
    assert mean == pytest.approx(_mmd2_loops(x, y), rel=1e-12)
    assert std == 0.0


def test_kid_near_zero_for_same_distribution_and_positive_for_shift():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(1000, 16)), rng.normal(size=(1000, 16))
    same, _ = kid(x, y, subsets=20, subset_size=200)
    shifted, _ = kid(x, y + 0.5, subsets=20, subset_size=200)
    assert abs(same) < 0.01
    assert shifted > 0.1


def test_kid_clamps_subset_size_and_rejects_tiny_sets():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(25, 4))
    assert kid(x, y, subsets=3, subset_size=1000) == kid(x, y, subsets=3, subset_size=25)
    with pytest.raises(ValueError, match="at least 2"):
        kid(x, y[:1])


# ----------------------------------------------------------------------------------------- IS


def test_inception_score_closed_forms():
    c = 10
    # every split holds each class equally often with near-one-hot predictions: IS = C
    confident = 50.0 * np.eye(c)[np.arange(200) % c]
    mean, std = inception_score(confident, splits=10, shuffle_seed=None)
    assert mean == pytest.approx(c, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)
    # logits far too large for a naive softmax still give the same answer
    assert inception_score(1e4 * confident, splits=10, shuffle_seed=None)[0] == pytest.approx(c, rel=1e-9)
    # identical predictions everywhere: p(y|x) = p(y), KL = 0, IS = 1
    flat = np.tile(np.random.default_rng(8).normal(size=c), (200, 1))
    assert inception_score(flat, splits=5)[0] == pytest.approx(1.0, abs=1e-12)


# ----------------------------------------------------------------------------- torch-fidelity


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(9)
    real = rng.normal(size=(600, 16))
    fake = rng.normal(0.3, 1.3, size=(600, 16)) + 0.2 * rng.normal(size=(1, 16))
    return real, fake


def test_fid_equals_torch_fidelity(features):
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    real, fake = features
    theirs = fid_statistics_to_metric(
        fid_features_to_statistics(torch.from_numpy(real)),
        fid_features_to_statistics(torch.from_numpy(fake)),
        verbose=False,
    )["frechet_inception_distance"]
    assert fid_from_features(real, fake) == pytest.approx(theirs, rel=1e-6)


def test_kid_equals_torch_fidelity(features):
    from torch_fidelity.metric_kid import kid_features_to_metric

    real, fake = features
    theirs = kid_features_to_metric(
        torch.from_numpy(real), torch.from_numpy(fake), kid_subsets=10, kid_subset_size=100, rng_seed=123,
        kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1,
        verbose=False,
    )
    mean, std = kid(real, fake, subsets=10, subset_size=100, seed=123)
    assert mean == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-6)
    assert std == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-6)


@pytest.mark.parametrize("n", [600, 605])
def test_inception_score_equals_torch_fidelity(n):
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = 3.0 * np.random.default_rng(10).normal(size=(n, 10))
    for shuffle in (True, False):
        theirs = isc_features_to_metric(torch.from_numpy(logits), splits=10, shuffle=shuffle, rng_seed=2020)
        mean, std = inception_score(logits, splits=10, shuffle_seed=2020 if shuffle else None)
        assert mean == pytest.approx(theirs["inception_score_mean"], rel=1e-6)
        assert std == pytest.approx(theirs["inception_score_std"], rel=1e-6)


# --------------------------------------------------------------------------------------- PRDC


def _prdc_brute(x: np.ndarray, y: np.ndarray, k_pr: int, k_dc: int) -> dict:
    """The definitions applied literally to full distance matrices."""
    def dist(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    dxx, dyy, dyx = dist(x, x), dist(y, y), dist(y, x)
    r_x = lambda k: np.array([np.sort(np.delete(row, i))[k - 1] for i, row in enumerate(dxx)])  # noqa: E731
    r_y = np.array([np.sort(np.delete(row, j))[k_pr - 1] for j, row in enumerate(dyy)])
    inside_pr = dyx <= r_x(k_pr)[None, :]
    inside_dc = dyx <= r_x(k_dc)[None, :]
    return {
        "precision": inside_pr.any(1).mean(),
        "recall": (dyx <= r_y[:, None]).any(0).mean(),
        "density": inside_dc.sum() / (k_dc * len(y)),
        "coverage": inside_dc.any(0).mean(),
    }


def test_prdc_matches_brute_force_and_is_chunk_invariant():
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(120, 5)), rng.normal(0.4, 1.2, size=(90, 5))
    expected = _prdc_brute(x, y, 3, 5)
    for chunk in (7, 2048):
        got = prdc(x, y, chunk=chunk)
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, abs=1e-12), (key, chunk)
    assert prdc(torch.from_numpy(x).float(), torch.from_numpy(y).float()) == prdc(
        x.astype(np.float32), y.astype(np.float32))


def test_prdc_identical_sets():
    x = np.random.default_rng(12).normal(size=(300, 4))
    got = prdc(x, x.copy())
    assert got["precision"] == 1.0 and got["recall"] == 1.0 and got["coverage"] == 1.0
    # each real ball holds its own centre and exactly its k nearest neighbours: density = (k+1)/k
    assert got["density"] == pytest.approx(6 / 5, abs=1e-12)


def test_prdc_same_distribution_density_near_one():
    rng = np.random.default_rng(13)
    got = prdc(rng.normal(size=(2000, 2)), rng.normal(size=(2000, 2)))
    assert got["density"] == pytest.approx(1.0, abs=0.1)
    assert got["coverage"] > 0.9 and got["precision"] > 0.8 and got["recall"] > 0.8


def test_prdc_disjoint_far_sets_all_zero():
    rng = np.random.default_rng(14)
    got = prdc(rng.normal(size=(200, 3)), rng.normal(size=(200, 3)) + 1000.0)
    assert got == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_fake_on_one_of_two_clusters():
    rng = np.random.default_rng(15)
    offset = np.array([100.0, 0.0])
    real = np.concatenate([rng.normal(size=(500, 2)), rng.normal(size=(500, 2)) + offset])
    # exact copy of cluster 1: every fake point is a real point, no real of cluster 2 is reachable
    exact = prdc(real, real[:500].copy())
    assert exact["precision"] == 1.0 and exact["recall"] == 0.5 and exact["coverage"] == 0.5
    # fresh samples of cluster 1
    fresh = prdc(real, rng.normal(size=(500, 2)))
    assert fresh["precision"] > 0.9
    assert 0.4 < fresh["recall"] <= 0.5 and 0.4 < fresh["coverage"] <= 0.5


def test_prdc_direction_fake_tight_inside_broad_real():
    rng = np.random.default_rng(16)
    broad, tight = rng.normal(size=(1000, 4)), 0.1 * rng.normal(size=(1000, 4))
    # fake = tight: every fake sample is realistic (high precision) but most real ones are
    # never produced (low recall, low coverage)
    got = prdc(broad, tight)
    assert got["precision"] > 0.95 and got["recall"] < 0.05 and got["coverage"] < 0.1
    # arguments swapped, so the broad set is now the fake one: the opposite
    swapped = prdc(tight, broad)
    assert swapped["precision"] < 0.05 and swapped["recall"] > 0.95


def test_prdc_ties_count_as_inside():
    real = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0], [6.0, 0.0]])  # 1-NN radius 1 everywhere
    fake = np.array([[2.0, 0.0], [3.0, 0.0]])  # at exactly 1 from (1, 0); at 2 from everything
    got = prdc(real, fake, k_pr=1, k_dc=1)
    assert got["precision"] == 0.5 and got["density"] == 0.5 and got["coverage"] == 0.25
    assert got["recall"] == 0.25  # only (1, 0) lies within 1 (the fake 1-NN radius) of a fake sample


def test_prdc_rejects_too_few_samples():
    with pytest.raises(ValueError, match="k-th nearest"):
        prdc(np.zeros((5, 2)), np.zeros((3, 2)))


# -------------------------------------------------------------------------------------- modes


def _ring(k: int = 8, radius: float = 2.0) -> np.ndarray:
    angles = 2 * np.pi * np.arange(k) / k
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def test_toy_modes_five_of_eight_equal_counts():
    rng = np.random.default_rng(17)
    centers, std = _ring(), 0.02
    chosen = np.repeat([0, 2, 3, 5, 6], 100)
    # bounded noise (|dx|, |dy| <= std) keeps every sample within sqrt(2) std < 3 std
    samples = centers[chosen] + rng.uniform(-std, std, size=(len(chosen), 2))
    got = toy_mode_stats(samples, centers, std)
    assert got["modes"] == 5 and got["hq_fraction"] == 1.0
    assert got["reverse_kl"] == pytest.approx(math.log(8 / 5), abs=1e-12)
    assert isinstance(got["modes"], int) and isinstance(got["reverse_kl"], float)


def test_toy_modes_unequal_counts_and_min_count():
    centers, std = _ring(2), 0.1
    samples = centers[[0, 0, 0, 1]]
    expected = 0.75 * math.log(0.75 * 2) + 0.25 * math.log(0.25 * 2)
    got = toy_mode_stats(torch.from_numpy(samples), torch.from_numpy(centers), std)
    assert got["modes"] == 2 and got["reverse_kl"] == pytest.approx(expected, abs=1e-12)
    assert toy_mode_stats(samples, centers, std, min_count=2)["modes"] == 1


def test_toy_modes_low_quality_samples():
    centers, std = _ring(), 0.02
    # half the samples sit 10 std off mode 0 (still nearest to it), half exactly on mode 1
    far = centers[0] * (1 + 10 * std / 2.0)
    samples = np.concatenate([np.tile(far, (50, 1)), np.tile(centers[1], (50, 1))])
    got = toy_mode_stats(samples, centers, std)
    assert got["hq_fraction"] == 0.5 and got["modes"] == 1
    assert got["reverse_kl"] == pytest.approx(math.log(8), abs=1e-12)

    nowhere = toy_mode_stats(np.full((20, 2), 50.0), centers, std)
    assert nowhere["hq_fraction"] == 0.0 and nowhere["modes"] == 0 and math.isnan(nowhere["reverse_kl"])


def test_stacked_modes():
    every = np.array([[a, b, c] for a in range(10) for b in range(10) for c in range(10)])
    got = stacked_mode_stats(np.concatenate([every, every]))
    assert got["modes"] == 1000 and got["kl"] == pytest.approx(0.0, abs=1e-12)

    one = stacked_mode_stats(torch.tensor([[3, 1, 4]] * 50))
    assert one["modes"] == 1 and one["kl"] == pytest.approx(math.log(1000), abs=1e-12)

    with pytest.raises(ValueError, match="lie in"):
        stacked_mode_stats(np.array([[0, 10, 1]]))
    with pytest.raises(ValueError, match="integers"):
        stacked_mode_stats(np.array([[0.0, 1.0, 2.0]]))
