"""Evaluation metrics: pure functions of features, logits, samples or predicted labels."""

from genbench.metrics.fid import feature_stats, fid_from_features, frechet_distance, inception_score, kid
from genbench.metrics.modes import stacked_mode_stats, toy_mode_stats
from genbench.metrics.prdc import prdc

__all__ = [
    "feature_stats",
    "fid_from_features",
    "frechet_distance",
    "inception_score",
    "kid",
    "prdc",
    "stacked_mode_stats",
    "toy_mode_stats",
]
