"""Image folders: every PNG/JPEG below a root, as uint8 ``N x C x S x S``.

Files are found recursively and sorted by relative path (so the order, and the fingerprint,
do not depend on the file system). Each image is converted to RGB or greyscale, resized so
that its shorter side is ``img_size`` and centre-cropped to a square (the usual
``Resize(s)`` + ``CenterCrop(s)`` of torchvision, as in the PyTorch DCGAN example).
If every image lives in a first-level sub-folder, the sub-folder names become class labels.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from genbench.data.base import InMemoryData
from genbench.errors import GenbenchError
from genbench.limits import DATASET_BYTES, FOLDER_IMAGES, IMAGE_PIXELS, check_count, check_memory, show_bytes

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def list_images(root: Path) -> list[Path]:
    """Image files below ``root``, sorted by relative path."""
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


_PIXELS_FIX = ("shrink the image or move it out of the data folder; "
               f"{IMAGE_PIXELS.raise_hint()} (PIL's own limit: Image.MAX_IMAGE_PIXELS)")


def check_image_pixels(path: Path, width: int, height: int) -> None:
    """Refuse an image whose header declares more than :data:`genbench.limits.IMAGE_PIXELS` pixels."""
    if width * height > IMAGE_PIXELS.value:
        raise GenbenchError(f"image '{path}' is {width}x{height} = {width * height:,} pixels, above the limit of "
                            f"{IMAGE_PIXELS.show()} for one image ({IMAGE_PIXELS.reason})", _PIXELS_FIX)


def _load_one(path: Path, size: int, mode: str) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            # PIL warns above IMAGE_PIXELS and raises at twice that; both are refused in one line here
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                check_image_pixels(path, *img.size)   # the header's size, before decoding
                img.load()   # decode now, so a truncated file fails here and is named
                img = img.convert(mode)
    except Image.DecompressionBombError as err:   # PIL's own limit, met before ours can be checked
        raise GenbenchError(f"image '{path}' is refused: {err}", _PIXELS_FIX) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise GenbenchError(
            f"cannot read image '{path}' ({type(err).__name__}: {err})",
            "delete or replace the file, or move it out of the data folder",
        ) from None
    w, h = img.size
    scale = size / min(w, h)
    # round, but never below the target, so the centre crop always fits
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def load_folder(root: str | Path | None, img_size: int | None, channels: int) -> InMemoryData:
    """Read every image below ``root``; ``channels`` 3 = RGB, 1 = greyscale (``L``)."""
    if root is None:
        raise GenbenchError("dataset 'folder' needs a folder", "set data.root (or --data-dir) to a folder of images")
    if img_size is None:
        raise GenbenchError(
            "dataset 'folder' needs an image size", "set data.img_size, e.g. data.img_size=64"
        )
    root = Path(root).expanduser()
    if not root.is_dir():
        raise GenbenchError(f"image folder '{root}' does not exist", "set data.root to a folder of PNG/JPEG images")
    files = list_images(root)
    if not files:
        others = sum(1 for p in root.rglob("*") if p.is_file())
        what = f"only {others} non-image files" if others else "no files"
        raise GenbenchError(
            f"image folder '{root}' has {what}; expected .png/.jpg/.jpeg",
            "put PNG or JPEG images in it (sub-folders are searched too)",
        )
    mode = "RGB" if channels == 3 else "L"
    _check_size(root, len(files), channels, img_size)
    x = np.empty((len(files), channels, img_size, img_size), dtype=np.uint8)
    for i, path in enumerate(files):
        x[i] = _load_one(path, img_size, mode)
    y, class_names = _labels(root, files)
    return InMemoryData(
        x=torch.from_numpy(x),
        y=y,
        kind="image",
        name="folder",
        class_names=class_names,
        source=str(root),
        verified=False,
    )


def _check_size(root: Path, n: int, channels: int, img_size: int) -> None:
    """Refuse a folder whose images, once resized, would not fit the limits or the memory available."""
    fix = "use fewer images or a smaller data.img_size"
    check_count(n, FOLDER_IMAGES, f"image folder '{root}'", fix)
    need = n * channels * img_size * img_size
    what = f"image folder '{root}' ({n:,} images of {channels}x{img_size}x{img_size})"
    if need > DATASET_BYTES.value:
        raise GenbenchError(f"{what} would hold {show_bytes(need)} in memory, above the limit of "
                            f"{DATASET_BYTES.show()} ({DATASET_BYTES.reason})", f"{fix}; {DATASET_BYTES.raise_hint()}")
    check_memory(need, what, fix)


def _labels(root: Path, files: list[Path]) -> tuple[torch.Tensor | None, list[str] | None]:
    parts = [p.relative_to(root).parts for p in files]
    if any(len(p) < 2 for p in parts):
        return None, None    # some images sit at the top level: no class structure
    class_names = sorted({p[0] for p in parts})
    index = {name: i for i, name in enumerate(class_names)}
    return torch.tensor([index[p[0]] for p in parts], dtype=torch.int64), class_names
