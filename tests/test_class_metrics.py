"""Class metrics (genbench.metrics.classes): the predicted-class histogram and its KL, consistency with
the requested classes, per-class FID, and the protocol's refusals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from genbench.config import DataConfig
from genbench.errors import GenbenchError
from genbench.metrics.classes import (
    COVERED_RATIO,
    class_consistency,
    class_fid,
    class_histogram,
    class_shares,
)
from genbench.metrics.features import Features
from genbench.metrics.fid import fid_from_features
from genbench.metrics.protocol import ImageProtocol


def test_histogram_and_kl_on_hand_made_predictions():
    pred = np.array([0] * 5 + [1] * 3 + [2] * 2)
    got = class_histogram(pred, [0.25] * 4, names=["a", "b", "c", "d"])
    assert got["fractions"] == pytest.approx([0.5, 0.3, 0.2, 0.0], abs=1e-15)
    assert got["reference"] == [0.25] * 4 and got["names"] == ["a", "b", "c", "d"] and got["n"] == 10
    expected = sum(q * math.log(q / 0.25) for q in (0.5, 0.3, 0.2))
    assert got["kl"] == pytest.approx(expected, abs=1e-12)
    assert got["covered"] == 3 and got["reference_classes"] == 4 and got["outside"] == 0.0
    # every class at its reference share: KL 0, all covered; names unknown: indices
    even = class_histogram(torch.arange(8) % 4, [0.25] * 4)
    assert even["kl"] == pytest.approx(0.0, abs=1e-15) and even["covered"] == 4 and even["names"] == list("0123")
    # the covered rule: a class needs COVERED_RATIO of its reference share
    rare = np.array([0] * 99 + [1])
    assert class_histogram(rare, [0.5, 0.5])["covered"] == (2 if 0.01 >= COVERED_RATIO * 0.5 else 1)
    with pytest.raises(ValueError, match="lie in"):
        class_histogram([0, 4], [0.25] * 4)
    with pytest.raises(ValueError, match="summing to 1"):
        class_histogram([0], [0.5, 0.4])


def test_histogram_against_a_class_subset_reference():
    ref = [0.0, 1.0, 0.0]                      # data.classes=[one class]: all real mass on class 1
    got = class_histogram([1, 1, 1, 2], ref)
    assert got["outside"] == 0.25 and got["kl"] == pytest.approx(0.0, abs=1e-15)
    assert got["covered"] == 1 and got["reference_classes"] == 1
    nowhere = class_histogram([0, 2], ref)
    assert nowhere["outside"] == 1.0 and nowhere["kl"] is None and nowhere["covered"] == 0
    # renormalised over the reference's classes before the KL
    two = class_histogram([0, 0, 0, 1, 2, 2], [0.5, 0.5, 0.0])
    assert two["outside"] == pytest.approx(2 / 6)
    assert two["kl"] == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5), abs=1e-12)


def test_consistency_exact():
    got = class_consistency(np.array([0, 0, 1, 2, 2, 2]), torch.tensor([0, 1, 1, 2, 2, 0]), names=["x", "y", "z"])
    assert got["consistency"] == pytest.approx(4 / 6)
    assert got["consistency_per_class"] == {"x": 0.5, "y": 0.5, "z": 1.0}
    only = class_consistency([3, 3], [3, 3])
    assert only == {"consistency": 1.0, "consistency_per_class": {"3": 1.0}}
    with pytest.raises(ValueError, match="requested"):
        class_consistency([0, 1], [0])


def test_class_fid_is_fid_on_the_class_subsets():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(60, 4)), rng.normal(0.5, 1.2, size=(40, 4))
    rl, fl = np.arange(60) % 3, np.arange(40) % 2          # fake asks for classes 0 and 1 only
    got = class_fid(real, rl, fake, fl, names=["a", "b", "c"])
    want = {n: fid_from_features(real[rl == c], fake[fl == c]) for c, n in ((0, "a"), (1, "b"))}
    assert got["per_class"] == pytest.approx(want, rel=1e-12)
    assert got["mean"] == pytest.approx(np.mean(list(want.values())), rel=1e-12)
    assert got["samples"] == {"a": 20, "b": 20} and got["reference"] == {"a": 20, "b": 20}
    with pytest.raises(GenbenchError, match="class c has 2 samples and 0 reference"):
        class_fid(real[rl != 2], rl[rl != 2], fake[:2], np.array([2, 2]), names=["a", "b", "c"])


def test_class_shares():
    assert class_shares([0, 0, 1, 3], 4).tolist() == [0.5, 0.25, 0.0, 0.25]
    with pytest.raises(ValueError, match="integers"):
        class_shares(np.array([0.0, 1.0]), 2)


# ----------------------------------------------------------------------------- the protocol


class _Classifier:
    """A stand-in domain classifier: features from the pixels, class = the first pixel's value mod 10."""

    name, weights_sha256, feature_dim, num_classes = "fake-domain", "0" * 64, 6, 10

    def extract(self, images, batch_size=500):
        flat = images.reshape(len(images), -1).double()
        logits = torch.nn.functional.one_hot(flat[:, 0].long() % 10, 10).double()
        return Features(flat[:, :6].numpy(), logits.numpy())


class _NoClasses(_Classifier):
    name, num_classes = "inception-v3-compat", None


