"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

The same random, differentiable transformation T is applied to every image D sees, real and fake,
in D's update and in G's (Sec. 3, Eq. 3-4: D on T(x) and T(G(z)), G's gradient through T). The
policy ``color,translation,cutout`` is the paper's (Sec. 4, images in [-1, 1]):

- color: brightness + U(-0.5, 0.5), saturation (deviation from the pixel's channel mean) x U(0, 2),
  contrast (deviation from the image mean) x U(0.5, 1.5);
- translation: whole pixels in [-H/8, H/8] per axis, the uncovered border zero;
- cutout: a square of half the image side at a uniform position set to zero.

Zhao et al. apply the policy to every image; here each operation is drawn per sample with
probability ``p`` (default 1), so that p = 0 is the identity.
"""

from __future__ import annotations

from torch import Tensor

from genbench.augment.base import NoAugment
from genbench.augment.ops import choose, cutout, translate
from genbench.randomness import BatchDraws

TRANSLATION_RATIO = 1 / 8
CUTOUT_RATIO = 1 / 2


def _uniform(draws: BatchDraws, x: Tensor, lo: float, hi: float) -> Tensor:
    return (lo + (hi - lo) * draws.rand(x)).to(x.dtype)


def colour(x: Tensor, draws: BatchDraws) -> Tensor:
    n = x.shape[0]
    x = x + _uniform(draws, x, -0.5, 0.5).view(n, 1, 1, 1)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * _uniform(draws, x, 0.0, 2.0).view(n, 1, 1, 1) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _uniform(draws, x, 0.5, 1.5).view(n, 1, 1, 1) + mean


def translation(x: Tensor, draws: BatchDraws) -> Tensor:
    h, w = x.shape[2:]
    sy, sx = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
    ty = draws.randint(2 * sy + 1, x) - sy
    tx = draws.randint(2 * sx + 1, x) - sx
    return translate(x, ty, tx, pad="zeros")


def cutout_half(x: Tensor, draws: BatchDraws) -> Tensor:
    h, w = x.shape[2:]
    size = int(min(h, w) * CUTOUT_RATIO + 0.5)
    return cutout(x, draws.randint(h, x), draws.randint(w, x), size)


POLICY = {"color": colour, "translation": translation, "cutout": cutout_half}


class DiffAugment(NoAugment):
    """``augment(x, draws)``: each operation of ``ops`` in the paper's order, per sample with probability p
    (nothing to observe, log or checkpoint: DiffAugment does not adapt)."""

    def __init__(self, ops: list[str] | None = None, p: float | None = None):
        self.ops = [op for op in POLICY if op in (ops or POLICY)]
        self.p = 1.0 if p is None else float(p)

    def __call__(self, x: Tensor, draws: BatchDraws) -> Tensor:
        for op in self.ops:
            selected = draws.rand(x) < self.p
            x = choose(selected, POLICY[op](x, draws), x)
        return x
