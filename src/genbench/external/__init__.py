"""Samples and models made outside genbench, scored under genbench's protocol.

``genbench eval PATH`` accepts, beside a run directory:

- a folder of PNG/JPEG images or an ``.npy``/``.npz`` array of samples (:mod:`.samples`);
- a local diffusers pipeline folder (``save_pretrained``: ``unet/`` + ``scheduler/``), sampled by
  genbench's own solvers through :mod:`.diffusers`;
- a folder written by ``genbench export`` (:mod:`genbench.export`), loaded back as a model.

:func:`detect` says which one a path is. What is scored goes into an *entry folder* (``--out``):
``entry.json`` (what was scored and how it was read), ``eval/*.json`` and ``samples/grid-*.png``,
so that ``genbench compare`` reads it beside run directories (:mod:`genbench.report.collect`).
"""

from __future__ import annotations

from pathlib import Path

from genbench.errors import GenbenchError

# (C, H, W) of the datasets external samples can be compared with: the sets genbench has a reference for
DATASET_SHAPES: dict[str, tuple[int, int, int]] = {
    "fashion_mnist": (1, 28, 28), "mnist": (1, 28, 28), "cifar10": (3, 32, 32),
    "stacked_fashion_mnist": (3, 28, 28),
}
ENTRY_FILE = "entry.json"          # marks a folder made by `genbench eval` for an external entry
EXPORT_MARKER = "genbench_export.json"   # marks a folder made by `genbench export`
ARRAY_SUFFIXES = (".npy", ".npz")


def detect(path: Path) -> str:
    """``"run"``, ``"entry"``, ``"export"``, ``"diffusers"``, ``"array"`` or ``"folder"`` (of images);
    refused in one line when the path is none of them."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() in ARRAY_SUFFIXES:
            return "array"
        raise GenbenchError(f"{path} is a file genbench cannot score (not .npy or .npz)",
                            "give a run directory, a folder of PNG/JPEG samples, an .npy/.npz array of samples, "
                            "or a diffusers pipeline folder")
    if not path.is_dir():
        raise GenbenchError(f"{path} is not a genbench run, nor samples or a model: it does not exist",
                            "check the path")
    if (path / ENTRY_FILE).is_file():
        return "entry"
    if (path / EXPORT_MARKER).is_file():
        return "export"
    if (path / "config.yaml").is_file():
        return "run"
    if (path / "model_index.json").is_file() or (path / "unet" / "config.json").is_file():
        return "diffusers"
    return "folder"


def dataset_shape(dataset: str | None, where: str) -> tuple[int, int, int]:
    """The (C, H, W) of ``dataset``, refused when missing or unknown."""
    if dataset is None:
        raise GenbenchError(f"{where}: samples from outside genbench need the dataset they are compared with",
                            f"add --dataset, one of {', '.join(DATASET_SHAPES)}")
    if dataset not in DATASET_SHAPES:
        raise GenbenchError(f"--dataset {dataset!r} is not a dataset genbench can score against",
                            f"choose one of {', '.join(DATASET_SHAPES)}")
    return DATASET_SHAPES[dataset]
