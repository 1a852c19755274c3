"""Resize codec primitives to a model resolution (224, 448, 504, ...).

Contract shared by the CPU twin and ``cuda/resize.cu`` (resampling only; the normalisation,
rounding and vector scaling after it are the same torch code on both devices):

* ``mode="area"`` is an exact box filter: each output pixel is the overlap-weighted mean of the
  input pixels its footprint covers (fractional overlaps included), for downscaling and
  upscaling alike. Integer inputs are summed exactly, so integer outputs are bit-identical on
  CPU and CUDA.
* ``mode="bilinear"`` (fields only) samples at half-pixel centres,
  ``(i + 0.5) * H / h - 0.5`` clamped to the frame, without antialiasing: prefer ``"area"``
  when shrinking a lot.
* Fields ``(..., H, W, 2)``: values are resampled, then the vectors are SCALED per axis, dx by
  ``w / W`` and dy by ``h / H``, since a displacement of d input pixels spans d * w / W output
  pixels. With ``mask=`` (area only) the mean runs over covered pixels only, so intra pixels'
  zeros do not shrink the vectors; cells with no covered pixel get 0.
* Residuals ``(..., H, W)`` int16: area mean rounded half away from zero, so the sign is kept and
  ``resize(-r) == -resize(r)``.
* Masks ``(..., H, W)`` bool: ``rule="any"`` is True where the footprint touches any True pixel
  (positive overlap); ``rule="majority"`` where True pixels cover at least half the footprint.
* Luma/chroma planes uint8: area mean rounded half up. Resize YUV 4:2:0 frames for the model
  with :func:`resize_yuv`, which resizes luma to (h, w) and each chroma plane separately to
  (ceil(h/2), ceil(w/2)).
* Resizing to the same size is the identity in every mode.
* :func:`resize_patches` gives some ``patch x patch`` cells of :func:`resize_plane`'s output, equal to cutting
  them from the whole resized planes, reading only the input pixels under them (where a clip keeps a few
  patches of each frame, resizing whole frames was most of its cost); on the CPU, in the C++ core
  (``csrc/patch_resize.cpp``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import torch

from .. import _cuda
from ..reader import _load_core
from ._checks import check_choice, check_size, check_tensor

__all__ = ["resize_field", "resize_mask", "resize_patches", "resize_plane", "resize_residual", "resize_yuv"]

FieldMode = Literal["area", "bilinear"]
MaskRule = Literal["any", "majority"]
_KERNELS = "resize.cu"
_AREA_KERNELS = {torch.uint8: "area_sum_uint8", torch.int16: "area_sum_int16", torch.float32: "area_sum_float32"}


def resize_field(field: torch.Tensor, size: int | tuple[int, int], *, mode: FieldMode = "area",
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """Resize ``(..., H, W, 2)`` float32 vectors (pixels) to ``size`` and rescale them per axis."""
    check_tensor("field", field, dtypes=(torch.float32,))
    if field.dim() < 3 or field.shape[-1] != 2:
        raise ValueError(f"field must have shape (..., H, W, 2); got {tuple(field.shape)}")
    check_choice("mode", mode, ("area", "bilinear"))
    out_h, out_w = check_size(size)
    height, width = field.shape[-3:-1]
    batch = field.reshape(-1, height, width, 2)  # (B, H, W, 2)
    if mask is not None:
        if mode != "area":
            raise ValueError("mask= is only supported with mode='area'")
        check_tensor("mask", mask, dtypes=(torch.bool,))
        if mask.shape != field.shape[:-1]:
            raise ValueError(f"mask must have shape {tuple(field.shape[:-1])}; got {tuple(mask.shape)}")
        _cuda.is_cuda(field, mask)
        weights = mask.reshape(-1, height, width, 1)  # (B, H, W, 1)
        covered = _area_sum(weights.to(torch.uint8), out_h, out_w)  # (B, h, w, 1)
        total = _area_sum(batch * weights, out_h, out_w)  # (B, h, w, 2)
        out = torch.where(covered > 0, total / covered.clamp(min=1), 0.0).float()
    elif mode == "area":
        out = (_area_sum(batch, out_h, out_w) / (height * width)).float()
    else:
        out = _bilinear(batch, out_h, out_w)
    scale = torch.tensor([out_w / width, out_h / height], dtype=torch.float32, device=field.device)
    return (out * scale).reshape(*field.shape[:-3], out_h, out_w, 2)  # (..., h, w, 2)


def resize_residual(residual: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Area-resize ``(..., H, W)`` int16 residuals, rounding half away from zero (sign kept)."""
    check_tensor("residual", residual, dtypes=(torch.int16,))
    mean = _plane_mean(residual, size, "residual")
    rounded = torch.sign(mean) * torch.floor(mean.abs() + 0.5)
    return rounded.to(torch.int16)


