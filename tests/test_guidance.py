"""Classifier-free guidance: the convention (w = 1 conditional, w = 0 unconditional), the cost counted, per-seed
samples whatever the batch, the interval, and on a 2-D two-class mixture with the exact denoiser, samples that
concentrate on the requested class as w grows."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from genbench.classes import make_guidance, parse_classes, parse_interval, rows_by_class, seed_labels
from genbench.config import FlowConfig
from genbench.errors import GenbenchError
from genbench.guidance_sweep import best_scales, parse_scales, point_scores
from genbench.methods import Flow
from genbench.methods.guidance import Guidance, Guided
from genbench.sampling import generate

MEANS = torch.tensor([[-0.5, 0.0], [0.5, 0.0]], dtype=torch.float64)   # class 0 left, class 1 right
STD = 0.5
NULL = 2


class ExactMixture(nn.Module):
    """The exact velocity of flow matching's linear path for a two-class Gaussian mixture (equal weights,
    isotropic std STD): E[x0 | x_t, y] in closed form, for y = 0, 1, or the whole mixture for the null label."""

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.num_classes = 2

    def forward(self, x, t, y=None, r=None):
        c = self.path.coeffs(t.double())
        a, s = c.alpha.view(-1, 1), c.sigma.view(-1, 1)
        xd = x.double()
        var = a**2 * STD**2 + s**2
        # responsibilities of the two components at x_t (log N up to a shared constant)
        logp = torch.stack([-((xd - a * m) ** 2).sum(1, keepdim=True) / (2 * var) for m in MEANS], dim=1)[..., 0]
        if y is not None:
            onehot = torch.nn.functional.one_hot(y.clamp(max=1), 2).bool()
            logp = torch.where((y == NULL).view(-1, 1) | onehot, logp, torch.full_like(logp, -torch.inf))
        resp = logp.softmax(1)
        means = torch.stack([m + a * STD**2 / var * (xd - a * m) for m in MEANS], dim=1)
        x0 = (resp.unsqueeze(-1) * means).sum(1)
        eps = (xd - a * x0) / s
        return (c.d_alpha.view(-1, 1) * x0 + c.d_sigma.view(-1, 1) * eps).float()


def _flow():
    method = Flow(FlowConfig(sigma_min=0.0))
    return method, {"model": ExactMixture(method.path)}


def _share_on_class0(x: torch.Tensor) -> float:
    """Share of samples the Bayes classifier of the two classes assigns to class 0 (x < 0)."""
    return float((x[:, 0] < 0).double().mean())


def test_guidance_concentrates_samples_on_the_requested_class():
    method, nets = _flow()
    seeds = list(range(2000))
    labels = [0] * len(seeds)
    shares = []
    for w in (0.0, 1.0, 2.0, 4.0):
        x, nfe = generate(method, nets, (2,), seeds, "cpu", 500, "heun", 39, labels=labels,
                          guidance=Guidance(w, NULL))
        shares.append(_share_on_class0(x))
    # w = 0: the unconditional mixture (half on each side); w = 1: class 0 alone, P(x < 0) = Phi(0.5/0.5) = 0.84
    assert abs(shares[0] - 0.5) < 0.04
    assert abs(shares[1] - 0.841) < 0.03
    assert shares[1] < shares[2] < shares[3]
    assert shares[3] > 0.95


def test_w1_is_the_conditional_model_bitwise_and_the_batched_rule_agrees():
    method, nets = _flow()
    seeds, labels = list(range(64)), seed_labels(range(64), [0, 1])
    plain, nfe_plain = generate(method, nets, (2,), seeds, "cpu", 64, "euler", 8, labels=labels)
    w1, nfe_w1 = generate(method, nets, (2,), seeds, "cpu", 64, "euler", 8, labels=labels, guidance=Guidance(1.0, NULL))
    assert torch.equal(plain, w1) and nfe_plain == nfe_w1 == 8
    # the batched guided rule at w = 1 reproduces the conditional prediction (to rounding)
    guided = Guided(method.model_fn, nets["model"], torch.tensor(labels[:8]), Guidance(1.0, NULL), method.path)
    x, t = torch.randn(8, 2), torch.full((8,), 0.6)
    cond = method.model_fn(nets["model"], torch.tensor(labels[:8])).denoise(x, t)
    for a, b in zip(guided.denoise(x, t), cond, strict=True):
        torch.testing.assert_close(a, b)
    # and w = 0 is the model given the "no label" token
    w0, _ = generate(method, nets, (2,), seeds, "cpu", 64, "euler", 8, labels=labels, guidance=Guidance(0.0, NULL))
    uncond, _ = generate(method, nets, (2,), seeds, "cpu", 64, "euler", 8, labels=[NULL] * 64)
    assert torch.equal(w0, uncond)


def test_guided_nfe_counts_both_evaluations_and_the_interval_only_inside():
    method, nets = _flow()
    seeds, labels = list(range(16)), [1] * 16
    _, nfe = generate(method, nets, (2,), seeds, "cpu", 16, "euler", 10, labels=labels, guidance=Guidance(3.0, NULL))
    assert nfe == 20
    # Euler's uniform grid t = 1, 0.9, ..., 0.1: on the linear path sigma/alpha = t / (1 - t); (0.5, 2] holds
    # t = 0.4 (0.67), 0.5 (1.0), 0.6 (1.5): three guided steps
    _, nfe = generate(method, nets, (2,), seeds, "cpu", 16, "euler", 10, labels=labels,
                      guidance=Guidance(3.0, NULL, (0.5, 2.0)))
    assert nfe == 13


def test_guided_samples_do_not_depend_on_the_batch():
    method, nets = _flow()
    seeds = list(range(40))
    labels = seed_labels(seeds, [0, 1])
    a, _ = generate(method, nets, (2,), seeds, "cpu", 40, "heun", 9, labels=labels, guidance=Guidance(2.5, NULL))
    b, _ = generate(method, nets, (2,), seeds, "cpu", 7, "heun", 9, labels=labels, guidance=Guidance(2.5, NULL))
    c, _ = generate(method, nets, (2,), seeds[10:], "cpu", 16, "heun", 9, labels=labels[10:],
                    guidance=Guidance(2.5, NULL))
    assert torch.equal(a, b) and torch.equal(a[10:], c)


def _loaded(num_classes=10, names=None, kind="flow", classes=None):
    cfg = SimpleNamespace(method=SimpleNamespace(kind=kind), data=SimpleNamespace(classes=classes))
    return SimpleNamespace(cfg=cfg, num_classes=num_classes,
                           class_names=names or ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                                 "Shirt", "Sneaker", "Bag", "Ankle boot"])


def test_classes_by_name_or_index_and_bad_ones_refused_naming_the_valid():
    loaded = _loaded()
    assert parse_classes("sneaker", loaded) == [7]
    assert parse_classes("Bag, 0", loaded) == [8, 0]
    with pytest.raises(GenbenchError) as err:
        parse_classes("sneakers", loaded)
    assert "unknown class 'sneakers'" in str(err.value) and "7 Sneaker" in str(err.value)
    with pytest.raises(GenbenchError, match="not among the classes"):
        parse_classes("sneaker", _loaded(classes=["bag"]))
    with pytest.raises(GenbenchError, match="unconditional"):
        parse_classes("bag", _loaded(num_classes=None))


def test_guidance_refusals():
    assert make_guidance(_loaded(), None) is None
    g = make_guidance(_loaded(), 2.0, "0.28,5.42")
    assert g.scale == 2.0 and g.null_label == 10 and g.interval == (0.28, 5.42)
    for args, msg in [((_loaded(num_classes=None), 2.0), "conditional model"),
                      ((_loaded(kind="gan"), 2.0), "GAN"),
                      ((_loaded(), -1.0), ">= 0"),
                      ((_loaded(), float("nan")), ">= 0"),
                      ((_loaded(), None, "1,2"), "needs --guidance")]:
        with pytest.raises(GenbenchError, match=msg):
            make_guidance(*args)
    for bad in ("1", "a,b", "2,1", "-1,3", "0,inf"):
        with pytest.raises(GenbenchError):
            parse_interval(bad)


def test_labels_follow_the_seed_and_grid_rows_hold_one_class():
    assert seed_labels([0, 1, 2, 3, 13], [4, 7, 9]) == [4, 7, 9, 4, 7]
    order, per_row = rows_by_class([0, 1, 2, 0, 1, 2, 0, 1])
    assert per_row == 2 and order == [0, 3, 1, 4, 2, 5]


def test_guidance_sweep_picks_the_best_scale_per_metric():
    assert parse_scales("3,1,2") == [1.0, 2.0, 3.0]
    for bad in ("1,1", "x", "-1"):
        with pytest.raises(GenbenchError):
            parse_scales(bad)
    record = {"metrics": {"fid": 5.0, "is": 8.0, "recall": 0.5, "classes": {"consistency": 0.9, "kl": 0.1}}}
    assert point_scores(record) == {"fid": 5.0, "is": 8.0, "recall": 0.5, "consistency": 0.9}
    points = [{"w": 1.0, "fid": 6.0, "is": 8.0, "consistency": 0.90},
              {"w": 2.0, "fid": 4.0, "is": 9.0, "consistency": 0.97},
              {"w": 4.0, "fid": 7.0, "is": 9.5, "consistency": 0.99}]
    best = best_scales(points)
    assert best["fid"]["w"] == 2.0 and best["is"]["w"] == 4.0 and best["consistency"]["w"] == 4.0
