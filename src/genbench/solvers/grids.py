"""Time grids, each built by its own function so that one grid can feed any solver."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor


def ddpm_timesteps(T: int, n: int, spacing: Literal["trailing", "leading", "linspace"] = "trailing") -> Tensor:
    """n of the T discrete DDPM step indices (0-based, descending), i.e. t = (i+1)/T.

    Spacing conventions, made explicit (Lin et al. 2024, Table 2):
    * ``trailing``: i = round(T - k T/n) - 1 for k = 0..n-1 — always starts at the last step T-1;
    * ``leading``:  i = k (T // n) for k = n-1..0 (DDIM's and diffusers' default) — skips the
      last T // n - 1 steps, so it starts below pure noise;
    * ``linspace``: i = round(linspace(0, T-1, n)).
    """
    if not 1 <= n <= T:
        raise ValueError(f"need 1 <= n <= T, got n={n}, T={T}")
    if spacing == "trailing":
        idx = torch.round(torch.arange(T, 0, -T / n, dtype=torch.float64)).long() - 1
    elif spacing == "leading":
        idx = (torch.arange(n, dtype=torch.long) * (T // n)).flip(0)
    elif spacing == "linspace":
        idx = torch.round(torch.linspace(0, T - 1, n, dtype=torch.float64)).long().flip(0)
    else:
        raise ValueError(f"unknown spacing {spacing!r}")
    return idx[:n]


def uniform_t(n: int, t_start: float = 1.0, t_end: float = 0.0) -> Tensor:
    """n steps uniform in t from t_start down to t_end: n + 1 points."""
    return torch.linspace(t_start, t_end, n + 1, dtype=torch.float64)
