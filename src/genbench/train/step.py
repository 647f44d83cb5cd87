"""One training step, the loop's hot path: for each of the method's updates a batch (when the
player sees data), its loss, backward, clipping, the non-finite check and the optimiser; then
the lr schedules and the EMA.

The step never waits for the GPU: losses and non-finite flags accumulate on the device and are
read by the monitor at log, grid and checkpoint steps; a non-finite loss or gradient makes the
fused optimiser skip its update on the device (``found_inf``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from genbench import dist
from genbench.data.base import InMemoryData
from genbench.train.ema import update_ema
from genbench.train.state import TrainState


class NonFinite:
    """Device-side record of skipped updates: how many, and the first one (step, player, and
    whether the loss or only the gradient was non-finite), read only when asked."""

    def __init__(self, players: tuple[str, ...], device: torch.device, skipped: int = 0):
        self.players = players
        self.count = torch.tensor(float(skipped), device=device)
        self.first = torch.tensor(-1, dtype=torch.int64, device=device)

    def record(self, bad: Tensor, step: int, player: str) -> Tensor:
        """``bad`` = [loss non-finite, gradient non-finite] (float 0/1); returns 1. if skipped."""
        skip = bad.amax()
        code = (step * len(self.players) + self.players.index(player)) * 2 + (bad[0] == 0).long()
        self.first = torch.where((self.first < 0) & (skip > 0), code, self.first)
        self.count += skip
        return skip

    def read(self) -> tuple[int, tuple[int, str, str] | None]:
        """(skipped so far, (step, player, 'loss' | 'gradient') of the first skip or None)."""
        count, first = int(self.count), int(self.first)
        if first < 0:
            return count, None
        (sp, kind) = divmod(first, 2)
        step, p = divmod(sp, len(self.players))
        return count, (step, self.players[p], "gradient" if kind else "loss")

    def clear_first(self) -> None:
        self.first.fill_(-1)


class Batches:
    """The next global batch from the resumable sampler (every rank draws the same one and flips),
    of which this rank keeps its ``shard``, in the training layout."""

    def __init__(self, data: InMemoryData, state: TrainState, hflip: bool, shard: slice | None):
        self.data, self.sampler, self.hflip, self.shard, self.layout = data, state.sampler, hflip, shard, state.layout

    def next(self) -> tuple[Tensor, Tensor | None, int]:
        """(x, y, images in the global batch)."""
        idx = self.sampler.next()
        x, y = self.data.batch(idx, self.hflip, self.sampler.generator, self.shard)
        if self.layout is not None:
            x = x.contiguous(memory_format=self.layout)
        return x, y, len(idx)


class TrainStep:
    """``after_update`` (if given) runs after every optimiser update: on the CPU, where reading a
    tensor costs nothing, the monitor's non-finite check, so that ``nonfinite=stop`` ends the run
    at the very update that went wrong."""

    def __init__(self, state: TrainState, batches: Batches, trained: dict[str, nn.Module], autocast,
                 flags: NonFinite, after_update: Callable[[], None] | None = None):
        self.state, self.batches, self.trained, self.autocast = state, batches, trained, autocast
        self.flags, self.after_update = flags, after_update

    def __call__(self) -> None:
        s, method = self.state, self.state.method
        method.step = s.step   # for schedules inside a loss (ECT's r(t)); restored with the step on resume
        x = y = None
        for player in method.updates:
            if player in method.data_players or x is None:
                x, y, n = self.batches.next()
                if player in method.data_players:
                    s.images_seen += n
            self.update(player, x, y)
            if self.after_update is not None:
                self.after_update()
        for sched in s.scheds.values():
            sched.step()
        if s.ema is not None:
            update_ema(s.ema, s.nets[method.sample_player], s.images_seen)
        s.step += 1
        s.tally.n += 1

    def update(self, player: str, x: Tensor, y: Tensor | None) -> None:
        """One optimiser update of ``player``, the other players frozen."""
        s = self.state
        for p, net in s.nets.items():
            net.requires_grad_(p == player)
        with self.autocast:
            losses = s.method.loss({**s.nets, player: self.trained[player]}, player, x, y)
        loss, opt = losses["loss"], s.opts[player]
        opt.zero_grad(set_to_none=True)
        loss.backward()   # always: under DDP every rank must join the gradient all-reduce
        clip = s.cfg.optim[player].grad_clip
        gnorm = torch.nn.utils.clip_grad_norm_(s.nets[player].parameters(), clip or float("inf"))
        # a finite loss can still give inf/NaN gradients; a rank's bad loss stops all ranks
        bad = torch.stack([~torch.isfinite(loss.detach()), ~torch.isfinite(gnorm)]).float()
        dist.all_reduce_(bad, "max")
        skip = self.flags.record(bad, s.step, player)
        opt.found_inf = skip   # the fused kernel skips the update when 1
        try:
            opt.step()
        finally:
            del opt.found_inf
        named = {f"loss/{player}" if k == "loss" else k: v for k, v in losses.items()}
        s.tally.add({**named, f"grad_norm/{player}": gnorm}, keep=skip == 0)
