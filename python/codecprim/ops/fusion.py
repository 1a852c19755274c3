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
* The CPU twin runs the same arithmetic on whole planes: the walk's first step (zero fraction) is frame t's field
  itself, and the four taps of every sample come from one edge-padded copy of the plane (a repeated tap only ever
  has weight 0), which is what cut its cost from ~17 ms to ~2.5 ms for s = 4 at 224x224, bit for bit.
* Float fields agree across devices to within 1e-4 px (both compiled without FMA contraction
  and written in one operation order, so they are normally identical).

Fusion at a model size (``size=`` of :func:`fuse_pframes`, :func:`field_at_size`): every frame's field is
brought to ``(h, w)`` first and the chain, the warp and the residual all run there, so the cost follows the
model size, not the video's. A frame's field at ``size`` is the area mean of its inter pixels' vectors (intra
pixels left out, as ``resize_field(mask=)`` does), scaled to output pixels, and its mask the cells where inter
pixels cover at least half the footprint, computed from the block rows painted on the coarsest grid their edges
lie on (no full-resolution field is drawn; :func:`field_at_size`). The residual is ``fused_residual`` of the two
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
from ..reader import MV, _load_core
from ._checks import check_size, check_tensor
from .dense import dense_field
from .resize import _axis_taps, _box_sums, resize_plane

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
    if masks is not None:
        check_tensor("masks", masks, dtypes=(torch.bool,), ndims=(3,))
        if masks.shape != fields.shape[:3]:
            raise ValueError(f"masks must have shape {tuple(fields.shape[:3])}; got {tuple(masks.shape)}")
    if _cuda.is_cuda(fields, *(() if masks is None else (masks,))):
        if masks is None:
            masks = torch.ones(fields.shape[:3], dtype=torch.bool, device=fields.device)
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
    ``height x width`` (see the module docstring).

    Equal to ``resize_field(dense.field_px, size, mode="area", mask=dense.mask)`` (and ``resize_mask(dense.mask,
    size, rule="majority")``) of ``dense = dense_field(blocks, height, width)``, computed from the blocks on the
    coarsest grid their edges lie on (16, 8, 4, 2 or 1 pixels): each block paints its vector, and a count of 1,
    into the grid's cells through a difference array (four corners per block, then two running sums), and the
    box filter takes the painted grid to the output. A grid cell is constant, so its box sums are its pixels'
    exactly; the sums are of dyadic vectors times integer overlaps, exact in float64 in any order. Exporters'
    blocks tile the picture; rows that overlap (malformed streams) are averaged here where ``dense_field`` lets
    the last one win. (One frame at a time: batching frames made the grids outgrow the caches and ran slower.)
    """
    check_tensor("blocks", blocks, dtypes=(torch.int32,), ndims=(2,))
    out_h, out_w = check_size(size)
    if blocks.device.type == "cpu":
        # The C++ twin (csrc/field_at_size.cpp), bit for bit: one pass instead of ~30 small tensor operations,
        # 0.37 against 0.91 ms for a 720p frame at 224x224.
        field, mask = _load_core().field_at_size(blocks.contiguous().numpy(), height, width, (out_h, out_w), with_mask)
        return torch.from_numpy(field), (torch.from_numpy(mask) if with_mask else None)
    return _field_at_size_tensors(blocks, height, width, out_h, out_w, with_mask)


def _field_at_size_tensors(blocks: torch.Tensor, height: int, width: int, out_h: int, out_w: int,
                           with_mask: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`field_at_size` in tensor operations, for any device (the C++ twin's reference in the tests)."""
    device = blocks.device
    rows = blocks[blocks[:, MV.source] < 0]
    w, h = rows[:, MV.w], rows[:, MV.h]
    left, top = rows[:, MV.dst_x] - w // 2, rows[:, MV.dst_y] - h // 2
    xs = torch.stack((left, left + w)).clamp_(0, width)  # (2, N) clipped column span
    ys = torch.stack((top, top + h)).clamp_(0, height)  # (2, N) clipped row span
    xs[1], ys[1] = torch.maximum(xs[0], xs[1]), torch.maximum(ys[0], ys[1])  # empty rows paint nothing
    cell = _grid_cell(xs, ys, height, width)
    grid_h, grid_w = height // cell, width // cell
    xs, ys = (xs // cell).long(), (ys // cell).long()
    stride = grid_w + 1
    upper, lower = ys[0] * stride, ys[1] * stride
    corners = torch.cat((upper + xs[0], upper + xs[1], lower + xs[0], lower + xs[1]))  # (4N,)
    values = torch.ones(3, rows.shape[0], dtype=torch.float64, device=device)  # (3, N): vx, vy, count
    torch.div(rows[:, MV.motion_x:MV.motion_y + 1].t(), rows[:, MV.motion_scale], out=values[:2])
    signed = torch.cat((values, -values, -values, values), dim=1)  # (3, 4N)
    painted = torch.zeros(3, (grid_h + 1) * stride, dtype=torch.float64, device=device).index_add_(1, corners, signed)
    painted = painted.view(3, grid_h + 1, stride).cumsum(1).cumsum(2)[:, :grid_h, :grid_w]  # (3, gh, gw)
    full = _axis_taps(grid_h, out_h).reduced * _axis_taps(grid_w, out_w).reduced  # a covered output's weight
    sums = _box_sums(_narrowed(painted, rows[:, MV.motion_scale], full), (2, 1), (out_w, out_h))
    sums = sums.double()  # (3, h, w)
    covered = sums[2]
    field = (sums[:2] / covered.clamp(min=1)).float()  # (2, h, w); sums are 0 wherever covered is
    field *= torch.tensor([out_w / width, out_h / height], dtype=torch.float32, device=device)[:, None, None]
    mask = 2 * covered >= full if with_mask else None
    return field.permute(1, 2, 0).contiguous(), mask


def _narrowed(painted: torch.Tensor, scales: torch.Tensor, full: int) -> torch.Tensor:
    """``painted`` in float32 where its box sums stay exact there, else as it is (float64). With power-of-two
    motion scales every value is a multiple of 1 / max(scale), and a box sum's magnitude is at most max|value|
    times the weights of a full footprint: below 2^24 steps, float32 holds every partial sum exactly, and the
    sums (hence the field) are the float64 ones."""
    finest = int(scales.max()) if scales.numel() else 1
    if finest <= 0 or finest & (finest - 1):
        return painted
    return painted.float() if float(painted.abs().max()) * finest * full < (1 << 24) else painted


def _grid_cell(xs: torch.Tensor, ys: torch.Tensor, height: int, width: int) -> int:
    """The largest of 16, 8, 4, 2, 1 dividing the frame size and every block edge."""
    edges = torch.cat((xs.reshape(-1), ys.reshape(-1), torch.tensor([height, width, 16], dtype=xs.dtype,
                                                                     device=xs.device)))
    lowest = edges & -edges  # each edge's lowest set bit (0 for 0, which every cell divides)
    return min(int(torch.where(lowest > 0, lowest, 16).min()), 16)


def _pixel_grid(height: int, width: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    return torch.stack((xs.reshape(-1), ys.reshape(-1)))  # (2, H*W): each pixel's x and y


def _padded(planes: torch.Tensor) -> torch.Tensor:
    """``(C, H, W)`` -> ``(C, (H+1) * (W+1))``, the last column and row repeated once: the bilinear taps of a
    clamped position at top-left ``r = y * (W+1) + x`` are ``r, r+1, r+W+1, r+W+2``, and a repeated tap only
    ever gets weight 0 (a position clamped to the last column or row has no fraction there)."""
    return torch.nn.functional.pad(planes[None], (0, 1, 0, 1), mode="replicate").view(planes.shape[0], -1)


def _tap_rows(corner: torch.Tensor, stride: int, height: int) -> torch.Tensor:
    """Flat index ``y * stride + x`` of integer-valued float positions ``(2, n)`` (``y < height``), int32 where
    float32 holds every such integer exactly (below 2^24; ``index_select`` takes int32), else int64."""
    if height * stride < (1 << 24):
        return (corner[1] * stride + corner[0]).to(torch.int32)
    return corner[1].long() * stride + corner[0].long()


def _fuse_fields_cpu(fields: torch.Tensor, masks: torch.Tensor | None, all_spans: bool
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    # Planar (channels-first) and contiguous throughout: per-element torch ops on interleaved or broadcast
    # (n, 2) layouts cost several times more than on (n,) planes. Same arithmetic as before, bit for bit.
    steps, height, width, _ = fields.shape
    n, stride = height * width, width + 1
    grid = _pixel_grid(height, width)  # (2, n)
    planes = fields.permute(0, 3, 1, 2)  # (s, 2, H, W)
    # The walk's first step samples at the pixels themselves (zero fraction): it is frame t's field as it is.
    acc = planes[-1].reshape(2, n).clone()  # (2, n)
    valid = masks[-1].reshape(n).clone() if masks is not None else torch.ones(n, dtype=torch.bool)
    spans = [(acc.clone(), valid.clone())] if all_spans else []
    for k in range(steps - 2, -1, -1):
        position = grid + acc  # (2, n)
        position[0].clamp_(0, width - 1)
        position[1].clamp_(0, height - 1)
        if masks is not None and not bool(masks[k].all()):
            # nearest pixel floor(v + 0.5): never past the last one, the position being clamped to it
            near = _tap_rows(torch.floor(position + 0.5), width, height)
            valid &= masks[k].reshape(n).index_select(0, near)
        corner = torch.floor(position)
        frac = position.sub_(corner)  # (2, n)
        rest = 1 - frac
        fx, fy, gx, gy = frac[0], frac[1], rest[0], rest[1]
        top_left = _tap_rows(corner, stride, height)
        taps = (top_left, top_left + 1, top_left + stride, top_left + (stride + 1))
        padded = _padded(planes[k])  # (2, (H+1)*(W+1))
        for plane, a in zip(padded, acc):
            t00, t01, t10, t11 = (plane.index_select(0, tap) for tap in taps)
            # same operation order as sample_field() in cuda/fusion.cu
            top = t00.mul_(gx).add_(t01.mul_(fx))
            bottom = t10.mul_(gx).add_(t11.mul_(fx))
            a += top.mul_(gy).add_(bottom.mul_(fy))
        if all_spans:
            spans.append((acc.clone(), valid.clone()))
    if all_spans:
        field = torch.stack([a for a, _ in spans]).permute(0, 2, 1)  # (s, n, 2)
        mask = torch.stack([v for _, v in spans])  # (s, n)
        return field.reshape(steps, height, width, 2), mask.view(steps, height, width)
    return acc.t().reshape(height, width, 2), valid.view(height, width)


def _fused_residual_cpu(luma_t: torch.Tensor, luma_ref: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    height, width = luma_t.shape
    n, stride = height * width, width + 1
    position = _pixel_grid(height, width).add_(field.reshape(n, 2).t())  # (2, n)
    position[0].clamp_(0, width - 1)
    position[1].clamp_(0, height - 1)
    q = torch.floor(position.mul_(256).add_(0.5)).to(torch.int32)  # (2, n) 1/256-pel fixed point
    weight = q & 255
    top_left = _tap_rows((q >> 8).float(), stride, height)
    ref = _padded(luma_ref[None].to(torch.int32))[0]
    t00, t01, t10, t11 = (ref.index_select(0, tap) for tap in
                          (top_left, top_left + 1, top_left + stride, top_left + (stride + 1)))
    wx, wy = weight[0], weight[1]
    vx, vy = 256 - wx, 256 - wy
    top = t00.mul_(vx).add_(t01.mul_(wx))
    bottom = t10.mul_(vx).add_(t11.mul_(wx))
    predicted = top.mul_(vy).add_(bottom.mul_(wy)).add_(32768) >> 16
    return (luma_t.reshape(n).to(torch.int32) - predicted).to(torch.int16).view(height, width)


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
