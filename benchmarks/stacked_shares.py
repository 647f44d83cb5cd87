"""Where a stacked Fashion-MNIST run's mode KL comes from: each channel's class shares and their KL from
uniform, beside the KL over the 1,000 class triples (the modes metric of `genbench eval --metrics modes`).

Usage: python benchmarks/stacked_shares.py SAMPLES.npz
where SAMPLES.npz comes from `genbench sample RUN -n 10000 --format npz -o SAMPLES`.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from genbench.metrics.extractors import extractor_for_data
from genbench.metrics.modes import kl_to_uniform, stacked_mode_stats


def main(path: str) -> None:
    images = torch.from_numpy(np.load(path)["samples"]).permute(0, 3, 1, 2).contiguous()   # NHWC -> NCHW
    labels = extractor_for_data("stacked_fashion_mnist").channel_labels(images)
    total = 0.0
    for c in range(3):
        counts = np.bincount(labels[:, c], minlength=10)
        kl = kl_to_uniform(counts)
        total += kl
        print(f"channel {c}: shares {np.round(counts / counts.sum(), 3).tolist()} KL {kl:.4f}")
    stats = stacked_mode_stats(labels)
    print(f"sum of channel KLs {total:.4f}; triples: modes {stats['modes']}/{stats['modes_total']}, KL {stats['kl']:.4f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
