"""Where a run trains: ranks and batch split, device and backend flags, memory layout, DDP.

Under torchrun (see :mod:`genbench.dist`) the global batch ``train.batch_size`` = B is split:
each rank draws the same global batch (same sampler seed, same flips) and keeps its contiguous
B/W slice (``shard``); the trained player goes through DDP (gradients averaged over the ranks),
the frozen ones are called as plain modules.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from genbench import dist
from genbench.config import TrainConfig
from genbench.errors import GenbenchError
from genbench.randomness import derived_seed


class _DDP(DistributedDataParallel):
    """DDP that still shows the wrapped net's own attributes (``G.z_dim``) to the methods."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


@dataclass
class Runtime:
    world: int
    rank: int
    main: bool
    device: torch.device
    shard: slice | None                       # this rank's part of a global batch (None: all)
    layout: torch.memory_format | None = None  # channels-last for image nets, else None

    @classmethod
    def create(cls, tcfg: TrainConfig) -> Runtime:
        """Check the batch split, pick the device and set its backend flags."""
        world, rank = dist.world_size(), dist.rank()
        if tcfg.batch_size % world:
            up = -(-tcfg.batch_size // world) * world
            raise GenbenchError(f"train.batch_size={tcfg.batch_size} does not split evenly over {world} processes",
                                f"use a multiple of {world}, e.g. train.batch_size={up}")
        local = tcfg.batch_size // world
        device = dist.pick_device(tcfg.device)
        if device.type == "cuda" and tcfg.tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = tcfg.cudnn_benchmark
        shard = slice(rank * local, (rank + 1) * local) if world > 1 else None
        return cls(world, rank, dist.is_main(), device, shard)

    def set_layout(self, tcfg: TrainConfig, data_kind: str) -> None:
        self.layout = torch.channels_last if tcfg.channels_last and data_kind == "image" else None

    def prepare(self, nets: dict[str, nn.Module], tcfg: TrainConfig) -> dict[str, nn.Module]:
        """SyncBatchNorm across GPUs (batch statistics over the global batch) and torch.compile."""
        if self.world > 1 and self.device.type == "cuda":
            nets = {p: nn.SyncBatchNorm.convert_sync_batchnorm(n) for p, n in nets.items()}
        if tcfg.compile:
            for net in nets.values():
                net.compile()
        return nets

    def wrap(self, nets: dict[str, nn.Module]) -> dict[str, nn.Module]:
        """The nets a loss sees for the player being trained: DDP-wrapped under torchrun."""
        if self.world == 1:
            return nets
        ids = [self.device.index] if self.device.type == "cuda" else None
        return {p: _DDP(n, device_ids=ids) for p, n in nets.items()}

    def seed_rank(self, seed: int, *more) -> None:
        """In-net randomness (dropout) differs between ranks: each draws its own stream."""
        if self.world > 1:
            torch.manual_seed(derived_seed("rank", seed, self.rank, *more))

    def autocast(self, precision: str):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def rank0(self, fn) -> None:
        """Run ``fn`` on rank 0 while the others wait."""
        if self.main:
            fn()
        dist.barrier()
