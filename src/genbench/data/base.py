"""The in-memory dataset that every loader returns, and its content fingerprint."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from genbench.data.transforms import hflip_mask, to_model_range


def fingerprint(x: Tensor, y: Tensor | None) -> str:
    """sha256 hex of the decoded tensors (dtype, shape and bytes of ``x`` and ``y``).

    It identifies exactly the data a run used (after class subsetting and ``limit``), so two
    runs with the same fingerprint trained on bitwise the same items in the same order.
    """
    h = hashlib.sha256()
    for t in (x, y):
        if t is None:
            h.update(b"none;")
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)};".encode())
        # hash through a uint8 view: numpy buffers of any dtype feed hashlib without a copy
        h.update(t.view(torch.uint8).numpy() if t.numel() else b"")
    return h.hexdigest()


@dataclass
class InMemoryData:
    """A whole dataset held in (CPU) memory.

    ``x`` is uint8 ``N x C x H x W`` for images and float32 ``N x 2`` for 2-D points; ``y`` holds
    int64 labels (class index, or mode index for 2-D sets) or is None. Labels keep the official
    class indices even after a class subset, so ``class_names[y]`` is always the right name.
    """

    x: Tensor
    y: Tensor | None
    kind: Literal["image", "points"]
    name: str
    class_names: list[str] | None
    source: str                 # where it was read from (or how it was generated)
    fingerprint: str = ""       # filled from the content when left empty
    verified: bool = False      # the source matched the official release's known checksum

    def __post_init__(self) -> None:
        if self.y is not None and len(self.y) != len(self.x):
            raise ValueError(f"{len(self.x)} items but {len(self.y)} labels")
        if not self.fingerprint:
            self.fingerprint = fingerprint(self.x, self.y)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one item, e.g. ``(1, 28, 28)`` or ``(2,)``."""
        return tuple(self.x.shape[1:])

    def select(self, idx: Tensor) -> InMemoryData:
        """A new dataset holding the items ``idx`` (its fingerprint recomputed)."""
        return InMemoryData(
            x=self.x[idx].clone(),
            y=None if self.y is None else self.y[idx].clone(),
            kind=self.kind,
            name=self.name,
            class_names=self.class_names,
            source=self.source,
            verified=self.verified,
        )

    def batch(
        self, idx: Tensor, hflip: bool = False, generator: torch.Generator | None = None,
        shard: slice | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Items ``idx`` in model range: images as float32 in ``[-1, 1]``, points unchanged.

        ``hflip`` flips a random half of an image batch, drawing from ``generator`` (the
        sampler's, so that a resumed run flips the same items); it is ignored for points.
        ``shard`` keeps a slice of the batch *after* the flips are drawn for all of ``idx``: the
        ranks of a distributed run each take their part of one global batch (same generator use).
        On a GPU the indices and flips travel pinned and asynchronously: no host wait per batch.
        """
        flip = None
        if hflip and self.kind == "image":
            if generator is None:
                raise ValueError("hflip needs a generator")
            flip = hflip_mask(len(idx), generator)
        if shard is not None:
            idx = idx[shard]
            flip = None if flip is None else flip[shard]
        idx = _to_device(idx, self.x.device)
        x = self.x[idx]
        y = None if self.y is None else self.y[idx]
        if self.kind == "points":
            return x, y
        if flip is not None:   # on uint8: a quarter of the memory traffic of float
            flip = _to_device(flip, x.device).view(-1, *([1] * (x.dim() - 1)))
            x = torch.where(flip, x.flip(-1), x)
        return to_model_range(x), y


def _to_device(t: Tensor, device: torch.device) -> Tensor:
    if t.device == device:
        return t
    if device.type == "cuda":   # pinned + non_blocking: the copy is queued, the host runs on
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)
