"""Resumable mini-batch index sampler: epochs of random permutations from its own generator."""

from __future__ import annotations

import torch
from torch import Tensor

from genbench.errors import GenbenchError


class BatchSampler:
    """Yields index batches; each epoch is a fresh permutation of ``0..n-1``.

    The last incomplete batch of an epoch is dropped, so every batch has ``batch_size`` items
    and each index appears at most once per epoch. ``generator`` is also meant for the data
    augmentation (flips): its state is part of :meth:`state_dict`, so a resumed run draws
    exactly the same indices and flips as an uninterrupted one.

    ``epoch`` is the 0-based number of the epoch the next batch comes from (once it has been
    started) and ``position`` the offset of the next batch in the current permutation.
    """

    def __init__(self, n: int, batch_size: int, seed: int):
        if batch_size < 1:
            raise GenbenchError(f"batch size must be at least 1, got {batch_size}", "set train.batch_size")
        if batch_size > n:
            raise GenbenchError(
                f"batch size {batch_size} is larger than the dataset ({n} items)",
                f"set train.batch_size to at most {n}, or use more data (data.limit / data.classes)",
            )
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.epoch = 0
        self.position = 0
        self.perm = torch.randperm(self.n, generator=self.generator)

    @property
    def batches_per_epoch(self) -> int:
        return self.n // self.batch_size

    def next(self) -> Tensor:
        """The next ``batch_size`` indices (int64)."""
        if self.position + self.batch_size > self.n:
            # the epoch is used up (the remainder is dropped): start the next one
            self.epoch += 1
            self.position = 0
            self.perm = torch.randperm(self.n, generator=self.generator)
        idx = self.perm[self.position : self.position + self.batch_size].clone()
        self.position += self.batch_size
        return idx

    def __iter__(self) -> BatchSampler:
        return self

    def __next__(self) -> Tensor:
        return self.next()

    def state_dict(self) -> dict:
        """Only tensors and ints, so that it loads with ``torch.load(weights_only=True)``."""
        return {
            "n": self.n,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self.position,
            "perm": self.perm.clone(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        for key in ("n", "batch_size"):
            if int(state[key]) != getattr(self, key):
                raise GenbenchError(
                    f"the checkpoint's sampler was made with {key}={int(state[key])}, "
                    f"this run has {key}={getattr(self, key)}",
                    "resume with the same dataset (classes, limit, split) and train.batch_size",
                )
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self.perm = state["perm"].clone().to(torch.int64)
        self.generator.set_state(state["generator"].clone())
