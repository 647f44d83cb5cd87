"""Read samples made elsewhere: a folder of PNG/JPEG images, or an ``.npy``/``.npz`` array.

The result is uint8 ``N x C x H x W`` in the dataset's shape, and one sentence saying how the input
was read (layout, value range, order), recorded with the evaluation. Nothing is resized or guessed
silently: a layout or value range that cannot be told apart is refused with the reason, and
``value_range`` ("signed" [-1, 1], "unit" [0, 1], "bytes" 0..255) settles it.

Rules for arrays (``.npz``: its one array, or the one named ``samples``, ``images`` or ``x``):
- layout: ``N x C x H x W`` or ``N x H x W x C`` matched against the dataset's (C, H, W); for a
  greyscale dataset also ``N x H x W``; 3 equal channels are read as greyscale (torchvision's
  ``save_image`` writes greyscale samples so);
- values: uint8 as they are; other integer types if within 0..255; floats with a negative value
  as [-1, 1], floats in [0, 1] as [0, 1], refused when every value lies in [0.5, 1] (or all are
  equal: either reading is plausible), above 1 (unless ``value_range="bytes"``), or not finite.
Images in a folder (recursively, sorted by relative path, as :mod:`genbench.data.folder`) must all
have one size and mode; files that are not .png/.jpg/.jpeg are left out and counted in the statement.
"""

from __future__ import annotations

import hashlib
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from genbench.errors import GenbenchError
from genbench.limits import (
    FOLDER_IMAGES,
    SAMPLE_ARRAY_BYTES,
    check_count,
    check_file,
    check_memory,
    show_bytes,
)

VALUE_RANGES = ("auto", "signed", "unit", "bytes")
RANGE_TEXT = {"signed": "floats in [-1, 1]", "unit": "floats in [0, 1]", "bytes": "values 0..255"}
TOL = 1e-3                  # floats this far outside their range are clamped, farther ones refused
ARRAY_KEYS = ("samples", "images", "x")   # the array of an .npz with several, in this order
RANGE_FIX = "say how to read the values: --value-range signed ([-1, 1]), unit ([0, 1]) or bytes (0..255)"


@dataclass
class Samples:
    """Samples read from outside genbench, as the protocol scores them."""

    images: Tensor          # uint8 N x C x H x W
    source: str             # the path read
    kind: str               # "folder" | "array"
    statement: str          # how the input was read, for the record
    fingerprint: str        # sha256 of the uint8 images (shape and bytes)


def standard_layout(images: Tensor) -> Tensor:
    """A copy with the standard N x C x H x W strides: a transposed N x H x W x 1 array counts as contiguous
    but keeps its strides, and convolution kernels chosen by layout would round the features differently."""
    return images.clone(memory_format=torch.contiguous_format)


def fingerprint(images: Tensor) -> str:
    h = hashlib.sha256(f"{tuple(images.shape)};".encode())
    h.update(images.contiguous().numpy().tobytes())
    return h.hexdigest()


def load_samples(path: Path, shape: tuple[int, int, int], value_range: str = "auto") -> Samples:
    """The samples at ``path`` (folder or array) as uint8 images of ``shape`` (C, H, W)."""
    path = Path(path)
    if value_range not in VALUE_RANGES:
        raise GenbenchError(f"unknown --value-range {value_range!r}", f"choose one of {', '.join(VALUE_RANGES)}")
    if path.is_dir():
        if value_range != "auto":
            raise GenbenchError("--value-range applies to .npy/.npz arrays; image files are 8-bit",
                                "drop --value-range for a folder of images")
        images, statement = read_folder(path, shape)
        kind = "folder"
    else:
        arr, what = read_array(path)
        images, statement = array_to_images(arr, shape, value_range, what)
        kind = "array"
    return Samples(images, str(path), kind, statement, fingerprint(images))


# ------------------------------------------------------------------------------------------ arrays

ARRAY_FIX = "save the samples with numpy.save / numpy.savez (one plain numeric array, no pickled objects)"


