"""GAN divergence watch: D's loss pinned near 0 for several log lines. Reported once, never fatal."""

from __future__ import annotations

import json


class DivergenceWatch:
    """D's loss pinned near 0 (it tells real from fake perfectly, so G gets no useful gradient)
    for ``window`` consecutive log lines. Its state is checkpointed, so a resumed run reports
    exactly what an uninterrupted one reports."""

    def __init__(self, window: int, threshold: float):
        self.window, self.threshold = window, threshold
        self.streak, self.since, self.report = 0, None, None

    def observe(self, step: int, d_loss: float | None) -> bool:
        """Feed one log line's mean D loss; True when divergence is first detected."""
        if not self.window or d_loss is None:
            return False
        if d_loss < self.threshold:
            self.streak += 1
            self.since = self.since if self.since is not None else step
        else:
            self.streak, self.since = 0, None
        if self.report is None and self.streak >= self.window:
            self.report = {
                "step": step, "since_step": self.since,
                "reason": f"GAN divergence: D loss below {self.threshold:g} for {self.streak} log lines "
                          f"(steps {self.since}..{step}): D separates real from fake, G gets no signal",
                "fix": "lower optim.D.lr, try method.loss=hinge or a spectral-norm D (nets.D.kind=resnet_d), "
                       "or restart from an earlier checkpoint",
            }
            return True
        return False

    def state_dict(self) -> dict:
        return {"streak": self.streak, "since": -1 if self.since is None else self.since,
                "report": json.dumps(self.report)}

    def load_state_dict(self, state: dict) -> None:
        self.streak, since = int(state["streak"]), int(state["since"])
        self.since = None if since < 0 else since
        self.report = json.loads(state["report"])