def resize_plane(plane: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Area-resize ``(..., H, W)`` uint8 image planes (luma or one chroma plane), rounding half up."""
    check_tensor("plane", plane, dtypes=(torch.uint8,))
    out_h, out_w = check_size(size)
    if plane.dim() >= 2 and not _cuda.is_cuda(plane):
        height, width = plane.shape[-2:]
        rows, cols = _blocks(height, out_h), _blocks(width, out_w)
        reduced = rows.reduced * cols.reduced
        if reduced < (1 << 15):
            # In the blocks' coarse units the sums s are integers below 255 * reduced and the rounded mean is
            # floor((2 s + reduced) / (2 reduced)): every operand is an integer below 2^24, and the quotient of
            # two such (divisor * 255 < 2^24) cannot round up across an integer, so float32 gives it exactly.
            sums = _coarse_sums(plane.reshape(-1, height, width, 1), rows, cols, out_h, out_w, torch.float32)
            mean = sums.mul_(2).add_(reduced).div_(2 * reduced).floor_()
            return mean.to(torch.uint8).reshape(*plane.shape[:-2], out_h, out_w)
    return torch.floor(_plane_mean(plane, size, "plane") + 0.5).to(torch.uint8)


def resize_patches(planes: torch.Tensor | Sequence[torch.Tensor], size: int | tuple[int, int], cells: torch.Tensor,
                   patch: int) -> torch.Tensor:
    """The ``patch x patch`` cells of the area-resized uint8 planes, and only those.

    Args:
        planes: T frames, a ``(T, ..., H, W)`` uint8 tensor or a sequence of ``(..., H, W)`` ones (e.g. luma
            ``(H, W)`` or chroma ``(2, Hc, Wc)``), on the CPU.
        size: ``(h, w)`` the planes are resized to, both multiples of ``patch``.
        cells: ``(K, 3)`` int64 ``(t, row, col)``: the cell of frame t covering output pixels
            ``[row * patch, (row + 1) * patch) x [col * patch, (col + 1) * patch)``.
    Returns:
        ``(K, ..., patch, patch)`` uint8, equal to ``resize_plane(planes[t], size)`` cut at each cell.

    Each cell reads only the input pixels under it and applies the same integer overlaps as the whole-plane
    filter, so every sum, and hence every rounded pixel, is the same.
    """
    out_h, out_w = check_size(size)
    check_tensor("cells", cells, dtypes=(torch.int64,), ndims=(2,))
    if cells.shape[1] != 3:
        raise ValueError(f"cells must have shape (K, 3) = (t, row, col); got {tuple(cells.shape)}")
    if isinstance(patch, bool) or not isinstance(patch, int) or patch <= 0 or out_h % patch or out_w % patch:
        raise ValueError(f"patch must be a positive int dividing both sides of {(out_h, out_w)}; got {patch!r}")
    frames = list(planes)
    if not frames:
        raise ValueError("planes must hold at least one frame")
    for i, plane in enumerate(frames):
        check_tensor(f"planes[{i}]", plane, dtypes=(torch.uint8,))
        if plane.dim() < 2 or plane.shape != frames[0].shape or _cuda.is_cuda(plane):
            raise ValueError(f"planes must be CPU (..., H, W) frames of one shape; planes[{i}] is "
                             f"{tuple(plane.shape)} on {plane.device}")
    lead = frames[0].shape[:-2]
    t, r, c = cells.unbind(1)
    if cells.shape[0] and bool(((cells < 0).any(1) | (t >= len(frames)) | (r >= out_h // patch)
                                | (c >= out_w // patch)).any()):
        raise ValueError(f"cells must lie in t < {len(frames)}, row < {out_h // patch}, col < {out_w // patch}")
    if not cells.shape[0]:
        return torch.empty((0, *lead, patch, patch), dtype=torch.uint8)
    out = _load_core().resize_patches([frame.contiguous().numpy() for frame in frames], (out_h, out_w),
                                      cells.contiguous().numpy(), patch)                 # (K, planes, p, p)
    return torch.from_numpy(out).view(cells.shape[0], *lead, patch, patch)


def resize_mask(mask: torch.Tensor, size: int | tuple[int, int], *, rule: MaskRule = "any") -> torch.Tensor:
    """Resize ``(..., H, W)`` bool masks: ``"any"`` covered pixel, or a covered ``"majority"`` (>= half)."""
    check_tensor("mask", mask, dtypes=(torch.bool,))
    check_choice("rule", rule, ("any", "majority"))
    out_h, out_w = check_size(size)
    if mask.dim() < 2:
        raise ValueError(f"mask must have shape (..., H, W); got {tuple(mask.shape)}")
    height, width = mask.shape[-2:]
    total = _area_sum(mask.reshape(-1, height, width, 1).to(torch.uint8), out_h, out_w)  # (B, h, w, 1)
    keep = total > 0 if rule == "any" else 2 * total >= height * width
    return keep.reshape(*mask.shape[:-2], out_h, out_w)  # (..., h, w)


def resize_yuv(luma: torch.Tensor, chroma: torch.Tensor, size: int | tuple[int, int]
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize 4:2:0 frames: luma ``(T, H, W)`` to ``(T, h, w)``, chroma ``(T, 2, Hc, Wc)`` to
    ``(T, 2, ceil(h/2), ceil(w/2))``, each plane on its own with the area filter."""
    check_tensor("luma", luma, dtypes=(torch.uint8,), ndims=(3,))
    check_tensor("chroma", chroma, dtypes=(torch.uint8,), ndims=(4,))
    out_h, out_w = check_size(size)
    if chroma.shape[:2] != (luma.shape[0], 2):
        raise ValueError(f"chroma must have shape (T, 2, Hc, Wc) with T = {luma.shape[0]}; got {tuple(chroma.shape)}")
    return resize_plane(luma, (out_h, out_w)), resize_plane(chroma, (-(-out_h // 2), -(-out_w // 2)))


def _plane_mean(plane: torch.Tensor, size: int | tuple[int, int], name: str) -> torch.Tensor:
    """(..., h, w) float64 area mean of (..., H, W) integer planes (exact sums)."""
    out_h, out_w = check_size(size)
    if plane.dim() < 2:
        raise ValueError(f"{name} must have shape (..., H, W); got {tuple(plane.shape)}")
    height, width = plane.shape[-2:]
    total = _area_sum(plane.reshape(-1, height, width, 1), out_h, out_w)  # (B, h, w, 1)
    return (total / (height * width)).reshape(*plane.shape[:-2], out_h, out_w)  # (..., h, w)


class _AxisBlocks(NamedTuple):
    """Output cells of one axis in ``count`` blocks of ``k``; block ``b`` reads ``L`` consecutive input cells
    (``index``, or plain consecutive runs when ``None``) with integer overlaps ``weight`` (count, k, L), in
    units ``g`` times coarser than :func:`_area_sum`'s. The weights of one output add up to ``reduced``."""

    index: torch.Tensor | None
    weight: torch.Tensor
    count: int
    k: int
    length: int
    g: int
    reduced: int


@functools.lru_cache(maxsize=128)
def _blocks(size: int, out_size: int, k: int | None = None) -> _AxisBlocks:
    """The box filter of one axis as blocks of ``k`` outputs of a banded matrix (see :class:`_AxisBlocks`);
    ``k`` defaults to the overlap pattern's period (at most 64)."""
    g = math.gcd(size, out_size)
    period = out_size // g  # the overlap pattern repeats every `period` outputs (size // g inputs)
    if k is None:
        k = period if period <= 64 else 16
    count = -(-out_size // k)
    b = torch.arange(count, dtype=torch.int64)
    first = b * k * size // out_size
    last = -(-torch.clamp((b + 1) * k, max=out_size) * size // out_size)  # exclusive
    length = int((last - first).max())
    index = first[:, None] + torch.arange(length)  # (count, L)
    out = b[:, None] * k + torch.arange(k)  # (count, k)
    overlap = (torch.minimum((out[:, :, None] + 1) * size, (index[:, None, :] + 1) * out_size)
               - torch.maximum(out[:, :, None] * size, index[:, None, :] * out_size)).clamp(min=0)
    overlap = torch.where(out[:, :, None] < out_size, overlap, 0) // g  # (count, k, L), every border is a multiple of g
    aligned = count * length == size and bool((index.reshape(-1) == torch.arange(size)).all())
    return _AxisBlocks(None if aligned else index.clamp(max=size - 1).reshape(-1), overlap, count, k, length, g,
                       size // g)


_MAX_ABS = {torch.uint8: 255, torch.int16: 32768}


def _area_sum(x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """(B, H, W, C) -> (B, h, w, C) float64 overlap-weighted sums; weights total H*W per output."""
    batch, height, width, channels = x.shape
    if _cuda.is_cuda(x):
        out = torch.empty((batch, out_h, out_w, channels), dtype=torch.float64, device=x.device)
        kernel = _cuda.get_kernel(_KERNELS, _AREA_KERNELS[x.dtype], device=x.device)
        _cuda.launch(kernel, out.numel(), (x.contiguous(), np.int32(batch), np.int32(height), np.int32(width),
                                           np.int32(channels), np.int32(out_h), np.int32(out_w),
                                           np.int64(out.numel()), out))
        return out
    # Separable block-banded matrix products, columns first (they shrink most). With integer inputs every
    # product and partial sum is an integer no larger than max|x| * reduced_w * reduced_h: below 2^24 the
    # float32 products are exact in any summation order, else float64 is (below 2^53), so the sums equal the
    # CUDA twin's bit for bit.
    rows, cols = _blocks(height, out_h), _blocks(width, out_w)
    exact_in_float32 = _MAX_ABS.get(x.dtype, 1 << 24) * rows.reduced * cols.reduced < (1 << 24)
    dtype = torch.float32 if exact_in_float32 else torch.float64
    return _coarse_sums(x, rows, cols, out_h, out_w, dtype).double() * (rows.g * cols.g)


def _coarse_sums(x: torch.Tensor, rows: _AxisBlocks, cols: _AxisBlocks, out_h: int, out_w: int,
                 dtype: torch.dtype) -> torch.Tensor:
    """(B, H, W, C) -> (B, h, w, C) ``dtype`` sums in the blocks' coarse units (each output's weights total
    ``rows.reduced * cols.reduced``), a bounded number of planes per pass."""
    batch, height, width, channels = x.shape
    step = max(1, _CHUNK_ELEMENTS // (height * width * channels))
    out = [_banded(x[i:i + step].to(dtype), rows, cols, out_h, out_w) for i in range(0, max(batch, 1), step)]
    return out[0] if len(out) == 1 else torch.cat(out)


_CHUNK_ELEMENTS = 1 << 22  # planes per CPU pass are capped so the temporaries stay ~32 MiB


def _banded(y: torch.Tensor, rows: _AxisBlocks, cols: _AxisBlocks, out_h: int, out_w: int) -> torch.Tensor:
    """(B, H, W, C) float -> (B, h, w, C) sums in the blocks' coarse units."""
    batch, height, _, channels = y.shape
    dtype = y.dtype
    if cols.index is not None:
        y = y.index_select(2, cols.index)
    y = y.reshape(batch, height, cols.count, cols.length, channels)  # (B, H, nw, Lw, C)
    y = torch.einsum("nkl,bhnlc->bhnkc", cols.weight.to(dtype), y)  # (B, H, nw, kw, C)
    y = y.reshape(batch, height, cols.count * cols.k, channels)[:, :, :out_w]  # (B, H, w, C)
    if rows.index is not None:
        y = y.index_select(1, rows.index)
    y = y.reshape(batch, rows.count, rows.length, out_w * channels)  # (B, nh, Lh, w*C)
    y = torch.matmul(rows.weight.to(dtype), y)  # (B, nh, kh, w*C)
    return y.reshape(batch, rows.count * rows.k, out_w, channels)[:, :out_h]  # (B, h, w, C)


class _AxisTaps(NamedTuple):
    """The box filter of one axis as ``length`` gathers: output ``o`` is ``sum_l weight[l, o] * x[index[l, o]]``,
    the integer overlaps in units ``gcd(size, out_size)`` times coarser than :func:`_area_sum`'s; the weights of
    one output add up to ``reduced``."""

    index: torch.Tensor  # (length, out_size) int64
    weight: torch.Tensor  # (length, out_size) float64
    reduced: int


@functools.lru_cache(maxsize=128)
def _axis_taps(size: int, out_size: int) -> _AxisTaps:
    out = torch.arange(out_size, dtype=torch.int64)
    first = out * size // out_size
    length = int((((out + 1) * size - 1) // out_size - first).max()) + 1
    index = first[None, :] + torch.arange(length)[:, None]  # (L, out)
    overlap = (torch.minimum((out + 1) * size, (index + 1) * out_size)
               - torch.maximum(out * size, index * out_size)).clamp(min=0)  # (L, out), zero past the footprint
    g = math.gcd(size, out_size)
    return _AxisTaps(index.clamp(max=size - 1), (overlap // g).double(), size // g)


def _box_sums(x: torch.Tensor, dims: tuple[int, int], out_size: tuple[int, int]) -> torch.Tensor:
    """Overlap-weighted sums of float ``x`` over the box footprints of ``out_size`` along ``dims`` (the separable
    filter as a few gathers per axis: cheap where an output meets few inputs, as when enlarging a coarse grid),
    in :func:`_axis_taps`' units (a covered output weighs the product of the axes' ``reduced``). Exact while
    every partial sum is (dyadic values times integer weights, below 2^53 steps in float64, 2^24 in float32),
    so equal to :func:`_area_sum` up to its units."""
    for dim, out in zip(dims, out_size):
        taps = _axis_taps(x.shape[dim], out)
        shape = [1] * x.dim()
        shape[dim] = out
        index, weight = taps.index.to(x.device), taps.weight.to(x.device, x.dtype)
        total = x.index_select(dim, index[0]).mul_(weight[0].view(shape))
        for tap in range(1, index.shape[0]):
            total.add_(x.index_select(dim, index[tap]).mul_(weight[tap].view(shape)))
        x = total
    return x


def _source_coordinates(size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bilinear taps for one axis: low index, high index, float32 fraction (as in resize.cu)."""
    s = (torch.arange(out_size, dtype=torch.float64) + 0.5) * size / out_size - 0.5
    s = s.clamp(0, size - 1)
    floor = torch.floor(s)
    low = floor.long()
    return low, (low + 1).clamp(max=size - 1), (s - floor).float()


def _bilinear(x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """(B, H, W, C) float32 -> (B, h, w, C) float32 bilinear resampling."""
    batch, height, width, channels = x.shape
    if _cuda.is_cuda(x):
        out = torch.empty((batch, out_h, out_w, channels), dtype=torch.float32, device=x.device)
        _cuda.launch(_cuda.get_kernel(_KERNELS, "bilinear_float32", device=x.device), out.numel(),
                     (x.contiguous(), np.int32(batch), np.int32(height), np.int32(width), np.int32(channels),
                      np.int32(out_h), np.int32(out_w), np.int64(out.numel()), out))
        return out
    y0, y1, fy = _source_coordinates(height, out_h)
    x0, x1, fx = _source_coordinates(width, out_w)
    fy, fx = fy[:, None, None], fx[:, None]  # (h, 1, 1), (w, 1)
    # x first, then y: the same operation order as bilinear_float32 in cuda/resize.cu, where
    # top/bottom are these horizontally interpolated rows y0/y1
    across = x[:, :, x0] * (1 - fx) + x[:, :, x1] * fx  # (B, H, w, C)
    return across[:, y0] * (1 - fy) + across[:, y1] * fy  # (B, h, w, C)