def _header(stream, where: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from an .npy header, read before any data."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(stream)
        else:
            raise ValueError(f"format version {version}")
    except (ValueError, OSError, SyntaxError) as err:
        raise GenbenchError(f"{where} is not a readable .npy array ({' '.join(str(err).split())[:80]})",
                            ARRAY_FIX) from None
    if dtype.hasobject or dtype.kind not in "uif" or dtype.fields is not None:
        raise GenbenchError(f"{where} holds {dtype} values, not numbers", ARRAY_FIX)
    return tuple(int(s) for s in shape), dtype


def _check_declared(shape: tuple[int, ...], dtype: np.dtype, where: str) -> None:
    nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if nbytes > SAMPLE_ARRAY_BYTES.value:
        raise GenbenchError(f"{where} declares {shape} {dtype} = {show_bytes(nbytes)}, above the limit of "
                            f"{SAMPLE_ARRAY_BYTES.show()} ({SAMPLE_ARRAY_BYTES.reason})",
                            SAMPLE_ARRAY_BYTES.fix("score fewer samples"))
    # the array, and its uint8 images
    check_memory(nbytes + nbytes // dtype.itemsize, f"{where} ({shape} {dtype})", "score fewer samples at once")


def read_array(path: Path) -> tuple[np.ndarray, str]:
    """The one numeric array of an .npy or .npz, its declared size checked before it is read."""
    check_file(path, SAMPLE_ARRAY_BYTES, "sample array", "score fewer samples")
    if path.suffix.lower() == ".npy":
        with open(path, "rb") as f:
            shape, dtype = _header(f, str(path))
        _check_declared(shape, dtype, str(path))
        try:
            return np.load(path, allow_pickle=False), f"{path.name}"
        except (OSError, ValueError, EOFError) as err:   # e.g. data cut short after a valid header
            raise GenbenchError(f"{path} is not a readable .npy array ({type(err).__name__}: "
                                f"{' '.join(str(err).split())[:80]})", ARRAY_FIX) from None
    try:
        with zipfile.ZipFile(path) as z:
            members = [i for i in z.infolist() if i.filename.endswith(".npy")]
            names = [m.filename[:-4] for m in members]
            if not members:
                raise GenbenchError(f"{path} holds no arrays", ARRAY_FIX)
            chosen = (members[0] if len(members) == 1 else
                      next((m for k in ARRAY_KEYS for m in members if m.filename[:-4] == k), None))
            if chosen is None:
                raise GenbenchError(f"{path} holds several arrays ({', '.join(names)}) and none is named "
                                    f"{', '.join(ARRAY_KEYS)}: which are the samples is ambiguous",
                                    "save only the samples, or name their array 'samples'")
            where = f"{path}[{chosen.filename[:-4]}]"
            if chosen.file_size > SAMPLE_ARRAY_BYTES.value:   # the declared uncompressed size bounds the read
                raise GenbenchError(f"{where} unpacks to {show_bytes(chosen.file_size)}, above the limit of "
                                    f"{SAMPLE_ARRAY_BYTES.show()} ({SAMPLE_ARRAY_BYTES.reason})",
                                    SAMPLE_ARRAY_BYTES.fix("score fewer samples"))
            with z.open(chosen) as f:
                shape, dtype = _header(f, where)
            _check_declared(shape, dtype, where)
            with z.open(chosen) as f:
                arr = np.lib.format.read_array(f, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise GenbenchError(f"{path} is not a readable .npz ({type(err).__name__}: "
                            f"{' '.join(str(err).split())[:80]})", ARRAY_FIX) from None
    return arr, f"{path.name}[{chosen.filename[:-4]}]"


def _layout(arr: np.ndarray, shape: tuple[int, int, int], where: str) -> tuple[np.ndarray, str]:
    """``arr`` as N x C' x H x W (C' = C, or 3 for a greyscale set) and the layout it was read in."""
    c, h, w = shape
    want = f"{c}x{h}x{w}"
    if arr.ndim == 3 and c == 1 and arr.shape[1:] != (h, w):
        raise GenbenchError(f"{where} holds images of shape {arr.shape[1:]}, the dataset's are {h}x{w}; genbench "
                            "does not resize samples before scoring", f"give samples of {want}")
    if arr.ndim == 3 and arr.shape[1:] == (h, w):
        if c != 1:
            raise GenbenchError(f"{where} is N x H x W {arr.shape}: greyscale, but the dataset's images have {c} "
                                "channels (wrong channel count)", f"give samples of {want} (N x C x H x W or N x H x W x C)")
        return arr[:, None], "N x H x W (greyscale)"
    if arr.ndim != 4:
        raise GenbenchError(f"{where} has shape {arr.shape}: samples must be N x C x H x W or N x H x W x C",
                            f"give an array of images of {want}")
    chans = (c, 3) if c == 1 else (c,)
    nchw = [k for k in chans if arr.shape[1:] == (k, h, w)]
    nhwc = [k for k in chans if arr.shape[1:] == (h, w, k)]
    if nchw and nhwc:
        raise GenbenchError(f"{where} has shape {arr.shape}: N x C x H x W and N x H x W x C cannot be told apart",
                            "give the array with distinct channel and image sizes")
    if nchw:
        return arr, "N x C x H x W"
    if nhwc:
        return arr.transpose(0, 3, 1, 2), "N x H x W x C"
    if arr.shape[2:] == (h, w) or arr.shape[1:3] == (h, w):
        got = arr.shape[1] if arr.shape[2:] == (h, w) else arr.shape[3]
        raise GenbenchError(f"{where} has {got} channels per image {arr.shape}, the dataset {c} "
                            "(wrong channel count)", f"give samples of {want}")
    raise GenbenchError(f"{where} holds images of shape {arr.shape[1:]}, the dataset's are {want} "
                        "(C x H x W or H x W x C); genbench does not resize samples before scoring",
                        f"give samples of {want}")


def _grey(images: Tensor, want_c: int, where: str) -> tuple[Tensor, str]:
    """3 equal channels read as greyscale when the dataset is greyscale; anything else refused."""
    if images.shape[1] == want_c:
        return images, ""
    if want_c == 1 and images.shape[1] == 3:
        if bool((images[:, :1] == images[:, 1:]).all()):
            return images[:, :1].contiguous(), ", 3 equal channels read as greyscale"
        raise GenbenchError(f"{where}: colour images (3 channels that differ), but the dataset is greyscale "
                            "(wrong channel count)", "give greyscale samples (1 channel)")
    raise GenbenchError(f"{where}: {images.shape[1]} channels per image, the dataset {want_c} (wrong channel count)",
                        f"give samples with {want_c} channel(s)")


def _range(arr: np.ndarray, value_range: str, where: str) -> str:
    """Which range the values are in (signed / unit / bytes), detected or checked."""
    kind = arr.dtype.kind
    if arr.size == 0:
        raise GenbenchError(f"{where} holds no samples", "give at least a few samples")
    if kind == "f" and not np.isfinite(arr).all():
        raise GenbenchError(f"{where} holds NaN or infinite values", "give finite samples")
    lo, hi = float(arr.min()), float(arr.max())
    if value_range == "auto":
        if kind in "ui":
            value_range = "bytes"
        elif lo < 0:
            value_range = "signed"
        elif hi > 1 + TOL:
            raise GenbenchError(f"{where}: floats from {lo:.4g} to {hi:.4g} are neither in [-1, 1] nor in [0, 1]",
                                "if they are 8-bit levels 0..255 add --value-range bytes (or save them as uint8)")
        elif lo >= 0.5 or lo == hi:
            raise GenbenchError(
                f"{where}: every value lies in [{lo:.4g}, {hi:.4g}], so the range is ambiguous: read as [0, 1] no "
                f"pixel is darker than {lo:.0%} grey, read as [-1, 1] none darker than {(lo + 1) / 2:.0%}", RANGE_FIX)
        else:
            value_range = "unit"
    bounds = {"signed": (-1.0, 1.0), "unit": (0.0, 1.0), "bytes": (0.0, 255.0)}[value_range]
    tol = 0 if kind in "ui" else TOL * (bounds[1] - bounds[0])
    if lo < bounds[0] - tol or hi > bounds[1] + tol:
        raise GenbenchError(f"{where}: values from {lo:.4g} to {hi:.4g} are outside {RANGE_TEXT[value_range]}",
                            RANGE_FIX)
    return value_range


def to_uint8_levels(arr: np.ndarray, value_range: str) -> Tensor:
    """Values of ``value_range`` as uint8 levels, rounded to nearest as genbench's own samples
    (:func:`genbench.data.transforms.to_uint8`); uint8 input is kept bitwise."""
    if arr.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(arr))
    x = torch.from_numpy(np.ascontiguousarray(arr)).double()
    scaled = {"signed": (x + 1) * 127.5, "unit": x * 255, "bytes": x}[value_range]
    return scaled.clamp(0, 255).round().to(torch.uint8)


def array_to_images(arr: np.ndarray, shape: tuple[int, int, int], value_range: str = "auto",
                    where: str = "array") -> tuple[Tensor, str]:
    """An array of samples as uint8 N x C x H x W, and how it was read."""
    arr, layout = _layout(arr, shape, where)
    used = _range(arr, value_range, where)
    images, grey = _grey(to_uint8_levels(arr, used), shape[0], where)
    how = "detected" if value_range == "auto" else "as given by --value-range"
    statement = (f"{len(images)} samples from {where}: {arr.dtype} {layout}, {RANGE_TEXT[used]} ({how}){grey}; "
                 "in the array's order")
    return standard_layout(images), statement


# ------------------------------------------------------------------------------------------ folders

FOLDER_FIX = "delete or replace the file, or move it out of the sample folder"


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    from genbench.data.folder import check_image_pixels

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
            check_image_pixels(path, *img.size)   # the header's size, before decoding
            img.load()
    except Image.DecompressionBombError as err:
        raise GenbenchError(f"image '{path}' is refused: {err}", FOLDER_FIX) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise GenbenchError(f"cannot read image '{path}' ({type(err).__name__}: {err})", FOLDER_FIX) from None
    return img


def _pixels(img, path: Path) -> np.ndarray:
    """H x W x C uint8 (C = 1 or 3); modes with an alpha channel only when it is fully opaque."""
    mode = {"1": "L", "P": "RGBA", "I;16": None, "I": None, "F": None}.get(img.mode, img.mode)
    if mode is None or mode not in ("L", "LA", "RGB", "RGBA"):
        raise GenbenchError(f"image '{path}' has pixel mode {img.mode}, not 8-bit greyscale or RGB",
                            "save the samples as 8-bit PNG (L or RGB)")
    arr = np.asarray(img.convert(mode) if mode != img.mode else img)
    if arr.ndim == 2:
        arr = arr[..., None]
    if mode in ("LA", "RGBA"):
        if (arr[..., -1] != 255).any():
            raise GenbenchError(f"image '{path}' is partly transparent; scoring needs opaque images",
                                "save the samples without an alpha channel")
        arr = arr[..., :-1]
    return arr


def read_folder(root: Path, shape: tuple[int, int, int]) -> tuple[Tensor, str]:
    """Every PNG/JPEG below ``root`` as uint8 N x C x H x W; one size and mode for all."""
    from genbench.data.folder import list_images

    files = list_images(root)
    others = sum(1 for p in root.rglob("*") if p.is_file()) - len(files)
    if not files:
        what = f"only {others} non-image file(s)" if others else "no files"
        raise GenbenchError(f"sample folder '{root}' has {what}; expected .png/.jpg/.jpeg images",
                            "put the samples in it as PNG or JPEG files (sub-folders are searched too)")
    check_count(len(files), FOLDER_IMAGES, f"sample folder '{root}'", "score fewer images")
    c, h, w = shape
    check_memory(len(files) * 3 * h * w, f"sample folder '{root}' ({len(files):,} images)", "score fewer images")
    with _open(files[0]) as img:
        first = _pixels(img, files[0])
    if first.shape[:2] != (h, w):
        raise GenbenchError(f"image '{files[0]}' is {first.shape[1]}x{first.shape[0]}, the dataset's images "
                            f"{w}x{h}; genbench does not resize samples before scoring",
                            f"save the samples at {w}x{h}")
    out = np.empty((len(files), h, w, first.shape[2]), np.uint8)
    out[0] = first
    for i, path in enumerate(files[1:], 1):
        with _open(path) as img:
            arr = _pixels(img, path)
        if arr.shape != first.shape:
            raise GenbenchError(f"sample folder '{root}' mixes image shapes: '{files[0].name}' is "
                                f"{first.shape[1]}x{first.shape[0]}x{first.shape[2]}, '{path.relative_to(root)}' "
                                f"{arr.shape[1]}x{arr.shape[0]}x{arr.shape[2]} (W x H x C)",
                                "give samples of one size and one colour mode")
        out[i] = arr
    images, grey = _grey(torch.from_numpy(out).permute(0, 3, 1, 2), c, f"sample folder '{root}'")
    left_out = f"; {others} non-image file(s) left out" if others else ""
    statement = (f"{len(files)} {'greyscale' if first.shape[2] == 1 else 'RGB'} images of {w}x{h} from folder "
                 f"{root}{grey}, sorted by relative path{left_out}")
    return standard_layout(images), statement
