"""Pictures of samples: image grids (PNG) and scatter plots for 2-D data."""

from __future__ import annotations

import math
from pathlib import Path

from torch import Tensor

SOFTWARE = "genbench"   # the PNG tEXt "Software" of every picture genbench writes


def written_by_genbench(path: Path) -> bool:
    """Whether ``path`` is a sample file genbench wrote: a PNG carrying its Software tag, or an
    .npz holding its ``samples`` and ``seeds`` arrays."""
    import zipfile

    try:
        if path.suffix == ".png":
            from PIL import Image

            with Image.open(path) as img:
                return img.format == "PNG" and img.text.get("Software", "").startswith(SOFTWARE)
        if path.suffix == ".npz":
            with zipfile.ZipFile(path) as z:
                return {"samples.npy", "seeds.npy"} <= set(z.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False
    return False


def save_image_grid(x: Tensor, path: Path, nrow: int | None = None) -> None:
    """Save a batch in model range [-1, 1] as one PNG grid."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo
    from torchvision.utils import make_grid

    from genbench.data.transforms import to_uint8

    nrow = nrow or max(1, int(math.ceil(math.sqrt(len(x)))))
    grid = make_grid(to_uint8(x.cpu()), nrow=nrow, padding=2, pad_value=255)
    arr = grid.permute(1, 2, 0).numpy()
    info = PngInfo()
    info.add_text("Software", SOFTWARE)   # what lets --overwrite tell genbench's pictures from a user's
    Image.fromarray(arr.squeeze(-1) if arr.shape[-1] == 1 else arr).save(path, pnginfo=info)


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
    fig.savefig(path, metadata={"Software": SOFTWARE})
    plt.close(fig)
