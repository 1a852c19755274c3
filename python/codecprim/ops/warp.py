"""Motion-compensated prediction from block vectors, and the residual energy it leaves.

One function measures codec vectors and estimated vectors (:mod:`codecprim.ops.motion_estimation`)
the same way. A row ``(source, w, h, src_x, src_y, dst_x, dst_y, motion_x, motion_y,
motion_scale)`` covers ``x`` in ``[dst_x - w//2, dst_x - w//2 + w)``, ``y`` likewise, clipped to
the frame; its pixel ``(x, y)`` is predicted from the reference at ``(x + motion_x / S, y +
motion_y / S)`` with ``S = motion_scale``, by bilinear interpolation in exact integer arithmetic::

    X = S x + motion_x,  ix = floor(X / S),  fx = X - S ix   (y likewise)
    pred = ((S-fx)(S-fy) A + fx (S-fy) B + (S-fx) fy C + fx fy D + S*S/2) // (S*S)

with ``A, B, C, D`` the reference at ``(ix, iy), (ix+1, iy), (ix, iy+1), (ix+1, iy+1)``, edge
clamped. For ``S = 4`` this is exactly the estimator's sub-pel interpolation. Where rows overlap,
the row with the highest index wins (as in :mod:`codecprim.ops.dense`); pixels no row covers
(intra-coded blocks) keep the co-located reference pixel and are reported as not covered.

The source column is not interpreted: pass the rows of one reference (e.g. ``source == -1``).

:func:`compare_to_codec` runs that measurement over a decoded clip: motion-compensated residual
energy with the codec's vectors versus an estimator's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from codecprim.ops._checks import check_tensor
from codecprim.reader import MV

__all__ = ["ResidualComparison", "compare_to_codec", "predict_from_vectors", "residual_energy"]


def _check_rows(mvs: torch.Tensor) -> None:
    check_tensor("mvs", mvs, dtypes=(torch.int32,), ndims=(2,))
    if mvs.shape[1] != MV.ncols:
        raise ValueError(f"mvs must have {MV.ncols} columns (the core reader's layout); "
                         f"got shape {tuple(mvs.shape)}")
    if mvs.shape[0] and ((mvs[:, MV.motion_scale] <= 0).any() or (mvs[:, MV.w] < 0).any()
                         or (mvs[:, MV.h] < 0).any()):
        raise ValueError("mvs rows need motion_scale > 0 and w, h >= 0")


def _row_pixels(mvs: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (row index, flat pixel index) pair of the rows' clipped rectangles, (P,) int64 each."""
    dev = mvs.device
    row_ids, pixels = [], []
    sizes = torch.unique(mvs[:, MV.w:MV.h + 1].long(), dim=0)
    for w, h in sizes.tolist():
        sel = torch.nonzero((mvs[:, MV.w] == w) & (mvs[:, MV.h] == h)).squeeze(1)   # (n,)
        if w == 0 or h == 0:
            continue
        left = mvs[sel, 5].long() - w // 2
        top = mvs[sel, 6].long() - h // 2
        ys = top[:, None, None] + torch.arange(h, device=dev)[None, :, None]  # (n, h, 1)
        xs = left[:, None, None] + torch.arange(w, device=dev)[None, None, :]  # (n, 1, w)
        inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)         # (n, h, w)
        flat = ys * width + xs                                                # (n, h, w)
        ids = sel[:, None, None].expand(-1, h, w)
        row_ids.append(ids[inside])
        pixels.append(flat[inside])
    if not row_ids:
        empty = torch.zeros(0, dtype=torch.long, device=dev)
        return empty, empty
    return torch.cat(row_ids), torch.cat(pixels)


