"""Stacked Fashion-MNIST: three images in the three channels, 1000 modes.

The Stacked MNIST protocol of Metz et al. 2017 (Unrolled GAN, Sec. 3.3.2), used by VEEGAN and
PacGAN to count modes, built here from Fashion-MNIST: each item stacks three images drawn
uniformly at random; its mode is the triple of their classes, label a*100 + b*10 + c, named
"<a>+<b>+<c>" from the base's class names (so a conditional run has 1000 classes). The set is drawn
with a fixed generator, so it is the same for every run.
"""

from __future__ import annotations

import torch

from genbench.data.base import InMemoryData

STACKED_SEED = 20170301


def stack_channels(base: InMemoryData, n: int) -> InMemoryData:
    g = torch.Generator().manual_seed(STACKED_SEED)
    idx = torch.randint(0, len(base), (n, 3), generator=g)
    x = base.x[idx.flatten(), 0].reshape(n, 3, *base.x.shape[2:]).contiguous()
    labels = base.y[idx]
    y = labels[:, 0] * 100 + labels[:, 1] * 10 + labels[:, 2]
    names = base.class_names or [str(k) for k in range(10)]
    modes = [f"{names[k // 100]}+{names[k // 10 % 10]}+{names[k % 10]}" for k in range(1000)]
    return InMemoryData(x, y, "image", "stacked_fashion_mnist", modes,
                        source=f"stacked from {base.source} ({n} items, seed {STACKED_SEED})",
                        verified=base.verified)
