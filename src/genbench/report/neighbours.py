"""Does a model copy its training data? Nearest training images (pixel L2) of a few fixed-seed samples.

The samples are the tiles of the run's last fixed-seed grid (``samples/grid-*.png``, written by
``viz.save_image_grid``: padding 2, ``ceil(sqrt(n))`` per row), so no checkpoint is needed. The
copy ratio compares the samples' nearest-neighbour distances with those of held-out test images:
a ratio far below 1 means samples sit closer to training images than real unseen images do.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import numpy as np

from genbench.errors import GenbenchError
from genbench.limits import GRID_FILE_BYTES, IMAGE_PIXELS, check_count, read_bytes

PAD = 2
N_STATS = 16      # samples used for the copy ratio
N_SHOWN = 4       # samples shown with their neighbours
K = 3             # neighbours shown per sample


def grid_tiles(path: Path, shape: tuple[int, int, int], n: int, n_grid: int) -> np.ndarray:
    """The first ``n`` tiles (uint8, N×H×W or N×H×W×C) of a grid of ``n_grid`` images of ``shape`` (C, H, W)."""
    from PIL import Image

    c, h, w = shape
    fix = "delete the grid (the report then shows no samples of this run), or add --no-neighbours"
    data = read_bytes(path, GRID_FILE_BYTES, "sample grid", fix)
    try:
        with warnings.catch_warnings():   # PIL warns above its pixel limit; refused below instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                check_count(img.width * img.height, IMAGE_PIXELS, f"sample grid '{path}'", fix)
                arr = np.asarray(img)
    except (Image.DecompressionBombError, OSError, ValueError, SyntaxError) as err:
        raise GenbenchError(f"cannot read sample grid '{path}' ({type(err).__name__}: {err})", fix) from None
    if arr.ndim == 3 and c == 1:
        arr = arr[..., 0]
    nrow = max(1, int(math.ceil(math.sqrt(n_grid))))
    tiles = []
    for k in range(min(n, n_grid)):
        r, col = divmod(k, nrow)
        y0, x0 = PAD + r * (h + PAD), PAD + col * (w + PAD)
        tile = arr[y0:y0 + h, x0:x0 + w]
        if tile.shape[:2] != (h, w):
            break
        tiles.append(tile)
    return np.stack(tiles) if tiles else np.zeros((0, h, w), np.uint8)


def _flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1).astype(np.float32)


def nearest(queries: np.ndarray, train: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and L2 distances (pixel units) of the k nearest training images, chunked."""
    q = _flat(queries)
    best_d = np.full((len(q), k), np.inf, np.float32)
    best_i = np.zeros((len(q), k), np.int64)
    qq = (q ** 2).sum(1, keepdims=True)
    for start in range(0, len(train), 10_000):
        t = _flat(train[start:start + 10_000])
        d = qq - 2 * q @ t.T + (t ** 2).sum(1)[None]
        cand_d = np.concatenate([best_d, d], 1)
        cand_i = np.concatenate([best_i, np.arange(start, start + len(t))[None].repeat(len(q), 0)], 1)
        order = np.argsort(cand_d, 1)[:, :k]
        best_d = np.take_along_axis(cand_d, order, 1)
        best_i = np.take_along_axis(cand_i, order, 1)
    return best_i, np.sqrt(np.maximum(best_d, 0))


def _images(data) -> np.ndarray:
    x = data.x.numpy()
    return x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1)


def neighbours_for(runs_by_label: dict[str, object]) -> tuple[list[dict], dict[str, float], str | None]:
    """Figure rows, {label: copy ratio}, and a note when it could not be done (no data, 2-D sets)."""
    from genbench.config import DataConfig
    from genbench.data import load_dataset

    first = next(iter(runs_by_label.values()))
    if first.data_kind != "image":
        return [], {}, None
    try:
        dcfg = DataConfig.model_validate({**(first.config.get("data") or {}), "download": False})
        train = _images(load_dataset(dcfg))
        test = _images(load_dataset(dcfg.model_copy(update={"split": "test"})))
    except Exception as err:  # the report is still useful without this section
        return [], {}, f"nearest training images left out: the training data could not be loaded ({err})"
    _, test_d = nearest(test[:N_STATS * 4], train, 1)
    test_median = float(np.median(test_d[:, 0]))
    rows, ratios = [], {}
    for label, run in runs_by_label.items():
        if not run.grids:
            continue
        shape = tuple((run.info.get("data") or {}).get("shape") or (1, 28, 28))
        n_grid = int((run.config.get("train") or {}).get("grid_n", 64))
        tiles = grid_tiles(run.grids[-1], shape, N_STATS, n_grid)
        if not len(tiles):
            continue
        idx, dist = nearest(tiles, train, K)
        ratios[label] = float(np.median(dist[:, 0])) / max(test_median, 1e-9)
        for s in range(min(N_SHOWN, len(tiles))):
            rows.append({"label": label, "sample": tiles[s],
                         "neighbours": [(train[idx[s, j]], float(dist[s, j])) for j in range(K)]})
    return rows, ratios, None
