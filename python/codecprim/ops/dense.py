"""Dense motion field: the core's block list -> per-pixel offsets to the source in the reference.

Contract shared by the CPU twin (vectorised torch) and the CUDA kernels in ``cuda/dense_field.cu``:

* Rows are the core's ``(N, 10)`` int32 motion vectors: ``source, w, h, src_x, src_y, dst_x, dst_y,
  motion_x, motion_y, motion_scale`` (FFmpeg's AVMotionVector). A row covers the pixels
  ``x in [dst_x - w//2, dst_x - w//2 + w)``, ``y in [dst_y - h//2, dst_y - h//2 + h)``; parts
  outside the frame are clipped away.
* ``direction="past"`` keeps rows with ``source < 0`` (the forward field towards the past
  reference, the default), ``"future"`` rows with ``source > 0``.
* ``field_px[y, x] = (motion_x / motion_scale, motion_y / motion_scale)`` in float32 pixels, i.e.
  the offset (dx, dy) from the pixel to where its content comes from in the reference. Pixels no
  selected row covers (intra-coded) hold 0 and ``mask`` False. When rows overlap (malformed
  streams), the row with the highest index wins, on both devices.
* ``coarse_px`` is the per-cell MEAN of the covered pixels' vectors over ``coarse_cell`` x
  ``coarse_cell`` tiles (4 by default; partial tiles at the right/bottom edge average the pixels they
  have). Codec blocks are multiples of 4 and 4-aligned, so with the default cell each value is the
  vector of the one 4x4 block under it. ``coarse_mask`` tells which cells hold any covered pixel;
  cells without one are 0. Means are summed in float64 on both devices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from .. import _cuda
from ..reader import MOTION_VECTOR_COLUMNS, MV
from ._checks import check_choice, check_positive_int, check_tensor

__all__ = ["DenseField", "dense_field"]

Direction = Literal["past", "future"]
_DIRECTIONS: dict[str, int] = {"past": -1, "future": 1}
_COLS = len(MOTION_VECTOR_COLUMNS)  # the kernels index columns 0-2 and 5-9 by position
_KERNELS = "dense_field.cu"


@dataclass(frozen=True, repr=False)
class DenseField:
    """Per-pixel motion of one frame; see the module docstring for the exact contract."""

    field_px: torch.Tensor  # (H, W, 2) float32: (dx, dy) to the source pixel in the reference
    mask: torch.Tensor  # (H, W) bool: covered by a selected block (inter), False = intra/none
    coarse_px: torch.Tensor  # (ceil(H/c), ceil(W/c), 2) float32: mean vector per c x c cell
    coarse_mask: torch.Tensor  # (ceil(H/c), ceil(W/c)) bool: the cell has a covered pixel

    def __repr__(self) -> str:
        return (f"DenseField(field_px={tuple(self.field_px.shape)}, mask={tuple(self.mask.shape)}, "
                f"coarse_px={tuple(self.coarse_px.shape)}, device={self.field_px.device})")


def dense_field(blocks: torch.Tensor, height: int, width: int, *, direction: Direction = "past",
                coarse_cell: int = 4) -> DenseField:
    """Rasterise a frame's block motion vectors into a dense ``(H, W, 2)`` field.

    Args:
        blocks: ``(N, 10)`` int32 rows as produced by the reader (``frame.motion_vectors``).
        height, width: frame size in pixels.
        direction: ``"past"`` (rows with ``source < 0``) or ``"future"`` (``source > 0``).
        coarse_cell: tile size of the coarse grid.

    Runs on the device of ``blocks`` (CPU twin or CUDA kernel, identical results).
    """
    check_tensor("blocks", blocks, dtypes=(torch.int32,), ndims=(2,))
    if blocks.shape[1] != _COLS:
        raise ValueError(f"blocks must have {_COLS} columns (the core's motion-vector layout); "
                         f"got shape {tuple(blocks.shape)}")
    check_choice("direction", direction, _DIRECTIONS)
    height = check_positive_int("height", height)
    width = check_positive_int("width", width)
    coarse_cell = check_positive_int("coarse_cell", coarse_cell)
    if blocks.shape[0] and bool(
            ((blocks[:, MV.w] <= 0) | (blocks[:, MV.h] <= 0) | (blocks[:, MV.motion_scale] <= 0)).any()):
        raise ValueError("blocks must have w > 0, h > 0 and motion_scale > 0 in every row")
    sign = _DIRECTIONS[direction]
    if _cuda.is_cuda(blocks):
        return _dense_field_cuda(blocks.contiguous(), height, width, sign, coarse_cell)
    return _dense_field_cpu(blocks, height, width, sign, coarse_cell)


def _owner_cpu(blocks: torch.Tensor, height: int, width: int, sign: int) -> torch.Tensor:
    """(H*W,) int64: index of the highest selected row covering each pixel, -1 where none."""
    rows = blocks.long()
    chosen = torch.nonzero(rows[:, MV.source] < 0 if sign < 0 else rows[:, MV.source] > 0).squeeze(1)
    rows = rows[chosen]
    left = rows[:, MV.dst_x] - rows[:, MV.w] // 2
    top = rows[:, MV.dst_y] - rows[:, MV.h] // 2
    x0, x1 = left.clamp(0, width), (left + rows[:, MV.w]).clamp(0, width)
    y0, y1 = top.clamp(0, height), (top + rows[:, MV.h]).clamp(0, height)
    clipped_w = x1 - x0
    counts = clipped_w * (y1 - y0)  # pixels each row covers after clipping
    total = int(counts.sum())
    row_of = torch.repeat_interleave(torch.arange(len(chosen)), counts)  # (total,)
    local = torch.arange(total) - torch.repeat_interleave(counts.cumsum(0) - counts, counts)
    ys = y0[row_of] + local // clipped_w[row_of]
    xs = x0[row_of] + local % clipped_w[row_of]
    owner = torch.full((height * width,), -1, dtype=torch.int64)
    return owner.scatter_reduce_(0, ys * width + xs, chosen[row_of], reduce="amax")


def _coarse_cpu(field: torch.Tensor, mask: torch.Tensor, cell: int) -> tuple[torch.Tensor, torch.Tensor]:
    height, width = mask.shape
    rows, cols = -(-height // cell), -(-width // cell)
    pad = (0, cols * cell - width, 0, rows * cell - height)
    weights = torch.nn.functional.pad(mask.double(), pad)  # (rows*cell, cols*cell)
    values = torch.nn.functional.pad(field.double().permute(2, 0, 1), pad) * weights  # (2, rows*cell, cols*cell)
    count = weights.view(rows, cell, cols, cell).sum(dim=(1, 3))  # (rows, cols)
    total = values.view(2, rows, cell, cols, cell).sum(dim=(2, 4)).permute(1, 2, 0)  # (rows, cols, 2)
    mean = torch.where(count[..., None] > 0, total / count.clamp(min=1)[..., None], 0.0)
    return mean.float(), count > 0


def _dense_field_cpu(blocks: torch.Tensor, height: int, width: int, sign: int, cell: int) -> DenseField:
    owner = _owner_cpu(blocks, height, width, sign)
    vectors = blocks[:, 7:9].float() / blocks[:, 9:10].float()  # (N, 2) pixels, one per row
    # owner -1 (no vector) picks the appended zero vector
    vectors = torch.cat((vectors, torch.zeros((1, 2))))
    field = vectors[owner].view(height, width, 2)  # (H, W, 2)
    mask = (owner >= 0).view(height, width)  # (H, W)
    coarse, coarse_mask = _coarse_cpu(field, mask, cell)
    return DenseField(field, mask, coarse, coarse_mask)


def _dense_field_cuda(blocks: torch.Tensor, height: int, width: int, sign: int, cell: int) -> DenseField:
    device = blocks.device
    n_pixels = height * width
    owner = torch.full((height, width), -1, dtype=torch.int32, device=device)
    field = torch.empty((height, width, 2), dtype=torch.float32, device=device)
    mask = torch.empty((height, width), dtype=torch.bool, device=device)
    rows, cols = -(-height // cell), -(-width // cell)
    coarse = torch.empty((rows, cols, 2), dtype=torch.float32, device=device)
    coarse_mask = torch.empty((rows, cols), dtype=torch.bool, device=device)
    threads = 256  # one CUDA block per row in dense_owner_int32
    _cuda.launch(_cuda.get_kernel(_KERNELS, "dense_owner_int32", device=device),
                 blocks.shape[0] * threads,
                 (blocks, np.int32(blocks.shape[0]), np.int32(sign), np.int32(height), np.int32(width), owner),
                 threads_per_block=threads)
    _cuda.launch(_cuda.get_kernel(_KERNELS, "dense_fill_float32", device=device), n_pixels,
                 (blocks, owner, np.int64(n_pixels), field, mask.view(torch.uint8)))
    _cuda.launch(_cuda.get_kernel(_KERNELS, "coarse_grid_float32", device=device), rows * cols,
                 (field, mask.view(torch.uint8), np.int32(height), np.int32(width), np.int32(cell),
                  np.int64(rows * cols), coarse, coarse_mask.view(torch.uint8)))
    return DenseField(field, mask, coarse, coarse_mask)
