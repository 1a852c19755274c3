"""Per-patch saliency from codec primitives: camera-compensated motion plus residual energy.

The clip is seen on a ``(T, Hg, Wg)`` patch grid (e.g. 64 x 16 x 16 for 224 px frames and 14 px
patches). Grid cell ``(r, c)`` covers the coded-frame pixels ``y in [rs(r), rs(r+1))``,
``x in [cs(c), cs(c+1))`` with ``rs(r) = (r * H) // Hg`` and ``cs(c) = (c * W) // Wg``, i.e. the
region a whole-frame resize to the model size maps onto that patch (integer pixel borders).

Two raw features per cell, then one fused score:

* **motion** (:func:`motion_energy_grid`): every block vector minus the fitted camera motion
  (:mod:`codecprim.ops.camera`), scaled to model pixels (``dx * size_w / W``, ``dy * size_h / H``),
  its length averaged over the cell: ``sum(len * overlap) / max(sum(overlap), cell area)``, so
  intra pixels count as still and a doubly predicted pixel (B-frames) counts once.
* **residual** (:func:`residual_energy_grid`): RMS of the coded residual over the cell (grey levels),
  from exact int64 sums of squares on both devices.
* **fusion** (:func:`combine_saliency`): per P-frame and channel, ``max(x - floor, 0) /
  max(q95(x) - floor, reference)`` (robust per-frame normalisation; the reference keeps a still
  frame's noise from being blown up to 1; ``floor`` is 0 for motion and the 25th percentile for the
  residual, i.e. the sensor grain every cell of the frame shares), fused by ``"mean"``, ``"max"``
  or ``"weighted"`` (``w * motion + (1 - w) * residual``), optionally times a centre prior
  ``(1 - s) + s * exp(-d^2 / (2 sigma^2))`` (``d`` = distance from the grid centre in half-grid
  units). I-frames carry no motion: their saliency is 0 and they are
  flagged in ``is_iframe``; selection keeps them whole.

Each op runs on the device of its inputs: on the CPU the C++ core (``csrc/motion_energy.cpp``,
``csrc/residual_energy.cpp``; the normalisation in torch), on GPUs torch and ``cuda/saliency.cu``.
Integer sums (residual) are bit-identical across devices; float results agree to float rounding.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import _cuda
from ..reader import MV, _load_core
from ._checks import check_choice, check_tensor
from .camera import CAMERA_MODELS, CameraConfig, block_centres_and_motion, camera_options, fit_camera

__all__ = [
    "FUSIONS",
    "SaliencyConfig",
    "SaliencyResult",
    "block_motion",
    "cell_bounds",
    "centre_prior",
    "combine_kernel_constants",
    "combine_saliency",
    "frame_offsets",
    "fusion_weights",
    "motion_energy_grid",
    "patch_saliency",
    "residual_cell_sums",
    "residual_energy_grid",
    "residual_kernel_name",
    "residual_rms",
]

FUSIONS = ("mean", "max", "weighted")
_KERNELS = "saliency.cu"
_MAX_GPU_CELLS = 8192  # the GPU normaliser sorts one frame's cells in shared memory


@dataclass(frozen=True)
class SaliencyConfig:
    """How raw features become one score per patch (defaults: OneVision-style codec saliency)."""

    camera: CameraConfig = field(default_factory=CameraConfig)
    fusion: str = "mean"
    motion_weight: float = 0.5        # for fusion="weighted"
    percentile: float = 0.95          # robust per-frame normaliser
    motion_reference: float = 0.5     # model pixels per frame: the least p95 a frame is scaled by
    residual_reference: float = 12.0  # RMS grey levels: above typical quantisation noise
    noise_percentile: float | None = 0.25  # residual grain floor removed per frame (None: keep)
    centre_prior: float = 0.0         # strength s in [0, 1]; 0 = off
    centre_sigma: float = 0.5         # in half-grid units

    def __post_init__(self) -> None:
        check_choice("fusion", self.fusion, FUSIONS)
        if not 0.0 <= self.motion_weight <= 1.0:
            raise ValueError(f"motion_weight must be in [0, 1], got {self.motion_weight}")
        if not 0.0 < self.percentile <= 1.0:
            raise ValueError(f"percentile must be in (0, 1], got {self.percentile}")
        if self.noise_percentile is not None and not 0.0 <= self.noise_percentile < self.percentile:
            raise ValueError(f"noise_percentile must be None or in [0, percentile), got {self.noise_percentile}")
        if self.motion_reference <= 0 or self.residual_reference <= 0:
            raise ValueError("motion_reference and residual_reference must be > 0")
        if not 0.0 <= self.centre_prior <= 1.0:
            raise ValueError(f"centre_prior must be in [0, 1], got {self.centre_prior}")
        if self.centre_sigma <= 0:
            raise ValueError(f"centre_sigma must be > 0, got {self.centre_sigma}")


@dataclass
class SaliencyResult:
    """Saliency of a clip on its patch grid, with the features it came from."""

    saliency: torch.Tensor          # (T, Hg, Wg) float32, 0 on I-frames
    motion: torch.Tensor            # (T, Hg, Wg) float32 compensated motion, model pixels
    residual: torch.Tensor | None   # (T, Hg, Wg) float32 residual RMS, None if unavailable
    is_iframe: torch.Tensor         # (T,) bool
    camera_fallback: torch.Tensor   # (T,) bool: the camera model fell back to the median


def cell_bounds(length: int, cells: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(cells + 1,) int64 pixel borders ``(i * length) // cells`` of a grid axis."""
    if length < cells:
        raise ValueError(f"a frame axis of {length} px cannot hold {cells} grid cells")
    return torch.arange(cells + 1, dtype=torch.int64, device=device) * length // cells


