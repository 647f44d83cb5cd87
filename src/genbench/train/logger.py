"""Training logs: one JSON line per logging step in metrics.jsonl, mirrored to TensorBoard."""

from __future__ import annotations

import json
from pathlib import Path

from genbench.files import atomic_write_bytes
from genbench.limits import LOG_FILE_BYTES, read_text


def _step_of(line: str) -> int | None:
    try:
        record = json.loads(line)
        return int(record.get("step", 0)) if isinstance(record, dict) else None
    except (ValueError, TypeError, OverflowError):   # torn, damaged, or a step that is not a number
        return None


class MetricsLogger:
    def __init__(self, run_dir: Path, resume_step: int, tensorboard: bool = True):
        self.path = run_dir / "metrics.jsonl"
        # On resume, drop what was logged after the checkpoint: those steps are run again.
        # A line torn by a kill (the last one) is dropped too.
        if self.path.exists():
            text = read_text(self.path, LOG_FILE_BYTES, "training log", "move metrics.jsonl out of the run directory")
            keep = [ln for ln in text.splitlines() if _step_of(ln) is not None
                    and _step_of(ln) <= resume_step]
            atomic_write_bytes(self.path, "".join(ln + "\n" for ln in keep).encode())
        self.file = open(self.path, "a")
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=resume_step + 1 if resume_step else None)

    def log(self, record: dict) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.tb is not None:
            step = record["step"]
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tb.add_scalar(key, value, step)

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()
