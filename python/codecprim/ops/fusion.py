"""P-frame fusion (CoPE-VideoLM's s): one field and one residual spanning s consecutive P-frames.

Contract shared by the CPU twin and ``cuda/fusion.cu``:

* ``fuse_fields(fields, masks)``: ``fields`` is ``(s, H, W, 2)`` float32 in chronological order,
  ``fields[i]`` being the dense field of frame ``t-s+1+i`` (offsets to its predecessor), so
  ``fields[-1]`` is frame t's. The result maps each pixel p of frame t to its source in frame t-s,
  chained sub-pel through every intermediate frame,
  ``f_{t->t-s}(p) = f_{t->t-1}(p) + f_{t-1->t-s}(p + f_{t->t-1}(p))``, evaluated as
  ``a = 0; for k = s-1..0: a += bilinear(fields[k], clamp(p + a))``: bilinear interpolation of the
  intermediate field (never truncated to integers) at positions clamped to the frame. This is the
  recursion evaluated exactly at the points it needs (each pixel's path is traced back frame by
  frame), rather than re-interpolating a precomputed composite grid, which would blur block edges
  once more per step; the two agree wherever the fields are locally affine. The fused
  mask is True where every step's mask, read at the pixel nearest to the sampling position
  (``floor(v + 0.5)``), is True: the chain went through inter-coded pixels only.
* ``fused_residual(luma_t, luma_ref, field)``: ``luma_t - round(warp(luma_ref, field))`` as int16,
  where ``warp`` samples ``luma_ref`` bilinearly at ``p + field(p)`` clamped to the frame (edge
  clamp). The position is quantised to 1/256 pel (``floor(256 v + 0.5)``) and interpolated with
  integer weights, rounding half up, so the CPU twin and the CUDA kernel agree bit for bit.
* What s = 1 reproduces: the fused field is exactly the frame's dense field (sampling at integer
  positions returns the stored value), and for integer vectors the residual is exactly
  ``luma_t - luma_ref`` shifted by the vectors (edge-clamped). For sub-pel vectors the warp is
  bilinear, not the codec's 6-tap filter, so it approximates (does not equal) the decoder's
  residual; intra pixels (mask False, zero vector) get ``luma_t - luma_ref`` at the same place.
* Float fields agree across devices to within 1e-4 px (both compiled without FMA contraction
  and written in one operation order, so they are normally identical).

Fusion at a model size (``size=`` of :func:`fuse_pframes`, :func:`field_at_size`): every frame's field is
brought to ``(h, w)`` first and the chain, the warp and the residual all run there, so the cost follows the
model size, not the video's. A frame's field at ``size`` is the area mean of its inter pixels' vectors (intra
pixels left out, as ``resize_field(mask=)`` does), scaled to output pixels, and its mask the cells where inter
pixels cover at least half the footprint. Codec blocks are multiples of 4 pixels on a 4-pixel grid, so the
field is rasterised on that grid (16x fewer cells, the same area means); rows off the grid, or a frame whose
sides are not multiples of 4, fall back to full resolution. The residual is ``fused_residual`` of the two
lumas area-resized to ``size``, for s = 1 and s > 1 alike: a single step and a fused group have one
definition (the codec's own residual, predicted with its own filters, is not used there).

References: the fields chain each P-frame's past vectors as if they pointed at the previous frame given
(one reference per P-frame, as x264 ``ref=1``). FFmpeg exports no reference index, so with several references
(x264 defaults to 3) a block that an encoder predicted from an older picture is still read as motion from
the previous one; its vector then overstates the step. The residual is recomputed against the fused field,
so ``luma_t == warp(luma_ref, field) + residual`` holds exactly whatever the encoder chose: only the
field's fidelity (and the residual's size) depend on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import numpy as np
import torch

from .. import _cuda
from ..reader import MV
from ._checks import check_size, check_tensor
from .dense import dense_field
from .resize import resize_field, resize_mask, resize_plane

__all__ = ["FusedStep", "field_at_size", "fuse_fields", "fuse_pframes", "fused_residual"]

_KERNELS = "fusion.cu"


class FrameLike(Protocol):
    """What ``fuse_pframes`` reads from a decoded frame (the reader's frames fit)."""

    luma: torch.Tensor
    motion_vectors: torch.Tensor
    pict_type: str


class FusedStep(NamedTuple):
    """Result of fusing s P-frames; unpacks as ``field_px, residual, mask``."""

    field_px: torch.Tensor  # (H, W, 2) float32: offset from frame t to its source in frame t-s
    residual: torch.Tensor  # (H, W) int16: luma_t - bilinear warp of luma_{t-s}
    mask: torch.Tensor  # (H, W) bool: the chain stayed on inter-coded pixels


def fuse_fields(fields: torch.Tensor, masks: torch.Tensor | None = None, *,
                all_spans: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Chain ``(s, H, W, 2)`` per-frame fields into one ``(H, W, 2)`` field from frame t to t-s.

    ``masks`` (``(s, H, W)`` bool, default all True) are the per-frame coverage masks; returns
    ``(field, mask)``. With ``all_spans=True`` the walk's every intermediate state comes back
    instead, ``(s, H, W, 2)`` and ``(s, H, W)``, entry j spanning frame t to t-1-j (bit-identical
    to ``fuse_fields(fields[-(j+1):], masks[-(j+1):])``), for the cost of the longest span.
    See the module docstring for the exact sampling rules.
    """
    check_tensor("fields", fields, dtypes=(torch.float32,), ndims=(4,))
    steps, height, width, channels = fields.shape
    if channels != 2 or steps == 0 or height == 0 or width == 0:
        raise ValueError(f"fields must have shape (s, H, W, 2) with s, H, W >= 1; got {tuple(fields.shape)}")
    if masks is None:
        masks = torch.ones(fields.shape[:3], dtype=torch.bool, device=fields.device)
    check_tensor("masks", masks, dtypes=(torch.bool,), ndims=(3,))
    if masks.shape != fields.shape[:3]:
        raise ValueError(f"masks must have shape {tuple(fields.shape[:3])}; got {tuple(masks.shape)}")
    if _cuda.is_cuda(fields, masks):
        return _fuse_fields_cuda(fields.contiguous(), masks.contiguous(), all_spans)
    return _fuse_fields_cpu(fields, masks, all_spans)


def fused_residual(luma_t: torch.Tensor, luma_ref: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """``luma_t - round(bilinear warp of luma_ref by field)`` as ``(H, W)`` int16 (edge-clamped)."""
    check_tensor("luma_t", luma_t, dtypes=(torch.uint8,), ndims=(2,))
    check_tensor("luma_ref", luma_ref, dtypes=(torch.uint8,), ndims=(2,))
    check_tensor("field", field, dtypes=(torch.float32,), ndims=(3,))
    if luma_ref.shape != luma_t.shape or field.shape != (*luma_t.shape, 2):
        raise ValueError(f"expected luma_t and luma_ref of one shape (H, W) and field (H, W, 2); got "
                         f"{tuple(luma_t.shape)}, {tuple(luma_ref.shape)}, {tuple(field.shape)}")
    if _cuda.is_cuda(luma_t, luma_ref, field):
        return _fused_residual_cuda(luma_t.contiguous(), luma_ref.contiguous(), field.contiguous())
    return _fused_residual_cpu(luma_t, luma_ref, field)


def fuse_pframes(frames: Sequence[FrameLike], *, size: int | tuple[int, int] | None = None,
                 skipped_b_frames: bool = False) -> FusedStep:
    """Fuse ``frames[1:]`` (s consecutive P-frames) against ``frames[0]`` (frame t-s, any type).

    The field comes from each P-frame's past-reference vectors (``source < 0``). Raises ValueError
    if a frame after the first is not a P-frame: fusion never crosses an I-frame (nor a B-frame,
    whose past reference need not be the previous frame). Frames carrying an ``index`` attribute
    must be consecutive; with ``skipped_b_frames`` they need only increase, the caller having left
    out the B-frames between consecutive anchors (a P-frame's past reference is the anchor before
    it, not the B-frame). ``size`` runs everything at that model size (see the module docstring);
    None keeps the coded size. Each P-frame is read as predicting from the previous frame given;
    the module docstring says what several references do to that.
    """
    if len(frames) < 2:
        raise ValueError(f"fuse_pframes needs the reference frame and at least one P-frame; got {len(frames)}")
    for position, frame in enumerate(frames[1:], start=1):
        if frame.pict_type != "P":
            what = "an I-frame" if frame.pict_type == "I" else f"a {frame.pict_type!r} frame"
            raise ValueError(f"fusion must not cross {what}: frames[{position}] is {what}; "
                             "only 'P' frames may follow the reference")
    indices = [getattr(frame, "index", None) for frame in frames]
    if None not in indices and any((b <= a) if skipped_b_frames else (b != a + 1)
                                   for a, b in zip(indices, indices[1:])):
        rule = "increasing anchors" if skipped_b_frames else "consecutive"
        raise ValueError(f"frames must be {rule}; got indices {indices}")
    luma_ref, luma_t = frames[0].luma, frames[-1].luma
    height, width = luma_t.shape
    if size is None:
        dense = [dense_field(frame.motion_vectors.to(luma_t.device), height, width) for frame in frames[1:]]
        fields = torch.stack([d.field_px for d in dense])  # (s, H, W, 2)
        masks = torch.stack([d.mask for d in dense])  # (s, H, W)
    else:
        size = check_size(size)
        steps = [field_at_size(frame.motion_vectors.to(luma_t.device), height, width, size, with_mask=True)
                 for frame in frames[1:]]
        fields = torch.stack([field for field, _ in steps])  # (s, h, w, 2)
        masks = torch.stack([mask for _, mask in steps])  # (s, h, w)
        luma_ref, luma_t = resize_plane(luma_ref, size), resize_plane(luma_t, size)
    field, mask = fuse_fields(fields, masks)
    return FusedStep(field, fused_residual(luma_t, luma_ref, field), mask)


def field_at_size(blocks: torch.Tensor, height: int, width: int, size: int | tuple[int, int], *,
                  with_mask: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A frame's past field at model size: ``(h, w, 2)`` float32 vectors in output pixels and, with
    ``with_mask``, the ``(h, w)`` bool mask (else None), from its ``(N, 10)`` block rows and coded
    ``height x width`` (see the module docstring)."""
    check_tensor("blocks", blocks, dtypes=(torch.int32,), ndims=(2,))
    out_h, out_w = check_size(size)
    rows = blocks
    if height % 4 or width % 4:
        on_grid = False
    elif rows.shape[0]:
        left = rows[:, MV.dst_x] - rows[:, MV.w] // 2
        top = rows[:, MV.dst_y] - rows[:, MV.h] // 2
        on_grid = not bool(((left | top | rows[:, MV.w] | rows[:, MV.h]) & 3).any())
    else:
        on_grid = True
    if on_grid:
        # The same blocks on the 4-pixel grid, vectors in grid cells: area means of constant 4x4 cells are
        # the full-resolution ones.
        rows = rows.clone()
        cells = [MV.w, MV.h, MV.dst_x, MV.dst_y, MV.src_x, MV.src_y]
        rows[:, cells] = torch.div(rows[:, cells], 4, rounding_mode="floor")
        rows[:, MV.motion_scale] *= 4
        height, width = -(-height // 4), -(-width // 4)
    dense = dense_field(rows, height, width)
    field = resize_field(dense.field_px, (out_h, out_w), mode="area", mask=dense.mask)
    return field, resize_mask(dense.mask, (out_h, out_w), rule="majority") if with_mask else None


def _pixel_grid(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32),
                            torch.arange(width, device=device, dtype=torch.float32), indexing="ij")
    return xs, ys  # (H, W) each


def _fuse_fields_cpu(fields: torch.Tensor, masks: torch.Tensor, all_spans: bool) -> tuple[torch.Tensor, torch.Tensor]:
    steps, height, width, _ = fields.shape
    n = height * width
    px, py = _pixel_grid(height, width, fields.device)
    px, py = px.reshape(-1), py.reshape(-1)  # (H*W,)
    planes = fields.permute(0, 3, 1, 2).reshape(steps, 2, n)  # (s, 2, H*W): each step's x and y planes
    flat_masks = masks.reshape(steps, n)  # (s, H*W)
    ax = torch.zeros_like(px)
    ay = torch.zeros_like(py)
    valid = torch.ones(n, dtype=torch.bool)
    spans: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    for k in range(steps - 1, -1, -1):
        x = (px + ax).clamp_(0, width - 1)
        y = (py + ay).clamp_(0, height - 1)
        nearest = (torch.floor(y + 0.5).clamp_(max=height - 1) * width
                   + torch.floor(x + 0.5).clamp_(max=width - 1)).long()
        valid &= flat_masks[k][nearest]
        xf, yf = torch.floor(x), torch.floor(y)
        fx, fy = x - xf, y - yf
        x0, y0 = xf.long(), yf.long()
        # flat indices of the four taps; the right/bottom tap repeats the left/top one at the edge
        i00 = y0 * width + x0
        i01 = i00 + (x0 < width - 1)
        down = (y0 < height - 1) * width
        i10, i11 = i00 + down, i01 + down
        gx, gy = 1 - fx, 1 - fy
        for plane, acc in zip(planes[k], (ax, ay)):
            # same operation order as sample_field() in cuda/fusion.cu
            top = plane[i00] * gx + plane[i01] * fx
            bottom = plane[i10] * gx + plane[i11] * fx
            acc += top * gy + bottom * fy
        if all_spans:
            spans.append((ax.clone(), ay.clone(), valid.clone()))
    if all_spans:
        field = torch.stack([torch.stack((x, y), dim=-1) for x, y, _ in spans])  # (s, H*W, 2)
        mask = torch.stack([v for _, _, v in spans])  # (s, H*W)
        return field.view(steps, height, width, 2), mask.view(steps, height, width)
    return torch.stack((ax, ay), dim=-1).view(height, width, 2), valid.view(height, width)


def _fused_residual_cpu(luma_t: torch.Tensor, luma_ref: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    height, width = luma_t.shape
    px, py = _pixel_grid(height, width, luma_t.device)
    x = (px + field[..., 0]).clamp(0, width - 1)
    y = (py + field[..., 1]).clamp(0, height - 1)
    qx = torch.floor(x * 256 + 0.5).int()  # 1/256-pel fixed point
    qy = torch.floor(y * 256 + 0.5).int()
    x0, y0, wx, wy = qx >> 8, qy >> 8, qx & 255, qy & 255
    x1, y1 = (x0 + 1).clamp(max=width - 1), (y0 + 1).clamp(max=height - 1)
    ref = luma_ref.int()
    x0, y0, x1, y1 = x0.long(), y0.long(), x1.long(), y1.long()
    top = ref[y0, x0] * (256 - wx) + ref[y0, x1] * wx
    bottom = ref[y1, x0] * (256 - wx) + ref[y1, x1] * wx
    predicted = (top * (256 - wy) + bottom * wy + 32768) >> 16
    return (luma_t.int() - predicted).to(torch.int16)


def _fuse_fields_cuda(fields: torch.Tensor, masks: torch.Tensor, all_spans: bool) -> tuple[torch.Tensor, torch.Tensor]:
    steps, height, width, _ = fields.shape
    lead = (steps,) if all_spans else ()
    field = torch.empty((*lead, height, width, 2), dtype=torch.float32, device=fields.device)
    mask = torch.empty((*lead, height, width), dtype=torch.bool, device=fields.device)
    _cuda.launch(_cuda.get_kernel(_KERNELS, "fuse_fields_float32", device=fields.device), height * width,
                 (fields, masks.view(torch.uint8), np.int32(steps), np.int32(height), np.int32(width),
                  np.int32(all_spans), field, mask.view(torch.uint8)))
    return field, mask


def _fused_residual_cuda(luma_t: torch.Tensor, luma_ref: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    height, width = luma_t.shape
    residual = torch.empty((height, width), dtype=torch.int16, device=luma_t.device)
    _cuda.launch(_cuda.get_kernel(_KERNELS, "warp_residual_int16", device=luma_t.device), height * width,
                 (luma_t, luma_ref, field, np.int32(height), np.int32(width), residual))
    return residual
