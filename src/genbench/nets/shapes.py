"""Checks on the data shape a network is built for, shared by the image networks."""

from __future__ import annotations

from genbench.errors import GenbenchError


def image_shape(data_shape: tuple[int, ...], kind: str) -> tuple[int, int, int]:
    """Return ``(C, H, W)`` for an image network, refusing anything that is not an image."""
    if len(data_shape) != 3:
        raise GenbenchError(
            f"network '{kind}' needs image data of shape (C, H, W), got shape {tuple(data_shape)}",
            "use mlp, mlp_g or mlp_d for 2-D data",
        )
    c, h, w = (int(s) for s in data_shape)
    return c, h, w


def square_size(data_shape: tuple[int, ...], kind: str) -> tuple[int, int]:
    """Return ``(channels, size)`` for the GAN networks, which build square images only."""
    c, h, w = image_shape(data_shape, kind)
    if h != w:
        raise GenbenchError(
            f"network '{kind}' builds square images only, got {h}x{w}", "resize the images to a square size"
        )
    return c, h


def base_resolution(size: int, kind: str) -> tuple[int, int]:
    """Smallest feature-map side of a GAN and how many 2x steps lead from it to ``size``.

    Halve while the side stays even and at least 4: 32 and 64 -> 4 (as DCGAN and SNGAN),
    28 -> 7 (Fashion-MNIST), 48 -> 6 (SNGAN's STL-10 base).
    """
    base, steps = size, 0
    while base % 2 == 0 and base // 2 >= 4:
        base //= 2
        steps += 1
    if steps == 0:
        raise GenbenchError(
            f"network '{kind}' cannot build {size}x{size} images: the side must be even and at least 8",
            "use an image size such as 28, 32 or 64",
        )
    return base, steps
