"""Label dropout for classifier-free guidance (Ho & Salimans 2022, Sec. 3.2 and Algorithm 1).

A conditional diffusion, flow or few-step model learns the unconditional model too when a share
p_uncond of its training labels is replaced by a "no label" token: one network then gives both
D(x_t, t, c) and D(x_t, t, no label), which guidance mixes at sampling time. The token is the index
``num_classes`` (the extra last row of every class embedding in :mod:`genbench.nets`).

Which labels are dropped is drawn from the method's per-sample stream (``method.draws``, a
:class:`~genbench.randomness.BatchDraws`): rank-aware (2 ranks x B/2 drop the labels 1 rank x B
drops) and checkpointed with the run, so a resumed run drops the same ones. It is drawn after the
loss's own noise, so the noise of a conditional run is that of its unconditional twin.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genbench.randomness import BatchDraws


def drop_labels(y: Tensor | None, p: float, null_index: int | None, draws: BatchDraws) -> Tensor | None:
    """``y`` with each label replaced by ``null_index`` with probability ``p`` (one uniform draw per
    sample from ``draws``). Unchanged, and nothing drawn, for an unconditional model (``null_index``
    None: its net ignores y), for p = 0 or without labels."""
    if null_index is None or y is None or p == 0:
        return y
    drop = draws.rand(y) < p
    return torch.where(drop, torch.full_like(y, null_index), y)
