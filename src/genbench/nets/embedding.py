"""Sinusoidal embedding of continuous time, shared by the UNet and the 2-D MLP.

The embedding follows the Transformer position encoding (Vaswani et al. 2017, §3.5) in the
form the DDPM code uses it for timesteps (Ho et al. 2020, Appendix B): ``dim // 2`` geometric
frequencies from 1 down to 1/10000, sines first then cosines.
"""

from __future__ import annotations

import math

import torch

# Continuous t in [0, 1] is scaled to DDPM's integer-timestep range so that the embedding has
# the same frequencies as Ho et al.'s model with T = 1000.
TIME_SCALE = 1000.0


def as_time(t: torch.Tensor | float | None, n: int, device: torch.device) -> torch.Tensor:
    """Return ``t`` as a float32 tensor of shape (n,), broadcasting a scalar; refuse None."""
    if t is None:
        raise ValueError("this network is time-conditioned: pass t, a float tensor of shape (N,)")
    t = torch.as_tensor(t, device=device)
    if t.ndim == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise ValueError(f"t must have shape ({n},) to match the batch, got {tuple(t.shape)}")
    return t


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Embed continuous times ``t`` (shape (N,), in [0, 1]) into (N, dim) sinusoidal features.

    Computed in float32 whatever the autocast dtype: ``sin(1000 t)`` in bfloat16 would lose
    the phase of the high frequencies entirely.
    """
    if dim < 2:
        raise ValueError(f"embedding dim must be at least 2, got {dim}")
    half = dim // 2
    steps = t.float() * TIME_SCALE
    # max(..., 1) keeps a one-frequency embedding defined (Ho et al. divide by half - 1).
    exponent = -math.log(10000.0) / max(half - 1, 1)
    freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * exponent)
    args = steps[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2:  # odd widths get a zero column, as in the DDPM code
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb
