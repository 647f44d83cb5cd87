"""2-D mixtures of Gaussians used to study mode coverage.

* ``ring``: 8 Gaussians with means on a circle of radius 2 and std 0.02
  (Metz et al. 2017, "Unrolled Generative Adversarial Networks"; also VEEGAN,
  Srivastava et al. 2017).
* ``grid``: 25 Gaussians at ``(-4 + 2i, -4 + 2j)``, ``i, j in 0..4``, std 0.05
  (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018).

Each point picks its mode uniformly at random, as in those papers.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genbench.config import TOY_SETS
from genbench.errors import GenbenchError

_DEFAULT_STD = {"ring": 0.02, "grid": 0.05}
# the fixed training set is drawn from this seed, so a dataset is the same for every run
TOY_DATA_SEED = 20170101


def _check(name: str) -> None:
    if name not in TOY_SETS:
        raise GenbenchError(f"unknown 2-D dataset '{name}'", f"choose one of {', '.join(TOY_SETS)}")


def mode_centers(name: str) -> Tensor:
    """Mode means, float32 ``K x 2`` (K = 8 for ring, 25 for grid)."""
    _check(name)
    if name == "ring":
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return (2.0 * torch.stack([angles.cos(), angles.sin()], dim=1)).float()
    steps = -4.0 + 2.0 * torch.arange(5, dtype=torch.float64)
    gx, gy = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).float()


def default_std(name: str) -> float:
    _check(name)
    return _DEFAULT_STD[name]


def sample_toy(
    name: str, n: int, std: float | None = None, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """``n`` points (float32 ``n x 2``) and their mode labels (int64)."""
    centers = mode_centers(name)
    std = default_std(name) if std is None else float(std)
    labels = torch.randint(len(centers), (n,), generator=generator)
    noise = torch.randn(n, 2, generator=generator)
    return centers[labels] + std * noise, labels


def fixed_toy_set(name: str, n: int, std: float | None = None) -> tuple[Tensor, Tensor]:
    """The training set of a 2-D dataset: the same points for every run with the same n and std."""
    gen = torch.Generator().manual_seed(TOY_DATA_SEED)
    return sample_toy(name, n, std, gen)
