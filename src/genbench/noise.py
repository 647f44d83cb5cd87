"""Per-sample random streams: a given seed gives the same image whatever the batch size.

As in EDM's generate script (Karras et al. 2022, ``StackedRandomGenerator``): sample k of a
batch draws all of its noise, initial and per-step, from its own generator seeded with seed_k.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


class SeededNoise:
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
