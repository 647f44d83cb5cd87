"""`genbench demo`: train the three Fashion-MNIST presets briefly and sample each.

The full study (matched budgets, evaluation, report) builds on this.
"""

from __future__ import annotations

import time
from pathlib import Path

from genbench.cli import resolve_config
from genbench.config import load_config
from genbench.run import prepare_run_dir

FAMILIES = ("gan", "ddpm", "flow")


def run_demo(minutes: float = 1.5, out: Path | None = None, progress: bool = True) -> list[Path]:
    from genbench.sample_cmd import sample_run
    from genbench.train.loop import train

    out = out or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    grids = []
    for fam in FAMILIES:
        cfg = load_config(resolve_config(f"fmnist/{fam}"),
                          [f"train.budget.minutes={minutes}", f"name=demo-{fam}"])
        cfg.train.budget.steps = cfg.train.budget.epochs = cfg.train.budget.kimg = None
        run_dir = out / fam
        cfg = prepare_run_dir(run_dir, cfg, resume=False, overwrite=False)
        info = train(cfg, run_dir, progress=progress)
        paths = sample_run(run_dir, n=64, formats=["png"])
        grids += paths
        print(f"{fam:>5}: {info['step']} steps, {info['images_seen'] / max(info['train_seconds'], 1e-9):.0f} "
              f"images/s, samples -> {paths[0]}")
    return grids
