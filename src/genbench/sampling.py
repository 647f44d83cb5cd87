"""Generate samples from any method with per-sample seeds, in batches."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genbench.noise import SeededNoise


def generate(method, nets: dict[str, nn.Module], latent_shape: Sequence[int], seeds: Sequence[int],
             device: torch.device, batch_size: int = 256, sampler: str | None = None,
             steps: int | None = None) -> tuple[Tensor, int]:
    """Samples for ``seeds`` (model range, on the CPU) and the NFE per sample.

    Sample k depends only on seeds[k]: its initial and per-step noise come from its own stream.
    """
    out, nfe = [], 0
    for start in range(0, len(seeds), batch_size):
        noise = SeededNoise(seeds[start:start + batch_size], device)
        x_init = noise.randn(latent_shape)
        result = method.sample(nets, x_init, sampler=sampler, steps=steps, noise=noise.randn_like)
        out.append(result.x.float().cpu())
        nfe = result.nfe
    return torch.cat(out), nfe
