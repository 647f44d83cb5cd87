"""Generation speed: one-image latency (batch 1) and throughput at the best batch size.

Both are measured after a warm-up call, with the device synchronised around each timing, and
reported with the NFE and the device so that numbers from different machines are never mixed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch

from genbench.sampling import generate, seed_labels


def _timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def measure_speed(method, nets, latent_shape, device: torch.device, solver: str | None, nfe: int | None,
                  batch_sizes: Sequence[int] = (16, 64, 256), repeats: int = 3,
                  classes: Sequence[int] | None = None, **opts) -> dict:
    """``classes`` (a conditional model's) are asked for in turn, and ``opts`` (e.g. ``guidance``) are those of
    the samples scored, so that a guided model's speed includes its second evaluation."""
    def run(bs: int, seed: int) -> int:
        seeds = list(range(seed, seed + bs))
        labels = seed_labels(seeds, classes) if classes else None
        return generate(method, nets, latent_shape, seeds, device, bs, solver, nfe, bitwise=False, labels=labels,
                        **opts)[1]

    nfe = run(1, 10**6)  # warm-up
    latency = statistics.median(_timed(lambda r=r: run(1, 10**6 + r), device) for r in range(repeats))
    throughput = {}
    for bs in batch_sizes:
        run(bs, 2 * 10**6)  # warm-up at this size
        throughput[bs] = bs / _timed(lambda bs=bs: run(bs, 3 * 10**6), device)
    best = max(throughput, key=throughput.get)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    return {"nfe": nfe, "latency_s": latency, "images_per_s": throughput[best], "best_batch_size": best,
            "images_per_s_by_batch": {str(k): v for k, v in throughput.items()}, "device": name}
