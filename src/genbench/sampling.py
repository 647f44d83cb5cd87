"""Generate samples from any method with per-sample seeds, in batches."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genbench.noise import SeededNoise

# CPU kernels pick their blocking by batch size (MKL sgemm by row count, oneDNN's transposed
# convolutions by batch), which changes the low bits of a sample with its batch-mates. Padding
# every CPU batch to a multiple of PAD_TO rows and using the native convolutions makes a seed's
# sample bitwise the same whatever the batch size.
PAD_TO = 16


def generate(method, nets: dict[str, nn.Module], latent_shape: Sequence[int], seeds: Sequence[int],
             device: torch.device, batch_size: int = 256, solver: str | None = None,
             nfe: int | None = None, bitwise: bool = True, **opts) -> tuple[Tensor, int]:
    """Samples for ``seeds`` (model range, on the CPU) and the NFE per sample.

    Sample k depends only on seeds[k]: its initial and per-step noise come from its own stream
    (as EDM's generate script does). With ``bitwise`` (CPU only) it is also bitwise independent of
    the batch size; timing code passes ``bitwise=False`` to measure the plain batch.
    """
    device = torch.device(device)
    pad = bitwise and device.type == "cpu"
    out, used = [], 0
    for start in range(0, len(seeds), batch_size):
        chunk = list(seeds[start:start + batch_size])
        n = len(chunk)
        if pad and n % PAD_TO:
            chunk += [-1 - k for k in range(PAD_TO - n % PAD_TO)]  # dummy streams, dropped below
        noise = SeededNoise(chunk, device)
        x_init = noise.randn(latent_shape)
        was = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = was and not pad
        try:
            result = method.sample(nets, x_init, solver=solver, nfe=nfe, noise=noise.randn_like, **opts)
        finally:
            torch.backends.mkldnn.enabled = was
        out.append(result.x[:n].float().cpu())
        used = result.nfe
    return torch.cat(out), used
