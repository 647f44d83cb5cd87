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


def timestep_embedding(t: torch.Tensor, dim: int, scale: float = TIME_SCALE) -> torch.Tensor:
    """Embed continuous times ``t`` (shape (N,), in [0, 1]) into (N, dim) sinusoidal features of
    ``scale * t``.

    Computed in float32 whatever the autocast dtype (float64 for float64 t): ``sin(1000 t)`` in
    bfloat16 would lose the phase of the high frequencies entirely.
    """
    if dim < 2:
        raise ValueError(f"embedding dim must be at least 2, got {dim}")
    half = dim // 2
    dtype = torch.float64 if t.dtype == torch.float64 else torch.float32   # float64 stays exact (tests, JVPs)
    steps = t.to(dtype) * scale
    # max(..., 1) keeps a one-frequency embedding defined (Ho et al. divide by half - 1).
    exponent = -math.log(10000.0) / max(half - 1, 1)
    freqs = torch.exp(torch.arange(half, device=t.device, dtype=dtype) * exponent)
    args = steps[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2:  # odd widths get a zero column, as in the DDPM code
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb


class IntervalEmbedding(torch.nn.Module):
    """MeanFlow's second time (Geng et al. 2025, Sec. 4.3: the network conditions on (t, t - r)): the
    interval t - r embedded like t and mapped by a two-layer MLP whose last layer starts at zero, so a
    net with it computes at first exactly what the one-time net does (and can be loaded from one).

    Why ``time_scale`` matters here: the MeanFlow target contains the total derivative du/dt, and
    d/dt sin(scale t f) is scale f cos(.); with DDPM's scale 1000 a young network's du/dt is in the
    thousands (docs/ARCHITECTURE.md). The nets take ``time_scale`` from their config.
    """

    def __init__(self, dim_in: int, dim_out: int, scale: float):
        super().__init__()
        self.dim_in, self.scale = dim_in, scale
        self.mlp = torch.nn.Sequential(torch.nn.Linear(dim_in, dim_out), torch.nn.SiLU(),
                                       torch.nn.Linear(dim_out, dim_out))
        torch.nn.init.zeros_(self.mlp[2].weight)
        torch.nn.init.zeros_(self.mlp[2].bias)

    def forward(self, t: torch.Tensor, r: torch.Tensor | float | None) -> torch.Tensor:
        """The embedding of t - r (r = None: r = t, an interval of zero, the instantaneous velocity)."""
        h = torch.zeros_like(t) if r is None else t - as_time(r, t.shape[0], t.device)
        return self.mlp(timestep_embedding(h, self.dim_in, self.scale).to(self.mlp[0].weight.dtype))


def refuse_second_time(r) -> None:
    if r is not None:
        raise ValueError("this network has one time: build it with second_time=true to pass r")
