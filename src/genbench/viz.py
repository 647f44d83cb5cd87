"""Pictures of samples: image grids (PNG) and scatter plots for 2-D data."""

from __future__ import annotations

import math
from pathlib import Path

from torch import Tensor


def save_image_grid(x: Tensor, path: Path, nrow: int | None = None) -> None:
    """Save a batch in model range [-1, 1] as one PNG grid."""
    from PIL import Image
    from torchvision.utils import make_grid

    from genbench.data.transforms import to_uint8

    nrow = nrow or max(1, int(math.ceil(math.sqrt(len(x)))))
    grid = make_grid(to_uint8(x.cpu()), nrow=nrow, padding=2, pad_value=255)
    arr = grid.permute(1, 2, 0).numpy()
    Image.fromarray(arr.squeeze(-1) if arr.shape[-1] == 1 else arr).save(path)


def save_points_plot(points: Tensor, path: Path, real: Tensor | None = None, title: str = "") -> None:
    """Scatter of 2-D samples (blue) over the real data (grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    if real is not None:
        ax.scatter(real[:, 0], real[:, 1], s=2, c="0.7", label="data")
    p = points.cpu()
    ax.scatter(p[:, 0], p[:, 1], s=2, c="tab:blue", label="samples")
    lim = 1.25 * float(max(real.abs().max() if real is not None else 0, 1.0))
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
