"""Log averages: per-step losses and gradient norms summed on the device, read at log lines.

The sums are part of the training state (checkpointed as ``log``), so that a resumed run writes
exactly the log lines an uninterrupted one writes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genbench import dist


class Tally:
    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.n = 0    # steps since the last log line

    def add(self, values: dict[str, Tensor], keep: Tensor) -> None:
        """Add one update's values, each counted as 0 where ``keep`` is False (a skipped update)."""
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0) + torch.where(keep, value.detach().float(), 0.0)

    def reduce(self, device: torch.device) -> None:
        """Average the sums over the ranks (each summed its own slice's means)."""
        if dist.world_size() > 1 and self.sums:
            keys = list(self.sums)   # the same order on every rank (the same code ran)
            vals = dist.all_reduce_(torch.stack([torch.as_tensor(self.sums[k], device=device) for k in keys]), "avg")
            self.sums = dict(zip(keys, vals.unbind(), strict=True))

    def means(self) -> dict[str, float]:
        """The averages since the last log line, in one device read."""
        if not self.sums:
            return {}
        values = torch.stack([torch.as_tensor(v) for v in self.sums.values()]).tolist()
        return {k: v / self.n for k, v in zip(self.sums, values, strict=True)}

    def clear(self) -> None:
        self.sums, self.n = {}, 0

    def state_dict(self) -> dict:
        return {"sums": {k: torch.as_tensor(v).detach().clone() for k, v in self.sums.items()}, "n": self.n}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.sums = {k: v.to(device) for k, v in state.get("sums", {}).items()}
        self.n = int(state.get("n", 0))
