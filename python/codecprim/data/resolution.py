"""The size frames are resized to: a fixed square, or the video's aspect ratio under a pixel budget."""

from __future__ import annotations

import math

from ..ops._checks import check_positive_int

__all__ = ["fit_pixels", "model_size"]


def fit_pixels(height: int, width: int, patch: int, *, min_pixels: int | None = None,
               max_pixels: int | None = None) -> tuple[int, int]:
    """``(h, w)``, multiples of ``patch`` with about the aspect ratio of ``height x width``.

    Each side is first rounded to the nearest multiple of ``patch`` (at least one patch). When that holds
    more than ``max_pixels`` pixels, both sides are scaled down by the same factor and rounded down, so
    ``h * w <= max_pixels``; when it holds fewer than ``min_pixels``, scaled up and rounded up, so
    ``h * w >= min_pixels``.
    """
    patch = check_positive_int("patch", patch)
    height, width = check_positive_int("height", height), check_positive_int("width", width)
    if max_pixels is not None and check_positive_int("max_pixels", max_pixels) < patch * patch:
        raise ValueError(f"max_pixels ({max_pixels}) must hold at least one {patch}x{patch} patch")
    if min_pixels is not None:
        check_positive_int("min_pixels", min_pixels)
        if max_pixels is not None and min_pixels > max_pixels:
            raise ValueError(f"min_pixels ({min_pixels}) exceeds max_pixels ({max_pixels})")

    def snap(side: float, rounding) -> int:
        return max(patch, int(rounding(side / patch)) * patch)

    h, w = snap(height, round), snap(width, round)
    if max_pixels is not None and h * w > max_pixels:
        scale = math.sqrt(height * width / max_pixels)
        h, w = snap(height / scale, math.floor), snap(width / scale, math.floor)
    elif min_pixels is not None and h * w < min_pixels:
        scale = math.sqrt(min_pixels / (height * width))
        h, w = snap(height * scale, math.ceil), snap(width * scale, math.ceil)
    return h, w


def model_size(height: int, width: int, size: int, patch: int, min_pixels: int | None,
               max_pixels: int | None) -> tuple[int, int]:
    """``(size, size)`` (aspect ratio not kept), or :func:`fit_pixels` when either pixel bound is given."""
    patch = check_positive_int("patch", patch)
    if min_pixels is None and max_pixels is None:
        size = check_positive_int("size", size)
        if size % patch:
            raise ValueError(f"size ({size}) must be a multiple of patch ({patch})")
        return size, size
    return fit_pixels(height, width, patch, min_pixels=min_pixels, max_pixels=max_pixels)
