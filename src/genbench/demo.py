"""`genbench demo`: the study on Fashion-MNIST sized for a 2-core laptop (`genbench study fmnist-quick`).

Three families, 2.5 minutes of training each under one budget, evaluated on 1500 samples with one
protocol, a short NFE sweep, and the report in ``runs/demo/report/report.html``.
"""

from __future__ import annotations

from pathlib import Path

DEMO_PRESET = "fmnist-quick"


def run_demo(out: Path | None = None, progress: bool = True, overrides: list[str] = ()) -> dict[str, Path]:
    from genbench.study import run_study

    return run_study(DEMO_PRESET, list(overrides), out=out or Path("runs") / "demo", progress=progress)