def predict_from_vectors(ref: torch.Tensor, mvs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Motion-compensated prediction of a frame from reference luma ``ref`` (H, W) uint8.

    ``mvs`` (N, 10) int32 rows in the core reader's layout (see the module docstring). Returns
    the prediction (H, W) uint8 (the co-located reference pixel where no row applies) and the
    coverage mask (H, W) bool.
    """
    check_tensor("ref", ref, dtypes=(torch.uint8,), ndims=(2,))
    _check_rows(mvs)
    height, width = ref.shape
    pred = ref.clone()
    covered = torch.zeros(height, width, dtype=torch.bool, device=ref.device)
    if mvs.shape[0] == 0:
        return pred, covered
    mvs = mvs.to(ref.device)
    row_ids, pixels = _row_pixels(mvs, height, width)
    # Deterministic overlaps: the highest row index owns a pixel.
    owner = torch.full((height * width,), -1, dtype=torch.long, device=ref.device)
    owner.scatter_reduce_(0, pixels, row_ids, reduce="amax")
    mine = owner[pixels] == row_ids
    row_ids, pixels = row_ids[mine], pixels[mine]

    rows = mvs[row_ids].long()                     # (P, 10)
    scale = rows[:, MV.motion_scale]
    X = scale * (pixels % width) + rows[:, MV.motion_x]
    Y = scale * (pixels // width) + rows[:, MV.motion_y]
    ix, iy = torch.div(X, scale, rounding_mode="floor"), torch.div(Y, scale, rounding_mode="floor")
    fx, fy = X - scale * ix, Y - scale * iy
    flat = ref.reshape(-1).long()

    def at(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        return flat[yy.clamp(0, height - 1) * width + xx.clamp(0, width - 1)]

    total = ((scale - fx) * (scale - fy) * at(iy, ix) + fx * (scale - fy) * at(iy, ix + 1)
             + (scale - fx) * fy * at(iy + 1, ix) + fx * fy * at(iy + 1, ix + 1))
    values = torch.div(total + scale * scale // 2, scale * scale, rounding_mode="floor")
    pred.view(-1)[pixels] = values.to(torch.uint8)
    covered.view(-1)[pixels] = True
    return pred, covered


def residual_energy(cur: torch.Tensor, ref: torch.Tensor, mvs: torch.Tensor,
                    mask: torch.Tensor | None = None) -> tuple[float, int]:
    """Sum of ``|cur - predict_from_vectors(ref, mvs)|`` over ``mask`` and the pixel count.

    ``mask`` (H, W) bool defaults to the pixels the rows cover. Returning the sum and the count
    lets callers pool clips exactly (mean = sum / count).
    """
    check_tensor("cur", cur, dtypes=(torch.uint8,), ndims=(2,))
    if cur.shape != ref.shape:
        raise ValueError(f"cur and ref must have one shape; got {tuple(cur.shape)} and {tuple(ref.shape)}")
    pred, covered = predict_from_vectors(ref, mvs)
    if mask is None:
        mask = covered
    diff = (cur.to(torch.int32) - pred.to(torch.int32)).abs()
    return float(diff[mask].sum()), int(mask.sum())


@dataclass
class ResidualComparison:
    """Pooled residual energy of a clip's P-frames: codec vectors versus estimated ones.

    Sums run over the pixels the codec's past-reference rows cover (its inter-coded pixels), the
    same pixels for both sides, so intra-coded areas count for neither.
    """

    codec_sum: float = 0.0
    estimated_sum: float = 0.0
    pixels: int = 0
    frames: int = 0
    estimate_seconds: float = 0.0      # wall clock spent in the estimator
    estimate_cpu_seconds: float = 0.0  # process CPU time spent in it (robust to a busy machine)

    @property
    def codec_energy(self) -> float:
        """Mean |luma - prediction| with the codec's vectors."""
        return self.codec_sum / max(self.pixels, 1)

    @property
    def estimated_energy(self) -> float:
        """Mean |luma - prediction| with the estimated vectors."""
        return self.estimated_sum / max(self.pixels, 1)

    @property
    def ratio(self) -> float:
        """estimated / codec energy (1.0: as good as the encoder's own search)."""
        return self.estimated_sum / self.codec_sum if self.codec_sum else float("nan")

    @property
    def ms_per_frame(self) -> float:
        """Wall-clock milliseconds of the estimator per P-frame."""
        return 1000.0 * self.estimate_seconds / max(self.frames, 1)

    @property
    def cpu_ms_per_frame(self) -> float:
        """Process CPU milliseconds of the estimator per P-frame."""
        return 1000.0 * self.estimate_cpu_seconds / max(self.frames, 1)


def compare_to_codec(frames: Iterable, estimate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                     *, max_frames: int | None = None) -> ResidualComparison:
    """Residual energy of every P-frame with the codec's vectors and with ``estimate(luma, ref)``.

    ``frames`` yields objects with ``pict_type``, ``luma`` and ``motion_vectors`` in display order
    (frames of :func:`codecprim.open`). A P-frame's reference is the latest I- or P-frame before
    it: exact for single-reference streams without B-frames; with several references the codec's
    rows may point further back (the reference index is not exported), which only inflates the
    codec side. ``max_frames`` stops after that many frames.
    """
    out = ResidualComparison()
    anchor = None
    for i, frame in enumerate(frames):
        if max_frames is not None and i >= max_frames:
            break
        if frame.pict_type == "P" and anchor is not None:
            mvs = frame.motion_vectors
            mvs = mvs[mvs[:, MV.source] < 0]
            _, covered = predict_from_vectors(anchor, mvs)
            codec_sum, count = residual_energy(frame.luma, anchor, mvs, covered)
            start, start_cpu = time.perf_counter(), time.process_time()
            estimated = estimate(frame.luma, anchor)
            out.estimate_seconds += time.perf_counter() - start
            out.estimate_cpu_seconds += time.process_time() - start_cpu
            est_sum, _ = residual_energy(frame.luma, anchor, estimated, covered)
            out.codec_sum += codec_sum
            out.estimated_sum += est_sum
            out.pixels += count
            out.frames += 1
        if frame.pict_type in ("I", "P"):
            anchor = frame.luma
    return out