# ---------------------------------------------------------------------------------------------
# residual energy


def residual_energy_grid(residual: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """RMS of ``residual`` (T, H, W) or (H, W) int16 over each grid cell -> (T, Hg, Wg) / (Hg, Wg)."""
    return residual_rms(residual_cell_sums(residual, grid), tuple(residual.shape[-2:]), grid)


def residual_cell_sums(residual: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Exact sums of squares of ``residual`` (T, H, W) or (H, W) int16 over each grid cell -> int64 (T, Hg, Wg) /
    (Hg, Wg): the part of :func:`residual_energy_grid` that reads the pixels (a decoding loop keeps these per
    frame and takes :func:`residual_rms` of them all at once)."""
    check_tensor("residual", residual, dtypes=(torch.int16,), ndims=(2, 3))
    squeeze = residual.ndim == 2
    res = residual[None] if squeeze else residual
    hg, wg = grid
    t, h, w = res.shape
    if _cuda.is_cuda(res):
        sums = _residual_sums_cuda(res.contiguous(), cell_bounds(h, hg, res.device), hg, wg)
    else:
        rows, cols, _ = _cpu_cells(h, w, hg, wg)  # once per geometry: called once per decoded frame
        sums = _residual_sums_cpu(res, rows, cols)
    return sums[0] if squeeze else sums


def residual_rms(sums: torch.Tensor, frame_size: tuple[int, int], grid: tuple[int, int]) -> torch.Tensor:
    """float32 RMS per cell from :func:`residual_cell_sums` of frames of ``frame_size`` (H, W): the same torch
    division and sqrt on every device (the core and the kernel return only the exact sums)."""
    (h, w), (hg, wg) = frame_size, grid
    if sums.device.type == "cpu":
        area = _cpu_cells(h, w, hg, wg)[2]
    else:
        rows, cols = cell_bounds(h, hg, sums.device), cell_bounds(w, wg, sums.device)
        area = ((rows[1:] - rows[:-1])[:, None] * (cols[1:] - cols[:-1])[None, :]).double()  # (Hg, Wg)
    return torch.div(sums, area).sqrt_().float()


@functools.lru_cache(maxsize=32)
def _cpu_cells(h: int, w: int, hg: int, wg: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`cell_bounds` of both axes and the (Hg, Wg) float64 cell areas, on the CPU (read-only: cached)."""
    rows, cols = cell_bounds(h, hg), cell_bounds(w, wg)
    return rows, cols, ((rows[1:] - rows[:-1])[:, None] * (cols[1:] - cols[:-1])[None, :]).double()


def _residual_sums_cpu(res: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Exact int64 sums of squares per cell (T, Hg, Wg) of the :func:`cell_bounds` ``rows`` and ``cols``, by the
    core (which derives the same bounds from their counts)."""
    grid = (rows.numel() - 1, cols.numel() - 1)
    return torch.from_numpy(_load_core().residual_sums(res.contiguous().numpy(), grid))


def residual_kernel_name(width: int, data_ptr: int) -> str:
    """The residual-sums entry point for rows of ``width`` pixels at ``data_ptr``: the widest load rows allow."""
    for vec, name in ((8, "residual_sums_int16x8"), (4, "residual_sums_int16x4")):
        if width % vec == 0 and data_ptr % (2 * vec) == 0:
            return name
    return "residual_sums_int16"


def _residual_sums_cuda(res: torch.Tensor, rows: torch.Tensor, hg: int, wg: int) -> torch.Tensor:
    t, h, w = res.shape
    sums = torch.zeros((t, hg, wg), dtype=torch.int64, device=res.device)
    kernel = _cuda.get_kernel(_KERNELS, residual_kernel_name(w, res.data_ptr()), device=res.device)
    _cuda.launch(kernel, None, (res, rows.int().contiguous(), np.int32(h), np.int32(w), np.int32(wg), sums),
                 grid=(hg, t), shared_mem=wg * 8)  # one unsigned long long per grid column of the band
    return sums


# ---------------------------------------------------------------------------------------------
# motion energy


def _check_vectors(vectors: Sequence[torch.Tensor]) -> list[int]:
    """Each frame's row count, after checking every frame holds the core's (N_t, 10) int32 rows."""
    if len(vectors) == 0:
        raise ValueError("need at least one frame of motion vectors")
    for i, v in enumerate(vectors):
        check_tensor(f"vectors[{i}]", v, dtypes=(torch.int32,), ndims=(2,))
        if v.shape[1] != MV.ncols:
            raise ValueError(f"vectors[{i}] must have {MV.ncols} columns (the core's layout), got {tuple(v.shape)}")
    return [v.shape[0] for v in vectors]


def _pack(vectors: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate per-frame (N_t, 10) rows -> rows (M, 10) and each frame's count (T,) int64."""
    counts = _check_vectors(vectors)
    return torch.cat(list(vectors), dim=0), torch.tensor(counts, dtype=torch.int64, device=vectors[0].device)


def motion_energy_grid(vectors: Sequence[torch.Tensor], frame_size: tuple[int, int], grid: tuple[int, int],
                  model_size: tuple[int, int] | None = None, *, camera: str | CameraConfig = "similarity",
                  confidence: Sequence[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera-compensated motion per grid cell for each frame.

    Args:
        vectors: T tensors (N_t, 10) int32, the core's rows of each frame (empty for I-frames).
        frame_size: coded (H, W) in pixels.
        grid: (Hg, Wg) patch grid.
        model_size: (h, w) the frames are resized to; vectors are scaled to it (default: frame size).
        camera: a model name from ``CAMERA_MODELS`` or a full :class:`CameraConfig`.
        confidence: optional T tensors (N_t,) float32 in [0, 1], one per row (estimated vectors:
            :class:`codecprim.ops.motion_estimation.MotionEstimate`): each block's compensated motion
            is multiplied by it, so an untrusted vector (0) counts as no motion (the camera fit still
            uses every vector). None: every row counts fully (codec vectors).
    Returns:
        ``(motion, fallback)``: (T, Hg, Wg) float32 mean motion length in model pixels, and (T,) bool
        frames whose camera fit fell back to the median translation.
    """
    config = camera if isinstance(camera, CameraConfig) else None
    if config is None:
        check_choice("camera", camera, CAMERA_MODELS)
        config = CameraConfig(model=camera)
    h, w = frame_size
    hg, wg = grid
    t = len(vectors)
    if len(vectors) and not _cuda.is_cuda(vectors[0]) and vectors[0].device.type == "cpu":
        counts = _check_vectors(vectors)
        rects, length, fallback = _block_motion_cpu(vectors, counts, frame_size, model_size, config, confidence)
        sum_v, sum_a = _motion_sums_cpu(rects, counts, length, frame_size, grid)
        rows_b, cols_b, _ = _cpu_cells(h, w, hg, wg)
    else:
        rects, frame, length, fallback = block_motion(vectors, frame_size, model_size, config, confidence)
        rows_b, cols_b = cell_bounds(h, hg, rects.device), cell_bounds(w, wg, rects.device)
        sum_v, sum_a = _motion_sums_cuda(rects, frame, length, t, rows_b, cols_b, hg, wg, frame_size)
    cell_area = ((rows_b[1:] - rows_b[:-1])[:, None] * (cols_b[1:] - cols_b[:-1])[None, :])  # (Hg, Wg)
    denom = torch.maximum(sum_a, cell_area[None]).to(torch.float32)
    return sum_v / denom, fallback


def block_motion(vectors: Sequence[torch.Tensor], frame_size: tuple[int, int], model_size: tuple[int, int] | None,
                 config: CameraConfig, confidence: Sequence[torch.Tensor] | None = None,
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """What the pooling kernels consume, per block of the whole clip: ``(rects, frame, length, fallback)`` =
    (M, 4) int32 pixel rectangles clipped to the frame, (M,) frame index, (M,) float32 camera-compensated
    motion length in model pixels (times the row's ``confidence`` when given), and (T,) bool frames whose
    camera fit fell back to the median."""
    h, w = frame_size
    mh, mw = model_size if model_size is not None else frame_size
    t = len(vectors)
    if t and vectors[0].device.type == "cpu" and not _cuda.is_cuda(vectors[0]):  # host emulation: the GPU path
        counts = _check_vectors(vectors)
        rects, length, fallback = _block_motion_cpu(vectors, counts, frame_size, model_size, config, confidence)
        return rects, torch.from_numpy(np.repeat(np.arange(t), counts)), length, fallback
    rows, counts = _pack(vectors)
    device = rows.device
    frame = torch.repeat_interleave(torch.arange(t, device=device), counts)              # (M,)
    # padded (T, Nmax) views for the batched camera fit; a boolean mask keeps frame-major, slot order
    nmax = max(1, int(counts.max()))
    valid = torch.arange(nmax, device=device) < counts[:, None]                          # (T, Nmax)
    padded = torch.nn.utils.rnn.pad_sequence(list(vectors), batch_first=True)            # (T, <=Nmax, 10)
    if padded.shape[1] < nmax:  # every frame empty
        padded = rows.new_zeros((t, nmax, MV.ncols))
    pad_c, pad_m, pad_a = block_centres_and_motion(padded.view(t * nmax, MV.ncols))
    pad_c, pad_m, pad_a = pad_c.view(t, nmax, 2), pad_m.view(t, nmax, 2), pad_a.view(t, nmax)
    # Every vector votes for the camera (the trimmed fit drops outliers): a flat wall's vectors are
    # each untrusted, yet together they follow the pan.
    fit = fit_camera(pad_c, pad_m, valid, weights=pad_a, config=config)
    # what is left after the camera: (A - I) p + t in float64, rounded once, as in
    # :func:`codecprim.ops.camera.camera_motion`, per frame on the padded rows, then the blocks picked out
    deviation = fit.matrix.double() - torch.eye(2, 3, dtype=torch.float64, device=device)  # (T, 2, 3)
    px, py = pad_c[..., 0].double(), pad_c[..., 1].double()                              # (T, Nmax)
    d = deviation[:, :, :, None].unbind(2)                                               # 3 x (T, 2, 1)
    cam_x = (d[0][:, 0] * px + d[1][:, 0] * py + d[2][:, 0]).float()
    cam_y = (d[0][:, 1] * px + d[1][:, 1] * py + d[2][:, 1]).float()
    dx = (pad_m[..., 0] - cam_x).mul_(mw / w)
    dy = (pad_m[..., 1] - cam_y).mul_(mh / h)
    length = dx.mul_(dx).addcmul_(dy, dy).sqrt_()[valid]                                 # (M,) model pixels
    if confidence is not None:
        length = length * _pack_confidence(confidence, vectors, device)
    return _clipped_rects(rows, h, w), frame, length, fit.fallback


def _block_motion_cpu(vectors: Sequence[torch.Tensor], counts: list[int], frame_size: tuple[int, int],
                      model_size: tuple[int, int] | None, config: CameraConfig,
                      confidence: Sequence[torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`block_motion` on CPU tensors by the core, without the frame index: ``(rects, length, fallback)``."""
    h, w = frame_size
    mh, mw = model_size if model_size is not None else frame_size
    rects, length2, fallback = _load_core().block_motion([v.contiguous().numpy() for v in vectors], counts,
                                                         (h, w, mh, mw), *camera_options(config))
    # torch's float32 sqrt (not correctly rounded on every CPU), as the padded path below takes it: the same lengths
    length = torch.from_numpy(length2).sqrt_()
    if confidence is not None:
        length = length * _pack_confidence(confidence, vectors, torch.device("cpu"))
    return torch.from_numpy(rects), length, torch.from_numpy(fallback).bool()


def _pack_confidence(confidence: Sequence[torch.Tensor], vectors: Sequence[torch.Tensor],
                     device: torch.device) -> torch.Tensor:
    """Per-row confidences of every frame, concatenated like :func:`_pack` -> (M,) float32."""
    if len(confidence) != len(vectors):
        raise ValueError(f"got {len(confidence)} confidence frames for {len(vectors)} vector frames")
    for i, (c, v) in enumerate(zip(confidence, vectors)):
        check_tensor(f"confidence[{i}]", c, dtypes=(torch.float32,), ndims=(1,))
        if c.shape[0] != v.shape[0]:
            raise ValueError(f"confidence[{i}] has {c.shape[0]} values for {v.shape[0]} vector rows")
    return torch.cat([c.to(device) for c in confidence])


def frame_offsets(frame: torch.Tensor, t: int) -> torch.Tensor:
    """(T + 1,) int32: frame f owns blocks ``[offsets[f], offsets[f + 1])`` (blocks are in frame order)."""
    offsets = torch.zeros(t + 1, dtype=torch.int32, device=frame.device)
    offsets[1:] = torch.bincount(frame, minlength=t).cumsum(0).int()
    return offsets


def _clipped_rects(rows: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(M, 4) int32 pixel rectangles x0, y0, x1, y1 of the blocks, clipped to the frame."""
    rects = torch.empty((rows.shape[0], 4), dtype=torch.int32, device=rows.device)
    left = rows[:, MV.dst_x] - torch.div(rows[:, MV.w], 2, rounding_mode="floor")
    top = rows[:, MV.dst_y] - torch.div(rows[:, MV.h], 2, rounding_mode="floor")
    torch.clamp(left, 0, w, out=rects[:, 0])
    torch.clamp(top, 0, h, out=rects[:, 1])
    torch.clamp(left + rows[:, MV.w], 0, w, out=rects[:, 2])
    torch.clamp(top + rows[:, MV.h], 0, h, out=rects[:, 3])
    return rects


def _motion_sums_cpu(rects: torch.Tensor, counts: list[int], length: torch.Tensor, frame_size: tuple[int, int],
                     grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """sum(length * overlap) (float32) and sum(overlap) (int64) per cell (T, Hg, Wg), by the core, adding a cell's
    blocks in the CUDA twin's order: by the cell holding the block's top-left pixel (raster order), then by block
    order. Frame t owns the next ``counts[t]`` blocks."""
    sum_v, sum_a = _load_core().pool_motion(rects.contiguous().numpy(), length.contiguous().numpy(), counts,
                                            frame_size, grid)
    return torch.from_numpy(sum_v), torch.from_numpy(sum_a)


def _motion_sums_cuda(rects, frame, length, t, rows_b, cols_b, hg, wg, frame_size):
    device = rects.device
    if hg * wg > _MAX_GPU_CELLS:
        raise ValueError(f"the CUDA motion pooling handles up to {_MAX_GPU_CELLS} patches per frame, got {hg * wg}")
    offsets = frame_offsets(frame, t)
    sum_v = torch.empty((t, hg, wg), dtype=torch.float32, device=device)
    sum_a = torch.empty((t, hg, wg), dtype=torch.int64, device=device)
    order = torch.empty(max(1, rects.shape[0]), dtype=torch.int32, device=device)  # blocks bucketed per frame
    kernel = _cuda.get_kernel(_KERNELS, "motion_sums_float32", device=device)
    _cuda.launch(kernel, None,
                 (rects.int().contiguous(), offsets, length.float().contiguous(), rows_b.int().contiguous(),
                  cols_b.int().contiguous(), np.int32(frame_size[0]), np.int32(frame_size[1]), np.int32(hg),
                  np.int32(wg), order, sum_v, sum_a),
                 grid=(t,), shared_mem=hg * wg * 4)  # one int per cell: the buckets' bounds
    return sum_v, sum_a


# ---------------------------------------------------------------------------------------------
# normalisation and fusion


def centre_prior(grid: tuple[int, int], strength: float, sigma: float,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """(Hg, Wg) float32 weights ``(1 - s) + s * exp(-d^2 / (2 sigma^2))``, d in half-grid units."""
    hg, wg = grid
    ys = (torch.arange(hg, dtype=torch.float64) + 0.5) / (hg / 2) - 1.0
    xs = (torch.arange(wg, dtype=torch.float64) + 0.5) / (wg / 2) - 1.0
    d2 = ys[:, None] ** 2 + xs[None, :] ** 2                                            # (Hg, Wg)
    prior = (1.0 - strength) + strength * torch.exp(-d2 / (2.0 * sigma * sigma))
    return prior.float().to(device)


def _quantile_position(p: int, q: float) -> tuple[int, int, float]:
    """Sorted-array indices and weight of the linear-interpolated q-quantile of p values."""
    pos = q * (p - 1)
    lo = int(math.floor(pos))
    return lo, min(lo + 1, p - 1), pos - lo


def _sorted_quantile(s: torch.Tensor, q: float) -> torch.Tensor:
    """q-quantile of each row of the row-sorted (T, P) float32 ``s``, in float32 arithmetic.

    Written out (rather than torch.quantile) so the CUDA twin can repeat the exact operations.
    """
    lo, hi, frac = _quantile_position(s.shape[1], q)
    w = torch.tensor(frac, dtype=torch.float32, device=s.device)
    return s[:, lo] + w * (s[:, hi] - s[:, lo])


def combine_saliency(motion: torch.Tensor, residual: torch.Tensor | None, is_iframe: torch.Tensor,
                     config: SaliencyConfig | None = None) -> torch.Tensor:
    """Normalise each channel per frame, fuse them, apply the centre prior; 0 on I-frames.

    Per frame and channel: ``floor`` = the ``noise_percentile`` quantile (residual only: the grain
    every cell shares; 0 for motion), ``scale = max(q_percentile - floor, reference)``, and the
    normalised value ``max(x - floor, 0) / scale``.

    Args:
        motion: (T, Hg, Wg) float32 from :func:`motion_energy_grid`.
        residual: (T, Hg, Wg) float32 from :func:`residual_energy_grid`, or None (motion only).
        is_iframe: (T,) bool.
    Returns:
        (T, Hg, Wg) float32 saliency (>= 0; about 1 for a frame's top-5 % patches when it moves).
    """
    config = config or SaliencyConfig()
    check_tensor("motion", motion, dtypes=(torch.float32,), ndims=(3,))
    if residual is not None:
        check_tensor("residual", residual, dtypes=(torch.float32,), ndims=(3,))
        if residual.shape != motion.shape:
            raise ValueError(f"residual {tuple(residual.shape)} and motion {tuple(motion.shape)} differ in shape")
    check_tensor("is_iframe", is_iframe, dtypes=(torch.bool,), ndims=(1,))
    t, hg, wg = motion.shape
    if is_iframe.shape[0] != t:
        raise ValueError(f"is_iframe has {is_iframe.shape[0]} frames, motion {t}")
    prior = centre_prior((hg, wg), config.centre_prior, config.centre_sigma, motion.device)
    wm, wr = fusion_weights(config, residual is not None)
    if _cuda.is_cuda(motion, is_iframe, *(() if residual is None else (residual,))):
        return _combine_cuda(motion, residual, is_iframe, prior, config, wm, wr)
    return _combine_cpu(motion, residual, is_iframe, prior, config, wm, wr)


def fusion_weights(config: SaliencyConfig, has_residual: bool) -> tuple[float, float]:
    """(motion, residual) weights of the fused score."""
    if not has_residual:
        return 1.0, 0.0  # the only channel carries the whole score, whatever the fusion
    if config.fusion == "mean":
        return 0.5, 0.5
    if config.fusion == "weighted":
        return config.motion_weight, 1.0 - config.motion_weight
    return 1.0, 1.0  # unused by "max"


def combine_kernel_constants(p: int, config: SaliencyConfig, has_residual: bool) -> dict[str, int | float]:
    """The scalar arguments of ``combine_saliency_float32`` for frames of ``p`` patches, by parameter name
    (the kernel also takes the fusion weights and the two references, see :func:`fusion_weights`)."""
    lo, hi, frac = _quantile_position(p, config.percentile)
    has_noise = config.noise_percentile is not None
    nlo, nhi, nfrac = _quantile_position(p, config.noise_percentile if has_noise else 0.0)
    return dict(p=p, padded=1 << max(0, (p - 1).bit_length()), lo=lo, hi=hi, frac=frac, has_noise=int(has_noise),
                nlo=nlo, nhi=nhi, nfrac=nfrac,
                mode=2 if not has_residual else (1 if config.fusion == "max" else 0))


def _combine_cpu(motion, residual, is_iframe, prior, config, wm, wr):
    t, hg, wg = motion.shape
    f32 = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731 - float32 scalars, as in the kernel

    def norm(x: torch.Tensor, reference: float, noise: float | None) -> torch.Tensor:
        flat = x.reshape(t, hg * wg)                                       # (T, P)
        s = flat.sort(dim=1).values
        floor = _sorted_quantile(s, noise) if noise is not None else torch.zeros(t, dtype=torch.float32)
        scale = torch.maximum(_sorted_quantile(s, config.percentile) - floor, f32(reference))
        return (flat - floor[:, None]).clamp_min(0.0) / scale[:, None]

    m = norm(motion, config.motion_reference, None)
    if residual is None:
        fused = m
    else:
        r = norm(residual, config.residual_reference, config.noise_percentile)
        fused = torch.maximum(m, r) if config.fusion == "max" else f32(wm) * m + f32(wr) * r
    fused = fused * prior.reshape(1, hg * wg)
    fused = torch.where(is_iframe[:, None], torch.zeros((), dtype=torch.float32), fused)
    return fused.reshape(t, hg, wg)


def _combine_cuda(motion, residual, is_iframe, prior, config, wm, wr):
    t, hg, wg = motion.shape
    p = hg * wg
    if p > _MAX_GPU_CELLS:
        raise ValueError(f"the CUDA saliency normaliser handles up to {_MAX_GPU_CELLS} patches per frame, got {p}")
    device = motion.device
    out = torch.empty_like(motion)
    has_res = residual is not None
    c = combine_kernel_constants(p, config, has_res)
    res = residual.contiguous() if has_res else motion.contiguous()  # dummy pointer when absent
    kernel = _cuda.get_kernel(_KERNELS, "combine_saliency_float32", device=device)
    _cuda.launch(kernel, None,
                 (motion.contiguous(), res, is_iframe.contiguous().view(torch.uint8), prior.contiguous(),
                  np.int32(p), np.int32(c["padded"]), np.int32(c["lo"]), np.int32(c["hi"]), np.float32(c["frac"]),
                  np.int32(c["has_noise"]), np.int32(c["nlo"]), np.int32(c["nhi"]), np.float32(c["nfrac"]),
                  np.float32(config.motion_reference), np.float32(config.residual_reference),
                  np.float32(wm), np.float32(wr), np.int32(c["mode"]), out),
                 threads_per_block=min(1024, c["padded"]), grid=(t,), shared_mem=c["padded"] * 4)
    return out


# ---------------------------------------------------------------------------------------------
# one call


def patch_saliency(vectors: Sequence[torch.Tensor], residuals: Sequence[torch.Tensor | None] | torch.Tensor | None,
                   is_iframe: torch.Tensor, frame_size: tuple[int, int], grid: tuple[int, int],
                   model_size: tuple[int, int] | None = None, *,
                   config: SaliencyConfig | None = None) -> SaliencyResult:
    """Saliency of a clip from its per-frame vectors and residuals.

    Args:
        vectors: T tensors (N_t, 10) int32 (empty for I-frames).
        residuals: (T, H, W) int16, or T entries of (H, W) int16 / None (I-frames), or None
            (no residuals: motion only).
        is_iframe: (T,) bool, frames kept whole by selection.
        frame_size, grid, model_size: see :func:`motion_energy_grid`.
    """
    config = config or SaliencyConfig()
    motion, fallback = motion_energy_grid(vectors, frame_size, grid, model_size, camera=config.camera)
    residual = None
    if isinstance(residuals, torch.Tensor):
        residual = residual_energy_grid(residuals, grid)
    elif residuals is not None:
        if len(residuals) != len(vectors):
            raise ValueError(f"got {len(residuals)} residual frames for {len(vectors)} vector frames")
        if any(r is not None for r in residuals):
            zeros = torch.zeros(grid, dtype=torch.float32, device=motion.device)
            residual = torch.stack([zeros if r is None else residual_energy_grid(r, grid) for r in residuals])
    saliency = combine_saliency(motion, residual, is_iframe.to(motion.device), config)
    return SaliencyResult(saliency, motion, residual, is_iframe, fallback)
