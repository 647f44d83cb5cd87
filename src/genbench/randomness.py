"""Every random stream of genbench in one place.

* :func:`derived_seed` — a 63-bit seed for a named stream (``derived_seed("draws", seed)``),
  independent of ``torch.manual_seed(seed)``'s own stream.
* :class:`BatchDraws` — per-item training noise (diffusion t and eps, flow t and noise, GAN z) for
  a global batch that may be split across ranks; :data:`LOCAL` is the single-process default.
* :class:`SeededNoise` — per-sample streams for sampling: a given seed gives the same image
  whatever the batch size.
* :func:`default_noise` — ``torch.randn_like`` from torch's global generator, the noise of the
  stochastic solvers when no per-sample streams are given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import Tensor


def derived_seed(*parts) -> int:
    """A 63-bit seed for a named stream, independent of ``torch.manual_seed(cfg.seed)``'s."""
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:15], 16)


# ----------------------------------------------------------------------------- training draws

class BatchDraws:
    """Per-sample training noise for a batch that may be split across ranks.

    A distributed run trains on one global batch of B items, rank r holding items
    [r*B/W, (r+1)*B/W). For 2 ranks x B/2 to reproduce 1 rank x B, each item must also get the
    noise it gets in the single process. A ``BatchDraws`` therefore draws the random tensors of the
    whole global batch on every rank, from one generator whose state is the same on all ranks
    (seeded alike, checkpointed), and keeps the rank's slice. The extra draws cost little next to
    the network.

    The default instance :data:`LOCAL` (no generator, one rank) draws from torch's global
    generator, as a plain ``torch.randn(...)`` would; the training loop installs its own as
    ``method.draws``.
    """

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


# ----------------------------------------------------------------------------- sampling noise

class SeededNoise:
    """Per-sample random streams: a given seed gives the same image whatever the batch size.

    As in EDM's generate script (Karras et al. 2022, ``StackedRandomGenerator``): sample k of a
    batch draws all of its noise, initial and per-step, from its own generator seeded with seed_k.
    """

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.generators = [torch.Generator(self.device).manual_seed(int(s) % (1 << 63)) for s in seeds]

    def __len__(self) -> int:
        return len(self.generators)

    def randn(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> Tensor:
        """Noise of shape (len(seeds), *shape), one independent stream per sample."""
        return torch.stack(
            [torch.randn(tuple(shape), generator=g, device=self.device, dtype=dtype) for g in self.generators]
        )

    def randn_like(self, x: Tensor) -> Tensor:
        if x.shape[0] != len(self.generators):
            raise ValueError(f"batch of {x.shape[0]} but {len(self.generators)} seeded streams")
        return self.randn(x.shape[1:], dtype=x.dtype)


def default_noise(x: Tensor) -> Tensor:
    """Noise for the stochastic solvers from torch's global generator (``torch.randn_like``)."""
    return torch.randn_like(x)
