"""Time the domain-classifier features of 10,000 Fashion-MNIST images (2 CPU threads).

Usage: ``.venv/bin/python benchmarks/domain_features.py [--n 10000] [--batch-size 500]``;
prints the wall-clock seconds of one :meth:`DomainExtractor.extract` call (after a warm-up).
"""

from __future__ import annotations

import argparse
import time

import torch

from genbench.config import DataConfig
from genbench.data import load_dataset
from genbench.metrics.extractors import build_extractor


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    images = load_dataset(DataConfig(name="fashion_mnist", split="train", download=False, limit=args.n)).x
    extractor = build_extractor("domain", "fashion_mnist")
    extractor.extract(images[: args.batch_size], batch_size=args.batch_size)   # warm-up
    t0 = time.perf_counter()
    out = extractor.extract(images, batch_size=args.batch_size)
    seconds = time.perf_counter() - t0
    print(f"domain features of {out.features.shape[0]} Fashion-MNIST images ({args.threads} threads, "
          f"batch {args.batch_size}): {seconds:.2f} s")


if __name__ == "__main__":
    main()
