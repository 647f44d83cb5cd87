"""When training stops: the first limit reached among steps, epochs, kimg and minutes."""

from __future__ import annotations

import math
import time

from genbench import dist
from genbench.config import BudgetConfig


class Budget:
    """Progress towards the first limit reached among steps, epochs, kimg and minutes."""

    def __init__(self, cfg: BudgetConfig, n_data: int, images_per_step: int):
        self.cfg, self.n_data, self.images_per_step = cfg, n_data, images_per_step

    def total_steps(self) -> int | None:
        """Length in steps when it is known in advance (not for a minutes-only budget)."""
        limits = []
        if self.cfg.steps:
            limits.append(self.cfg.steps)
        if self.cfg.epochs:
            limits.append(math.ceil(self.cfg.epochs * self.n_data / self.images_per_step))
        if self.cfg.kimg:
            limits.append(math.ceil(self.cfg.kimg * 1000 / self.images_per_step))
        return min(limits) if limits else None

    def steps_per_epoch(self) -> float:
        return self.n_data / self.images_per_step

    def fraction(self, step: int, images: int, seconds: float) -> float:
        parts = []
        if self.cfg.steps:
            parts.append(step / self.cfg.steps)
        if self.cfg.epochs:
            parts.append(images / (self.cfg.epochs * self.n_data))
        if self.cfg.kimg:
            parts.append(images / (self.cfg.kimg * 1000))
        if self.cfg.minutes:
            parts.append(seconds / (self.cfg.minutes * 60))
        return max(parts)


class Clock:
    """Training seconds, counting on from those a resumed run had already spent."""

    def __init__(self, seconds: float, agree: bool):
        self.start, self.agree = time.time() - seconds, agree

    def now(self) -> float:
        return time.time() - self.start

    def elapsed(self) -> float:
        """For the budget check: a minutes budget must end every rank at the same step, so under
        torchrun the ranks' clocks are agreed (the max, over gloo)."""
        return dist.agree_max(self.now()) if self.agree else self.now()
