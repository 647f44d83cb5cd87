"""Tests of the feature extractors: pinned domain-classifier weights, extraction, Inception checks.

The Inception-v3 weights cannot be downloaded here, so only its error paths are tested, with
fake files; no metric is ever computed from fake weights.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from genbench.config import DataConfig
from genbench.data import load_dataset
from genbench.errors import GenbenchError
from genbench.metrics import inception
from genbench.metrics.domain import PINNED_SHA256, DomainExtractor, default_weights_path
from genbench.metrics.extractors import build_extractor, default_extractor_kind
from genbench.metrics.features import FeatureExtractor, Features

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
SHIPPED = default_weights_path("fashion_mnist")


@pytest.fixture(scope="module")
def extractor() -> DomainExtractor:
    return build_extractor("domain", "fashion_mnist")


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


# ----------------------------------------------------------------------------- domain weights


def test_pinned_weights_load(extractor):
    assert isinstance(extractor, FeatureExtractor)
    assert extractor.name == "domain-fashion_mnist-v1"
    assert extractor.weights_sha256 == PINNED_SHA256["fashion_mnist"]
    assert extractor.feature_dim == 128
    assert extractor.metadata["dataset"] == "fashion_mnist"
    assert SHIPPED.stat().st_size < 2_000_000


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_weights_are_refused(tmp_path, damage):
    data = bytearray(SHIPPED.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    else:
        data = data[: len(data) - 100]
    bad = tmp_path / "fashion_mnist_classifier.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(GenbenchError) as err:
        DomainExtractor("fashion_mnist", weights_path=bad)
    text = _one_line(err)
    assert "does not match the pinned" in text and "sha256" in text
    assert f"git checkout -- {bad}" in err.value.fix and "train_domain_classifier.py" in err.value.fix


def test_missing_weights_and_unsupported_datasets(tmp_path):
    with pytest.raises(GenbenchError) as err:
        build_extractor("domain", "fashion_mnist", weights_path=str(tmp_path / "nope.safetensors"))
    assert "missing" in _one_line(err) and "git checkout" in err.value.fix
    with pytest.raises(GenbenchError) as err:
        build_extractor("domain", "cifar10")
    assert "inception" in err.value.fix
    with pytest.raises(GenbenchError) as err:   # supported, but no weights pinned here
        build_extractor("domain", "mnist")
    assert "train_domain_classifier.py --dataset mnist" in err.value.fix
    with pytest.raises(GenbenchError):
        build_extractor("clip", "fashion_mnist")


# ----------------------------------------------------------------------------- domain extraction


def test_shapes_and_dtypes(extractor):
    out = extractor.extract(_images(37), batch_size=16)
    assert isinstance(out, Features)
    assert out.features.shape == (37, 128) and out.features.dtype == np.float64
    assert out.logits.shape == (37, 10) and out.logits.dtype == np.float64
    assert (out.features >= 0).all()   # taken after the final ReLU
    empty = extractor.extract(_images(0))
    assert empty.features.shape == (0, 128) and empty.logits.shape == (0, 10)


def test_wrong_inputs_are_refused(extractor):
    for bad in (_images(2).float(), torch.zeros(2, 3, 28, 28, dtype=torch.uint8),
                torch.zeros(2, 1, 32, 32, dtype=torch.uint8)):
        with pytest.raises(GenbenchError):
            extractor.extract(bad)


def test_deterministic_and_batch_size_independent(extractor):
    x = _images(300, seed=1)
    a = extractor.extract(x, batch_size=500)
    b = extractor.extract(x, batch_size=500)
    c = extractor.extract(x, batch_size=7)
    assert np.array_equal(a.features, b.features) and np.array_equal(a.logits, b.logits)
    assert np.abs(a.features - c.features).max() < 1e-5
    assert np.abs(a.logits - c.logits).max() < 1e-5


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Fashion-MNIST files not installed")
def test_accuracy_on_real_test_images(extractor):
    test = load_dataset(DataConfig(name="fashion_mnist", root=str(FASHION_DIR), split="test",
                                   download=False, limit=1000))
    out = extractor.extract(test.x)
    acc = float((out.logits.argmax(1) == test.y.numpy()).mean())
    assert acc >= 0.90, acc


def test_default_extractor_kind():
    assert default_extractor_kind("fashion_mnist") == "domain"
    assert default_extractor_kind("mnist") == "domain"
    assert default_extractor_kind("cifar10") == "inception"
    assert default_extractor_kind("folder") == "inception"


# ----------------------------------------------------------------------------- inception checks


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """No $GENBENCH_INCEPTION_WEIGHTS and an empty torch hub cache."""
    monkeypatch.delenv(inception.ENV_VAR, raising=False)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    return tmp_path


def test_inception_missing_weights(empty_hub):
    with pytest.raises(GenbenchError) as err:
        inception.check_inception_weights()
    text = _one_line(err)
    assert inception.ENV_VAR in text and inception.TORCH_FIDELITY_NAME in text
    assert str(empty_hub / "hub" / "checkpoints") in text
    with pytest.raises(GenbenchError):
        build_extractor("inception", "cifar10")


def test_inception_wrong_file(empty_hub, monkeypatch):
    fake = empty_hub / inception.TORCH_FIDELITY_NAME
    fake.write_bytes(b"not the inception weights")
    monkeypatch.setenv(inception.ENV_VAR, str(fake))
    with pytest.raises(GenbenchError) as err:
        inception.check_inception_weights()
    assert "mismatched" in _one_line(err)
    with pytest.raises(GenbenchError, match="mismatched"):
        inception.check_inception_weights(fake)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / inception.PYTORCH_FID_NAME   # found in the cache too
    cached.parent.mkdir(parents=True)
    shutil.copy(fake, cached)
    monkeypatch.delenv(inception.ENV_VAR)
    with pytest.raises(GenbenchError, match="mismatched"):
        inception.check_inception_weights()
