"""Evaluation metrics: feature extractors, FID, precision/recall/density/coverage and mode counts."""
