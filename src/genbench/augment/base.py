"""The augmentation interface, as the identity: what a kind that does not adapt (or does nothing) inherits."""

from __future__ import annotations

from torch import Tensor

from genbench.randomness import BatchDraws


class NoAugment:
    """``__call__(x, draws)`` the identity; ``observe`` (ADA's controller input), ``log``, ``state_dict`` and
    ``load_state_dict`` with nothing to do."""

    def __call__(self, x: Tensor, draws: BatchDraws) -> Tensor:
        return x

    def observe(self, signs: Tensor, global_batch: int) -> None:
        pass

    def log(self) -> dict[str, Tensor]:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
