"""RGB pixels only where they are needed: YUV 4:2:0 -> RGB for selected patches (or whole I-frames).

Inputs are the reader's planes stacked over a clip, already at the model size: luma
``(T, H, W)`` uint8 and chroma ``(T, 2, ceil(H/2), ceil(W/2))`` uint8 (Cb, Cr). Resize decoded
frames with :func:`codecprim.ops.resize.resize_yuv` (luma and chroma planes each on their own)
rather than converting whole frames to RGB first.

Contract shared by the CPU twin and ``cuda/gather.cu``:

* Positions ``(K, 3)`` int64 are ``(t, row, col)`` on the centred patch grid of
  :func:`codecprim.ops.patchify.patch_grid` (so patch (row, col) starts at pixel
  ``(top + row*p, left + col*p)``, exactly the pixels ``patchify`` puts there).
* Chroma is upsampled by nearest neighbour: pixel (y, x) uses chroma sample (y//2, x//2).
* ``matrix`` "bt601" (Kr=0.299, Kb=0.114, default) or "bt709" (Kr=0.2126, Kb=0.0722);
  ``color_range`` "limited" (Y in 16..235, C in 16..240, default) or "full" (0..255).
  The conversion runs in 16-bit fixed point (coefficients rounded to 1/65536, round half up,
  clamp to 0..255), so both devices agree bit for bit; against exact float arithmetic a channel
  is off by at most 1 (only when the exact value lies within ~0.004 of a .5 boundary).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from .. import _cuda
from ._checks import check_choice, check_tensor
from .patchify import patch_grid

__all__ = ["frames_to_rgb", "gather_rgb_patches", "yuv_coefficients"]

Matrix = Literal["bt601", "bt709"]
ColorRange = Literal["limited", "full"]
_MATRICES: dict[str, tuple[float, float]] = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}
_FIXED_ONE = 1 << 16


def yuv_coefficients(matrix: Matrix = "bt601", color_range: ColorRange = "limited") -> dict[str, float]:
    """Exact (float) YUV -> RGB coefficients: ``R = cy*(Y - y_offset) + crv*(Cr-128)``,
    ``G = cy*(Y - y_offset) - cgu*(Cb-128) - cgv*(Cr-128)``, ``B = cy*(Y - y_offset) + cbu*(Cb-128)``."""
    check_choice("matrix", matrix, _MATRICES)
    check_choice("color_range", color_range, ("limited", "full"))
    kr, kb = _MATRICES[matrix]
    kg = 1.0 - kr - kb
    limited = color_range == "limited"
    luma_scale = 255.0 / 219.0 if limited else 1.0
    chroma_scale = 255.0 / 224.0 if limited else 1.0
    return {
        "cy": luma_scale,
        "y_offset": 16.0 if limited else 0.0,
        "crv": chroma_scale * 2.0 * (1.0 - kr),
        "cgu": chroma_scale * 2.0 * kb * (1.0 - kb) / kg,
        "cgv": chroma_scale * 2.0 * kr * (1.0 - kr) / kg,
        "cbu": chroma_scale * 2.0 * (1.0 - kb),
    }


def gather_rgb_patches(luma: torch.Tensor, chroma: torch.Tensor, positions: torch.Tensor, patch: int, *,
                       matrix: Matrix = "bt601", color_range: ColorRange = "limited") -> torch.Tensor:
    """RGB ``(K, 3, p, p)`` uint8 patches at ``positions`` ``(K, 3)`` = (t, row, col), converting only them."""
    height, width = _check_planes(luma, chroma)
    check_tensor("positions", positions, dtypes=(torch.int64,), ndims=(2,))
    if positions.shape[1] != 3:
        raise ValueError(f"positions must have shape (K, 3) = (t, row, col); got {tuple(positions.shape)}")
    grid = patch_grid(height, width, patch)
    if positions.shape[0] and bool(
            ((positions < 0).any(dim=1) | (positions[:, 0] >= luma.shape[0]) | (positions[:, 1] >= grid.rows)
             | (positions[:, 2] >= grid.cols)).any()):
        raise ValueError(f"positions must lie in t < {luma.shape[0]}, row < {grid.rows}, col < {grid.cols} "
                         "(and be non-negative)")
    if patch % 2 == 0 and grid.top % 2 == 0 and grid.left % 2 == 0 and not _cuda.is_cuda(luma, chroma, positions):
        # Each patch then covers whole 2 x 2 chroma blocks, so its chroma is the (p/2 x p/2) chroma cell at half its
        # origin: cut both planes' cells (copies of rows) and convert them as frames, the same integers as the
        # per-pixel gather (which took ~6x as long).
        k = _fixed_point(matrix, color_range)
        t, row, col = positions.unbind(1)
        half, top, left = patch // 2, grid.top // 2, grid.left // 2
        luma_cells = luma[:, grid.top:grid.top + grid.rows * patch, grid.left:grid.left + grid.cols * patch]
        luma_cells = luma_cells.unflatten(2, (grid.cols, patch)).unflatten(1, (grid.rows, patch))  # (T, R, p, C, p)
        chroma_cells = chroma[:, :, top:top + grid.rows * half, left:left + grid.cols * half]
        chroma_cells = chroma_cells.unflatten(3, (grid.cols, half)).unflatten(2, (grid.rows, half))
        # advanced indices split by slices put the K axis first: (K, p, p) and (K, 2, p/2, p/2)
        return _convert_frames(luma_cells[t, row, :, col], chroma_cells[t, :, row, :, col], k)
    scale = torch.tensor([1, patch, patch], dtype=torch.int64, device=positions.device)
    offset = torch.tensor([0, grid.top, grid.left], dtype=torch.int64, device=positions.device)
    origins = positions * scale + offset  # (K, 3): t, top pixel row, left pixel column
    return _convert(luma, chroma, origins, patch, patch, matrix, color_range)


def frames_to_rgb(luma: torch.Tensor, chroma: torch.Tensor, frames: Sequence[int] | torch.Tensor, *,
                  matrix: Matrix = "bt601", color_range: ColorRange = "limited") -> torch.Tensor:
    """Whole frames (e.g. the clip's I-frames) as RGB ``(F, 3, H, W)`` uint8, same conversion."""
    height, width = _check_planes(luma, chroma)
    index = torch.as_tensor(frames, dtype=torch.int64).reshape(-1).to(luma.device)
    if index.numel() and bool(((index < 0) | (index >= luma.shape[0])).any()):
        raise ValueError(f"frame indices must lie in [0, {luma.shape[0]}); got {index.tolist()}")
    origins = torch.zeros((index.numel(), 3), dtype=torch.int64, device=luma.device)
    origins[:, 0] = index
    return _convert(luma, chroma, origins, height, width, matrix, color_range)


def _check_planes(luma: torch.Tensor, chroma: torch.Tensor) -> tuple[int, int]:
    check_tensor("luma", luma, dtypes=(torch.uint8,), ndims=(3,))
    check_tensor("chroma", chroma, dtypes=(torch.uint8,), ndims=(4,))
    frames, height, width = luma.shape
    expected = (frames, 2, -(-height // 2), -(-width // 2))
    if tuple(chroma.shape) != expected:
        raise ValueError(f"chroma must have shape (T, 2, ceil(H/2), ceil(W/2)) = {expected}; got {tuple(chroma.shape)}")
    return height, width


def _fixed_point(matrix: Matrix, color_range: ColorRange) -> dict[str, int]:
    exact = yuv_coefficients(matrix, color_range)
    fixed = {name: int(round(value * _FIXED_ONE)) for name, value in exact.items()}
    fixed["y_offset"] = int(exact["y_offset"])
    return fixed


def _convert(luma: torch.Tensor, chroma: torch.Tensor, origins: torch.Tensor, out_h: int, out_w: int,
             matrix: Matrix, color_range: ColorRange) -> torch.Tensor:
    """(K, 3, out_h, out_w) uint8 RGB of the rectangles starting at origins (K, 3) = (t, y, x)."""
    k = _fixed_point(matrix, color_range)
    if _cuda.is_cuda(luma, chroma, origins):
        return _convert_cuda(luma.contiguous(), chroma.contiguous(), origins.contiguous(), out_h, out_w, k)
    _, height, width = luma.shape
    chroma_h, chroma_w = chroma.shape[-2:]
    if (out_h, out_w) == (height, width) and not bool(origins[:, 1:].any()):
        return _convert_frames(luma.index_select(0, origins[:, 0]), chroma.index_select(0, origins[:, 0]), k)
    t = origins[:, 0, None, None]  # (K, 1, 1)
    y = origins[:, 1, None, None] + torch.arange(out_h)[None, :, None]  # (K, out_h, 1)
    x = origins[:, 2, None, None] + torch.arange(out_w)[None, None, :]  # (K, 1, out_w)
    cy_, cx_ = (y // 2).clamp(max=chroma_h - 1), (x // 2).clamp(max=chroma_w - 1)
    luma_term = k["cy"] * (luma[t, y, x].int() - k["y_offset"])  # (K, out_h, out_w)
    cb = chroma[t, 0, cy_, cx_].int() - 128
    cr = chroma[t, 1, cy_, cx_].int() - 128
    rgb = torch.stack((luma_term + k["crv"] * cr,
                       luma_term - k["cgu"] * cb - k["cgv"] * cr,
                       luma_term + k["cbu"] * cb), dim=1)  # (K, 3, out_h, out_w)
    return ((rgb + (1 << 15)) >> 16).clamp(0, 255).to(torch.uint8)


# Whole-frame conversion runs this many pixels at a time: its int32 temporaries (~1 MB) are then reused from the
# allocator's free lists, where one pass over 2048 patches took ~10 MB of fresh pages each call (2300 page faults,
# half its time inside codec_patches); fewer pixels per block cost more in per-op overhead than they save.
_BLOCK_PIXELS = 1 << 16


def _convert_frames(luma: torch.Tensor, chroma: torch.Tensor, k: dict[str, int]) -> torch.Tensor:
    """Whole frames (K, H, W) + (K, 2, ceil(H/2), ceil(W/2)) -> (K, 3, H, W): the chroma terms are formed at chroma
    resolution and repeated 2 x 2 (nearest neighbour), no per-pixel gather; the same integers as the general path."""
    frames, height, width = luma.shape
    out = torch.empty((frames, 3, height, width), dtype=torch.uint8)
    step = max(1, _BLOCK_PIXELS // max(1, height * width))
    for start in range(0, frames, step):
        _convert_block(luma[start:start + step], chroma[start:start + step], k, out[start:start + step])
    return out


def _convert_block(luma: torch.Tensor, chroma: torch.Tensor, k: dict[str, int], out: torch.Tensor) -> None:
    """:func:`_convert_frames` of a few frames into ``out``. Repeating by stacking a tensor with itself and viewing
    the pair as one axis is one contiguous copy per axis (``repeat_interleave`` took 3x as long on 14 x 14
    patches)."""
    frames, height, width = luma.shape
    cb = chroma[:, 0].int() - 128
    cr = chroma[:, 1].int() - 128
    # (K, 3, Hc, Wc): what each chroma sample adds to R, G and B, plus the rounding offset
    terms = torch.stack((k["crv"] * cr, -(k["cgu"] * cb) - k["cgv"] * cr, k["cbu"] * cb), dim=1).add_(1 << 15)
    _, channels, chroma_h, chroma_w = terms.shape
    wide = torch.stack((terms, terms), dim=-1).view(frames, channels, chroma_h, 2 * chroma_w)
    up = torch.stack((wide, wide), dim=3).view(frames, channels, 2 * chroma_h, 2 * chroma_w)[:, :, :height, :width]
    luma_term = luma.int().mul_(k["cy"]).sub_(k["cy"] * k["y_offset"])  # cy * (Y - y_offset), (K, H, W)
    rgb = up.add_(luma_term[:, None])
    rgb >>= 16
    out.copy_(rgb.clamp_(0, 255))


def _convert_cuda(luma: torch.Tensor, chroma: torch.Tensor, origins: torch.Tensor, out_h: int, out_w: int,
                  k: dict[str, int]) -> torch.Tensor:
    _, height, width = luma.shape
    chroma_h, chroma_w = chroma.shape[-2:]
    out = torch.empty((origins.shape[0], 3, out_h, out_w), dtype=torch.uint8, device=luma.device)
    n_out = origins.shape[0] * out_h * out_w
    kernel = _cuda.get_kernel("gather.cu", "yuv420_to_rgb_uint8", device=luma.device)
    _cuda.launch(kernel, n_out,
                 (luma, chroma, np.int32(height), np.int32(width), np.int32(chroma_h), np.int32(chroma_w),
                  origins, np.int32(out_h), np.int32(out_w), np.int32(k["cy"]), np.int32(k["y_offset"]),
                  np.int32(k["crv"]), np.int32(k["cgu"]), np.int32(k["cgv"]), np.int32(k["cbu"]),
                  np.int64(n_out), out))
    return out
