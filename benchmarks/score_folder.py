"""Time `genbench eval FOLDER --dataset fashion_mnist` on a folder of 10,000 PNG samples, end to end.

The target of issue 18: load the PNGs, extract features, FID/KID/IS/precision-recall-density-coverage
and the real-data floor from the reference cache, in <= 30 s on the 2-core CPU. The folder holds
Fashion-MNIST's 10,000 test images written as PNGs (so the numbers are about the floor's). The first
`eval` fills the reference cache (train reference + test floor); the timed runs find it warm, as a
user scoring a second model does. Each run is a fresh `genbench` process (import time included).
Usage (on an idle machine):

    .venv/bin/python benchmarks/score_folder.py [--n 10000] [--folder /tmp/genbench-score-folder] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_folder(folder: Path, n: int) -> None:
    """``n`` Fashion-MNIST test images as 8-bit greyscale PNGs, unless the folder already holds them."""
    from PIL import Image

    from genbench.config import DataConfig
    from genbench.data import load_dataset

    if folder.is_dir() and len(list(folder.glob("*.png"))) == n:
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    data = load_dataset(DataConfig(name="fashion_mnist", split="test", download=False))
    x = data.x[:n, 0].numpy()
    for i, im in enumerate(x):
        Image.fromarray(im, "L").save(folder / f"{i:05d}.png")


def run_eval(folder: Path, out: Path, cache: Path) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "genbench", "eval", str(folder), "--dataset", "fashion_mnist", "-o", str(out),
           "--overwrite"]
    env = dict(os.environ, GENBENCH_CACHE=str(cache))
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    (path,) = (out / "eval").glob("*.json")
    return seconds, json.loads(path.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "genbench-score-folder"))
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    folder = Path(args.folder)
    t0 = time.perf_counter()
    make_folder(folder, args.n)
    print(f"folder: {folder} ({args.n} PNGs, made in {time.perf_counter() - t0:.1f} s)")
    with tempfile.TemporaryDirectory() as tmp:
        cache, out = Path(tmp) / "cache", Path(tmp) / "entry"
        cold, _ = run_eval(folder, out, cache)
        print(f"cold cache (computes the train reference and the test floor): {cold:.1f} s")
        warm = []
        for _ in range(args.repeats):
            seconds, record = run_eval(folder, out, cache)
            warm.append(seconds)
        timing = record["timing"]
        print(f"warm cache, {args.repeats} runs: median {statistics.median(warm):.1f} s (all: "
              f"{', '.join(f'{s:.1f}' for s in warm)}); inside the last: loading {timing['loading_s']:.1f} s, "
              f"scoring + floor {timing['scoring_s']:.1f} s")
        print("metrics:", {k: round(v, 4) for k, v in record["metrics"].items() if isinstance(v, float)})
        print(f"target <= 30 s: {'met' if statistics.median(warm) <= 30 else 'NOT met'} "
              f"({os.cpu_count()} CPUs, torch threads {record['environment']['cpu_threads']})")


if __name__ == "__main__":
    main()
