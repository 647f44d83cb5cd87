"""Learning-rate schedules as pure functions of the step, for torch's LambdaLR."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

from genbench.config import LRScheduleConfig
from genbench.errors import GenbenchError


def lr_factor(cfg: LRScheduleConfig, steps_per_epoch: float, total_steps: int | None) -> Callable[[int], float]:
    """Multiplier of the base lr at a given step.

    ``warmup`` is linear from 0 over ``warmup_steps`` (applied before every kind);
    ``cosine`` anneals to ``min_lr_ratio`` over ``total_steps`` (Loshchilov & Hutter 2017);
    ``step`` multiplies by ``gamma`` at each of ``milestones_epochs`` (the study's decays).
    """
    if cfg.kind == "cosine" and not total_steps:
        raise GenbenchError(
            "the cosine lr schedule needs a known length, but the budget is only in minutes",
            "add train.budget.steps, epochs or kimg, or use optim.<player>.schedule.kind=warmup",
        )
    milestones = sorted(m * steps_per_epoch for m in cfg.milestones_epochs)

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
        if cfg.kind == "cosine":
            frac = min(1.0, step / max(1, total_steps))
            return warm * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))
        if cfg.kind == "step":
            return warm * cfg.gamma ** bisect.bisect_right(milestones, step)
        return warm

    return factor
