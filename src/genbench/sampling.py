"""Generate samples from any method with per-sample seeds, in batches."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genbench.noise import SeededNoise


def generate(method, nets: dict[str, nn.Module], latent_shape: Sequence[int], seeds: Sequence[int],
             device: torch.device, batch_size: int = 256, solver: str | None = None,
             nfe: int | None = None, **opts) -> tuple[Tensor, int]:
    """Samples for ``seeds`` (model range, on the CPU) and the NFE per sample.

    Sample k depends only on seeds[k]: its initial and per-step noise come from its own stream.
    """
    out, used = [], 0
    for start in range(0, len(seeds), batch_size):
        noise = SeededNoise(seeds[start:start + batch_size], device)
        x_init = noise.randn(latent_shape)
        result = method.sample(nets, x_init, solver=solver, nfe=nfe, noise=noise.randn_like, **opts)
        out.append(result.x.float().cpu())
        used = result.nfe
    return torch.cat(out), used
