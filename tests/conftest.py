"""Fixtures shared by the test files."""

from __future__ import annotations

import pytest

from fileformats import make_idx_dataset
from genbench.data import sources


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An isolated HOME, data and cache, no system datasets, and a small Fashion-MNIST in IDX format
    at ``tmp_path / "fmnist"`` (64 train, 16 test images)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GENBENCH_DATA", str(tmp_path / "nodata"))
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sources, "SYSTEM_DATASETS_DIR", tmp_path / "nosystem")
    make_idx_dataset(tmp_path / "fmnist", n_train=64, n_test=16)
    return tmp_path
