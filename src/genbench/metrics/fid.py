"""Feature-space scores of a sample set: FID, KID and Inception Score.

Pure functions of N×D features (or N×C logits), numpy arrays or torch tensors, always computed
in float64. Conventions follow torch-fidelity 0.4 (unbiased covariance, KID subset draws, IS
splits), so that the same features give the same numbers; the tests check this to 1e-6.

References
- Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
  Equilibrium", Eq. 6 (FID); the Fréchet distance of two Gaussians is Dowson & Landau 1982.
- Bińkowski et al. 2018, "Demystifying MMD GANs", Sec. 4 (KID); the unbiased MMD²
  estimator is Gretton et al. 2012, "A Kernel Two-Sample Test", Lemma 6 / Eq. 3.
- Salimans et al. 2016, "Improved Techniques for Training GANs", Sec. 4 (Inception Score).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import scipy.special
import torch


def as_float64(x, name: str, ndim: int) -> np.ndarray:
    """A numpy array or torch tensor as a float64 numpy array, with its rank checked."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to(device="cpu", dtype=torch.float64).numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {x.shape}")
    return x


def feature_stats(feats) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D×D) of N×D features, rows being samples."""
    x = as_float64(feats, "feats", 2)
    if len(x) < 2:
        raise ValueError(f"need at least 2 samples for a covariance, got {len(x)}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _sqrtm_checked(a: np.ndarray, rtol: float = 1e-5) -> np.ndarray | None:
    """scipy's sqrtm of a, or None if the result is not finite or X·X misses a by more than rtol
    (relative Frobenius error: the estimate scipy used to return before 1.16). scipy's warning
    about a singular matrix is silenced: the result is checked here and the caller falls back."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(a)
    if not np.isfinite(root).all():
        return None
    scale = np.linalg.norm(a)
    return root if np.linalg.norm(root @ root - a) <= rtol * scale else None


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Fréchet distance of N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017, Eq. 6):

        ||mu1 - mu2||² + Tr(S1 + S2 - 2 (S1 S2)^{1/2}).

    If the matrix square root of S1 S2 is not finite or not accurate (a singular or
    ill-conditioned product, e.g. fewer samples than dimensions), it is recomputed with eps·I
    added to both covariances, as pytorch-fid does. A numerically
    complex root is accepted only if the imaginary part of its diagonal (all the trace needs)
    is negligible; otherwise ValueError.
    """
    mu1, mu2 = as_float64(mu1, "mu1", 1), as_float64(mu2, "mu2", 1)
    s1, s2 = as_float64(sigma1, "sigma1", 2), as_float64(sigma2, "sigma2", 2)
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"mismatched shapes: mu {mu1.shape}, {mu2.shape}; sigma {s1.shape}, {s2.shape}")

    covmean = _sqrtm_checked(s1 @ s2)
    if covmean is None:
        offset = eps * np.eye(d)
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        # S1 S2 is similar to a PSD matrix, so its root is real in exact arithmetic; a large
        # imaginary part means the covariances are not valid (not symmetric PSD) or very ill-conditioned.
        diag = np.diagonal(covmean)
        scale = max(1.0, float(np.abs(diag.real).max()))
        if np.abs(diag.imag).max() > 1e-3 * scale:
            raise ValueError(f"sqrtm(S1 S2) has a large imaginary component {np.abs(diag.imag).max():.3g}")
        covmean = covmean.real

    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def fid_from_features(real, fake) -> float:
    """FID between two N×D feature sets: the Fréchet distance of their Gaussian fits."""
    mu1, s1 = feature_stats(real)
    mu2, s2 = feature_stats(fake)
    return frechet_distance(mu1, s1, mu2, s2)


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float) -> float:
    """Unbiased MMD² (Gretton et al. 2012, Eq. 3) with k(a, b) = (gamma a·b + coef0)^degree:
    within-set means exclude the diagonal (i ≠ j), the cross term averages all m·n pairs."""
    m, n = len(x), len(y)
    k_xx = (x @ x.T * gamma + coef0) ** degree
    k_yy = (y @ y.T * gamma + coef0) ** degree
    k_xy = (x @ y.T * gamma + coef0) ** degree
    xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * k_xy.sum() / (m * n))


def kid(real, fake, subsets: int = 100, subset_size: int = 1000, degree: int = 3, gamma: float | None = None,
        coef0: float = 1.0, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD² with the polynomial
    kernel (gamma x·y + coef0)^degree, gamma = 1/D by default, averaged over random subsets.

    Returns (mean, std) over subsets, std with ddof=0 as in torch-fidelity. subset_size is
    clamped to min(len(real), len(fake)) (torch-fidelity refuses instead). Subsets are drawn
    exactly as torch-fidelity draws them: one numpy RandomState(seed), and per subset first
    ``choice(len(real), size, replace=False)`` then the same for fake, so equal seeds give equal
    subsets. KID can be slightly negative when the two distributions are close.
    """
    x, y = as_float64(real, "real", 2), as_float64(fake, "fake", 2)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: real {x.shape[1]}, fake {y.shape[1]}")
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    size = min(subset_size, len(x), len(y))
    if size < 2:
        raise ValueError(f"KID needs subsets of at least 2 samples per side; got real {len(x)}, "
                         f"fake {len(y)}, subset_size {subset_size}")
    g = 1.0 / x.shape[1] if gamma is None else float(gamma)

    rng = np.random.RandomState(seed)
    mmds = np.empty(subsets)
    for i in range(subsets):
        # order of the two draws matters for matching torch-fidelity's subsets
        xi = x[rng.choice(len(x), size, replace=False)]
        yi = y[rng.choice(len(y), size, replace=False)]
        mmds[i] = _mmd2_unbiased(xi, yi, degree, g, coef0)
    return float(mmds.mean()), float(mmds.std())


def inception_score(logits, splits: int = 10, shuffle_seed: int | None = 2020) -> tuple[float, float]:
    """Inception Score (Salimans et al. 2016, Sec. 4): exp(E_x KL(p(y|x) || p(y))), with p(y)
    the marginal over each split; returns (mean, std) over splits (std with ddof=0).

    Splits follow torch-fidelity: rows are first permuted by numpy RandomState(shuffle_seed)
    (torch-fidelity's default seed is 2020; None keeps the given order), then split i is rows
    [i·N // splits, (i+1)·N // splits). Shuffling matters when samples come ordered by class.
    Everything is done in log space (log-softmax, log-mean-exp) so confident logits cannot
    produce log(0).
    """
    z = as_float64(logits, "logits", 2)
    n = len(z)
    if not 1 <= splits <= n:
        raise ValueError(f"splits must be in [1, {n}] for {n} samples, got {splits}")
    if shuffle_seed is not None:
        z = z[np.random.RandomState(shuffle_seed).permutation(n)]
    log_p = z - scipy.special.logsumexp(z, axis=1, keepdims=True)

    scores = []
    for i in range(splits):
        lp = log_p[i * n // splits:(i + 1) * n // splits]
        log_marginal = scipy.special.logsumexp(lp, axis=0) - np.log(len(lp))
        kl = (np.exp(lp) * (lp - log_marginal)).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))
