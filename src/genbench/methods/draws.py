"""Per-sample training noise (diffusion t and eps, flow t and noise, GAN z) for a batch that may be
split across ranks.

A distributed run trains on one global batch of B items, rank r holding items
[r*B/W, (r+1)*B/W). For 2 ranks x B/2 to reproduce 1 rank x B, each item must also get the noise it
gets in the single process. :class:`BatchDraws` therefore draws the random tensors of the whole
global batch on every rank, from one generator whose state is the same on all ranks (seeded
alike, checkpointed), and keeps the rank's slice. The extra draws cost little next to the network.

The default instance (no generator, one rank) draws from torch's global generator, as a plain
``torch.randn(...)`` would; the training loop installs its own as ``method.draws``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


class BatchDraws:
    def __init__(self, generator: torch.Generator | None = None, rank: int = 0, world: int = 1):
        self.generator, self.rank, self.world = generator, rank, world

    def _local(self, t: Tensor, n: int) -> Tensor:
        return t if self.world == 1 else t[self.rank * n: (self.rank + 1) * n]

    def randn(self, like: Tensor, shape: Sequence[int] | None = None) -> Tensor:
        """N(0, I) of shape (len(like), *shape) (default: like's item shape), like's dtype, device
        and memory format. Drawn contiguous first, so values do not depend on the layout."""
        n = like.shape[0]
        shape = tuple(like.shape[1:]) if shape is None else tuple(shape)
        out = self._local(torch.randn((n * self.world, *shape), generator=self.generator, device=like.device,
                                      dtype=like.dtype if like.is_floating_point() else torch.float32), n)
        if out.dim() == 4 == like.dim() and not like.is_contiguous() \
                and like.is_contiguous(memory_format=torch.channels_last):
            out = out.contiguous(memory_format=torch.channels_last)
        return out

    def rand(self, like: Tensor) -> Tensor:
        """U[0, 1), one per item of ``like`` (float32)."""
        n = like.shape[0]
        return self._local(torch.rand(n * self.world, generator=self.generator, device=like.device), n)

    def randint(self, high: int, like: Tensor) -> Tensor:
        """Uniform integers in [0, high), one per item of ``like`` (int64)."""
        n = like.shape[0]
        return self._local(torch.randint(0, high, (n * self.world,), generator=self.generator,
                                         device=like.device), n)


LOCAL = BatchDraws()