def _images(classes: list[int]) -> torch.Tensor:
    x = torch.randint(0, 256, (len(classes), 1, 28, 28), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    x[:, 0, 0, 0] = torch.tensor(classes, dtype=torch.uint8)
    return x


def _cfg(env, **kw) -> DataConfig:
    return DataConfig(name="fashion_mnist", root=str(env / "fmnist"), download=False, **kw)


def test_protocol_scores_classes_and_class_fid(env):
    proto = ImageProtocol(_cfg(env), _Classifier(), ref_n=None)
    want = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] * 3
    predicted = [c if i % 3 else (c + 1) % 10 for i, c in enumerate(want)]   # a third predicted one class on
    s = proto.scores(["fid", "classes", "class_fid"], _images(predicted), labels=want)   # a list, as evaluate passes
    c = s["classes"]
    assert c["names"][0] == "T-shirt/top" and len(c["fractions"]) == 10
    shares = np.array([7] * 4 + [6] * 6) / 64                      # 64 train images, labels cycling 0..9
    assert c["reference"] == pytest.approx(shares.tolist(), abs=1e-15)
    assert c["consistency"] == pytest.approx(2 / 3)
    ref = proto.reference()
    fake = _Classifier().extract(_images(predicted)).features
    labels = np.array(want)
    name = c["names"][3]
    assert s["class_fid"]["per_class"][name] == pytest.approx(
        fid_from_features(ref.features[ref.labels == 3], fake[labels == 3]), rel=1e-12)
    # unconditional: classes without consistency; the floor scores held-out images the same way
    plain = proto.scores(["classes"], _images(want))
    assert "consistency" not in plain["classes"]
    assert plain["classes"]["kl"] == pytest.approx(float(np.sum(0.1 * np.log(0.1 / shares))), abs=1e-12)
    floor = proto.floor(["classes", "class_fid"], 16)
    assert floor["classes"]["n"] == 16 and 0 <= floor["classes"]["consistency"] <= 1
    assert set(floor["class_fid"]["per_class"]) <= set(c["names"])


def test_reference_labels_come_from_the_data_and_old_caches_stay_valid(env):
    from genbench.metrics.reference import cache_dir, real_items, reference_features

    cfg = _cfg(env)
    first = reference_features(_Classifier(), cfg, "train", 20)
    (path,) = cache_dir().glob("*.npz")
    with np.load(path) as z:
        assert sorted(z.files) == ["features", "logits"]         # the cache file's layout is unchanged
    again = reference_features(_Classifier(), cfg, "train", 20)   # served from the cache, with labels
    _, labels, _ = real_items(cfg, "train", 20)
    assert np.array_equal(again.labels, labels.numpy()) and np.array_equal(first.labels, again.labels)
    assert again.class_counts.tolist() == [7, 7, 7, 7, 6, 6, 6, 6, 6, 6]   # the whole split's
    subset = reference_features(_Classifier(), _cfg(env, classes=["bag"]), "train", None)
    assert subset.class_shares.tolist() == [0.0] * 8 + [1.0, 0.0] and set(subset.labels.tolist()) == {8}


def test_protocol_refusals(env):
    cifar = ImageProtocol(DataConfig(name="cifar10"), _NoClasses())
    with pytest.raises(GenbenchError, match="no domain classifier for cifar10"):
        cifar.check(["fid", "classes"], labelled=False)
    fmnist = ImageProtocol(_cfg(env), _NoClasses())
    with pytest.raises(GenbenchError, match="needs the domain classifier of fashion_mnist"):
        fmnist.scores(["classes"], _images([0, 1]))
    proto = ImageProtocol(_cfg(env), _Classifier())
    with pytest.raises(GenbenchError, match="class_fid .* no requested class"):
        proto.check(["class_fid"], labelled=False)
    with pytest.raises(GenbenchError, match="one integer class label each"):
        proto.scores(["classes"], _images([0, 1]), labels=torch.tensor([0]))
    proto.check(["classes", "class_fid"], labelled=True)        # fine


def test_eval_scores_classes_for_an_unconditional_run(env, capsys):
    from genbench.cli import main
    from genbench.evaluate import parse_metrics

    assert parse_metrics("fid,classes", "image", False) == ["fid", "classes"]
    run = env / "gan"
    assert main(["train", "configs/fmnist/gan.yaml", "nets.G.ch=8", "nets.G.z_dim=8", "nets.D.ch=8",
                 f"data.root={env / 'fmnist'}", "data.download=false", "train.batch_size=8",
                 "train.budget={steps: 2}", "train.tensorboard=false", "train.grid_n=4",
                 "--out", str(run), "--no-progress"]) == 0
    assert main(["eval", str(run), "-n", "20", "--metrics", "fid,classes"]) == 0
    (path,) = (run / "eval").glob("*.json")
    rec = json.loads(path.read_text())
    c = rec["metrics"]["classes"]
    assert len(c["fractions"]) == 10 and sum(c["fractions"]) == pytest.approx(1.0) and c["n"] == 20
    assert c["names"][9] == "Ankle boot" and 0 <= c["covered"] <= 10 and c["kl"] >= 0
    assert rec["floor"]["classes"]["n"] == 16 and "consistency" in rec["floor"]["classes"]
    # class_fid without a conditional model is refused in one line, before sampling
    assert main(["eval", str(run), "-n", "20", "--metrics", "class_fid", "--overwrite"]) == 2
    assert "class_fid" in capsys.readouterr().err


def test_terminal_summary_lines():
    from genbench.metrics.classes import summary

    hist = {**class_histogram([0, 0, 1], [0.5, 0.5]), **class_consistency([0, 0, 1], [0, 1, 1])}
    assert summary("classes", hist) == f"classes: KL {hist['kl']:.3g}, covered 2/2, consistency 0.667"
    assert summary("class_fid", {"mean": 12.5, "per_class": {"a": 10.0, "b": 15.0}}) == \
        "class_fid: mean 12.5 over 2 classes"
