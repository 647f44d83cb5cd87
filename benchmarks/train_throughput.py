"""Training throughput of presets on this machine: real images consumed per second.

Runs the real training loop (`genbench.train.loop.train`) for a fixed number of steps in a
temporary directory and reports the median images/s over the logging intervals after the
first (warm-up). Usage:

    .venv/bin/python benchmarks/train_throughput.py fmnist/gan fmnist/ddpm fmnist/flow [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from genbench.config import load_config
from genbench.presets import resolve_config
from genbench.rundir import prepare_run_dir
from genbench.train.loop import train


def measure(preset: str, steps: int, log_every: int) -> dict:
    cfg = load_config(resolve_config(preset), [f"train.budget={{steps: {steps}}}", f"train.log_every={log_every}",
                                               "train.sample_every=1000000", "train.ckpt_every=1000000",
                                               "train.tensorboard=false"])
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        cfg = prepare_run_dir(run, cfg)
        info = train(cfg, run, progress=False)
        rates = [json.loads(ln)["images_per_s"] for ln in (run / "metrics.jsonl").read_text().splitlines()][1:]
    return {"preset": preset, "images_per_s": statistics.median(rates), "steps": steps,
            "batch_size": cfg.train.batch_size, "params": info["params"],
            "updates_per_step": cfg.method.kind == "gan" and f"{cfg.method.n_critic} D + 1 G" or "1"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("presets", nargs="+")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--log-every", type=int, default=25)
    args = p.parse_args()
    print(f"# {time.strftime('%Y-%m-%d')} {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| preset | images/s | batch | params |")
    print("|---|---|---|---|")
    for preset in args.presets:
        r = measure(preset, args.steps, args.log_every)
        params = ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in r["params"].items())
        print(f"| {preset} | {r['images_per_s']:.0f} | {r['batch_size']} | {params} |", flush=True)


if __name__ == "__main__":
    main()
