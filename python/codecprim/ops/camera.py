"""Camera-motion models fitted on codec block vectors, and their compensation.

A frame's block vectors say, for each block centre ``p``, where its content came from in the
reference: ``p + m`` (FFmpeg's AVMotionVector convention, see :mod:`codecprim.reader`). A global
camera motion is a 2-D transform ``T`` with ``T(p) ~ p + m`` for the background blocks; what is
left after removing it, ``m - (T(p) - p)``, is the motion of things that move on their own.

Models (``CAMERA_MODELS``):

* ``"none"``: ``T`` is the identity, nothing is removed.
* ``"median"``: a translation, the per-axis median of the vectors (robust to < 50 % movers).
* ``"similarity"``: ``x' = a x - b y + tx, y' = b x + a y + ty`` (zoom, roll, pan).
* ``"affine"``: six free parameters.

The last two are robust least squares with iterative trimming: fit on all vectors, then refit on
the vectors whose residual is at most ``max(cutoff * median residual, min_threshold)`` and among
the ``1 - trim_fraction`` best; repeat ``iterations`` times. A frame with fewer than
``min_vectors`` vectors, or whose vectors are too concentrated in space to pin the model down,
falls back to the median translation (reported in :attr:`CameraFit.fallback`).

Everything is batched over frames with padding (``valid`` masks), written with torch ops only, so
it runs on whichever device the inputs live on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..reader import MV

__all__ = [
    "CAMERA_MODELS",
    "CameraConfig",
    "CameraFit",
    "block_centres_and_motion",
    "camera_motion",
    "compensate_motion",
    "fit_camera",
]

CAMERA_MODELS = ("none", "median", "similarity", "affine")


@dataclass(frozen=True)
class CameraConfig:
    """Robust fitting knobs (defaults suit H.264 vectors in pixels at the coded resolution)."""

    model: str = "similarity"
    iterations: int = 5          # trimmed refits after the first plain fit
    trim_fraction: float = 0.2   # at most this share of the vectors is dropped per refit
    cutoff: float = 3.0          # residuals above cutoff x median residual are outliers ...
    min_threshold: float = 1.0   # ... but never below this many pixels (quarter-pel noise)
    min_vectors: int = 8         # fewer vectors than this: median translation instead

    def __post_init__(self) -> None:
        if self.model not in CAMERA_MODELS:
            raise ValueError(f"camera model must be one of {CAMERA_MODELS}, got {self.model!r}")
        if self.iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")
        if not 0.0 <= self.trim_fraction < 1.0:
            raise ValueError(f"trim_fraction must be in [0, 1), got {self.trim_fraction}")
        if self.cutoff <= 0 or self.min_threshold < 0:
            raise ValueError("cutoff must be > 0 and min_threshold >= 0")
        if self.min_vectors < 3:
            raise ValueError(f"min_vectors must be >= 3 (an affine fit needs 3), got {self.min_vectors}")


@dataclass
class CameraFit:
    """Fitted camera transforms of a batch of frames.

    ``matrix`` (B, 2, 3) float32 maps a point ``p`` (pixels) to ``matrix[:, :, :2] @ p +
    matrix[:, :, 2]``, its position in the reference; ``fallback`` (B,) bool marks frames that
    used the median translation instead of the requested model; ``inliers`` (B, N) bool are the
    vectors of the last refit (all valid ones for "median"/"none").
    """

    matrix: torch.Tensor
    fallback: torch.Tensor
    inliers: torch.Tensor


def block_centres_and_motion(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split the core's (N, 10) int32 vector rows into centres, motion and block area.

    Returns ``centres`` (N, 2) float32 (dst_x, dst_y), ``motion`` (N, 2) float32 in pixels towards
    the *past* reference, and ``area`` (N,) float32. Rows pointing to a future reference
    (source = +1, B-frames) are negated so that every vector reads as "where the content was one
    reference back"; this keeps bidirectional frames on one sign convention.
    """
    if rows.ndim != 2 or rows.shape[1] != MV.ncols:
        raise ValueError(f"motion vector rows must have shape (N, {MV.ncols}), got {tuple(rows.shape)}")
    rows_f = rows.to(torch.float32)
    centres = rows_f[:, MV.dst_x:MV.dst_y + 1]
    scale = rows_f[:, MV.motion_scale:MV.motion_scale + 1].clamp_min(1.0)
    direction = torch.where(rows[:, MV.source:MV.source + 1] > 0, -1.0, 1.0).to(torch.float32)
    motion = rows_f[:, MV.motion_x:MV.motion_y + 1] / scale * direction
    area = rows_f[:, MV.w] * rows_f[:, MV.h]
    return centres, motion, area


def camera_motion(matrix: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Motion the camera alone gives at ``points``: ``T(p) - p``.

    ``matrix`` (B, 2, 3), ``points`` (B, N, 2) -> (B, N, 2), same dtype as ``points``.
    """
    m = matrix.to(points.dtype)
    mapped = torch.einsum("bij,bnj->bni", m[:, :, :2], points) + m[:, None, :, 2]  # (B, N, 2)
    return mapped - points


def compensate_motion(centres: torch.Tensor, motion: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Motion left after removing the camera: ``m - (T(p) - p)``, shapes (B, N, 2)."""
    return motion - camera_motion(matrix, centres)


def _masked_median(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-row lower median of ``values`` (B, N, C) over ``valid`` (B, N); 0 where none is valid."""
    filled = torch.where(valid[..., None], values, torch.nan)
    med = torch.nanmedian(filled, dim=1).values  # (B, C)
    return torch.nan_to_num(med, nan=0.0)


def _translation_matrix(shift: torch.Tensor) -> torch.Tensor:
    """(B, 2) shift -> (B, 2, 3) transform p -> p + shift."""
    eye = torch.eye(2, 3, dtype=shift.dtype, device=shift.device).expand(shift.shape[0], 2, 3).clone()
    eye[:, :, 2] = shift
    return eye


def _weighted_fit(model: str, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Weighted LS fit of ``model`` mapping normalised points ``x`` to ``y``, both (B, N, 2) float64.

    ``w`` (B, N) >= 0. Returns (B, 2, 3) float64 in the normalised frame. The normal equations are
    assembled from weighted moments (no (B, 2N, k) design matrix). Singular systems get a tiny
    ridge so the solve never fails; callers reject those frames by their point spread.
    """
    ones = torch.ones_like(x[..., :1])
    h = torch.cat([x, ones], dim=-1)                                     # (B, N, 3): x, y, 1
    moments = torch.einsum("bn,bni,bnj->bij", w, h, h)                   # (B, 3, 3)
    cross = torch.einsum("bn,bni,bnj->bij", w, h, y)                     # (B, 3, 2): sum w h y'^T
    if model == "similarity":
        # unknowns (a, b, tx, ty): x' = a x - b y + tx, y' = b x + a y + ty
        sxx = moments[:, 0, 0] + moments[:, 1, 1]
        sx, sy, sw = moments[:, 0, 2], moments[:, 1, 2], moments[:, 2, 2]
        zero = torch.zeros_like(sw)
        normal = torch.stack([
            torch.stack([sxx, zero, sx, sy], -1),
            torch.stack([zero, sxx, -sy, sx], -1),
            torch.stack([sx, -sy, sw, zero], -1),
            torch.stack([sy, sx, zero, sw], -1)], dim=1)                 # (B, 4, 4)
        rhs = torch.stack([cross[:, 0, 0] + cross[:, 1, 1], cross[:, 0, 1] - cross[:, 1, 0],
                           cross[:, 2, 0], cross[:, 2, 1]], dim=-1)      # (B, 4)
    else:
        # x' and y' are two independent 3-parameter fits sharing the moment matrix
        normal, rhs = moments, cross                                     # (B, 3, 3), (B, 3, 2)
    k = normal.shape[-1]
    ridge = 1e-9 * (normal.diagonal(dim1=1, dim2=2).sum(-1) + 1.0)       # (B,)
    normal = normal + ridge[:, None, None] * torch.eye(k, dtype=normal.dtype, device=normal.device)
    if model == "similarity":
        a, b, tx, ty = torch.linalg.solve(normal, rhs).unbind(-1)
        return torch.stack([torch.stack([a, -b, tx], -1), torch.stack([b, a, ty], -1)], dim=1)
    theta = torch.linalg.solve(normal, rhs)                              # (B, 3, 2)
    return theta.transpose(1, 2)                                         # (B, 2, 3)


def _normalisation(points: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre (B, 2) and scale (B,) that make the valid points zero-mean with unit RMS radius."""
    w = valid.to(points.dtype)
    count = w.sum(1).clamp_min(1.0)                                        # (B,)
    centre = (points * w[..., None]).sum(1) / count[:, None]               # (B, 2)
    spread = (((points - centre[:, None]) ** 2).sum(-1) * w).sum(1) / count  # (B,)
    scale = spread.sqrt().clamp_min(1e-6)
    return centre, scale


def _denormalise(matrix_n: torch.Tensor, centre: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Undo p_n = (p - c) / s on both sides: T(p) = s * Tn((p - c) / s) + c."""
    lin = matrix_n[:, :, :2]                                               # (B, 2, 2)
    shift = matrix_n[:, :, 2] * scale[:, None] + centre - (lin @ centre[..., None])[..., 0]
    return torch.cat([lin, shift[..., None]], dim=-1)


def _degenerate(model: str, points: torch.Tensor, inliers: torch.Tensor, scale_floor: float) -> torch.Tensor:
    """Frames whose inliers cannot determine ``model``: too few, or too concentrated in space.

    Similarity needs spread in any direction; affine needs spread in both (the smaller eigenvalue
    of the inliers' covariance), else it would extrapolate a shear from a line of blocks.
    """
    w = inliers.to(points.dtype)
    count = w.sum(1).clamp_min(1.0)
    centre = (points * w[..., None]).sum(1) / count[:, None]
    d = (points - centre[:, None]) * w[..., None]                          # (B, N, 2)
    cov = d.transpose(1, 2) @ (points - centre[:, None]) / count[:, None, None]  # (B, 2, 2)
    if model == "similarity":
        spread = cov.diagonal(dim1=1, dim2=2).sum(-1)
    else:
        spread = torch.linalg.eigvalsh(cov)[:, 0]
    return spread < scale_floor ** 2


def _order_statistics(values: torch.Tensor, *ranks: torch.Tensor) -> list[torch.Tensor]:
    """For each ``rank`` (B,) int64: (B, 1) the ``rank[b]``-th smallest (0-based, clamped at 0) of row b of
    ``values`` (B, N), exactly the value a sort would give.

    On the CPU one ``np.partition`` per row finds all ranks at once, in linear time: 3x faster than sorting the
    rows, whose cost dominated the camera fit; on other devices the rows are sorted.
    """
    ranks = [r.clamp_min(0) for r in ranks]
    if values.device.type != "cpu":
        ordered = values.sort(dim=1).values
        return [ordered.gather(1, r[:, None]) for r in ranks]
    rows = values.numpy()
    wanted = torch.stack(ranks, dim=1).tolist()  # (B, R)
    out = np.empty((len(ranks), rows.shape[0]), dtype=rows.dtype)
    for b, kth in enumerate(wanted):
        out[:, b] = np.partition(rows[b], sorted(set(kth)))[kth]
    return [torch.from_numpy(o)[:, None] for o in out]


def fit_camera(centres: torch.Tensor, motion: torch.Tensor, valid: torch.Tensor | None = None, *,
               weights: torch.Tensor | None = None, config: CameraConfig | None = None,
               model: str | None = None) -> CameraFit:
    """Fit a camera transform per frame on block vectors (centres -> centres + motion).

    Args:
        centres: (B, N, 2) or (N, 2) block centres in pixels.
        motion: same shape, vectors in pixels (see :func:`block_centres_and_motion`).
        valid: (B, N) / (N,) bool, which rows are real (padding otherwise); default all.
        weights: optional per-vector weights (e.g. block area) for the least squares.
        config: fitting knobs; ``model`` overrides ``config.model``.
    Returns:
        :class:`CameraFit` with a leading batch dimension (B = 1 for unbatched input).
    """
    config = config or CameraConfig()
    model = config.model if model is None else model
    if model not in CAMERA_MODELS:
        raise ValueError(f"camera model must be one of {CAMERA_MODELS}, got {model!r}")
    if centres.shape != motion.shape or centres.shape[-1] != 2 or centres.ndim not in (2, 3):
        raise ValueError(f"centres and motion must both be (B, N, 2) or (N, 2), got "
                         f"{tuple(centres.shape)} and {tuple(motion.shape)}")
    if centres.ndim == 2:
        centres, motion = centres[None], motion[None]
        valid = None if valid is None else valid[None]
        weights = None if weights is None else weights[None]
    batch, n = centres.shape[:2]
    device = centres.device
    valid = torch.ones(batch, n, dtype=torch.bool, device=device) if valid is None else valid.to(torch.bool)
    p = centres.to(torch.float64)
    m = motion.to(torch.float64)
    w = torch.ones(batch, n, dtype=torch.float64, device=device) if weights is None else weights.to(torch.float64)
    w = w * valid

    median = _translation_matrix(_masked_median(m, valid))                # (B, 2, 3)
    if model == "none":
        identity = _translation_matrix(torch.zeros(batch, 2, dtype=torch.float64, device=device))
        return CameraFit(identity.float(), torch.zeros(batch, dtype=torch.bool, device=device), valid.clone())
    n_valid = valid.sum(1)
    if model == "median":
        return CameraFit(median.float(), torch.zeros(batch, dtype=torch.bool, device=device), valid.clone())

    centre, scale = _normalisation(p, valid)
    xn = (p - centre[:, None]) / scale[:, None, None]                     # (B, N, 2)
    yn = (p + m - centre[:, None]) / scale[:, None, None]
    inliers = valid.clone()
    keep_max = torch.ceil((1.0 - config.trim_fraction) * n_valid.to(torch.float64)).long()  # (B,)
    keep_min = torch.minimum(n_valid, torch.full_like(n_valid, config.min_vectors))
    matrix_n = _weighted_fit(model, xn, yn, w * inliers)
    for _ in range(config.iterations):
        pred = torch.einsum("bij,bnj->bni", matrix_n[:, :, :2], xn) + matrix_n[:, None, :, 2]
        resid = (pred - yn).norm(dim=-1) * scale[:, None]                 # (B, N) in pixels
        resid = torch.where(valid, resid, torch.inf)                      # padding sorts last
        # (B, 1) each: the keep_max-th and keep_min-th smallest residuals and the lower median
        kth_max, kth_min, med = _order_statistics(resid, keep_max - 1, keep_min - 1, (n_valid - 1) // 2)
        threshold = torch.clamp_min(config.cutoff * med, config.min_threshold)
        # keep the best (1 - trim) share, of which those under the threshold, but at least min_vectors
        inliers = valid & (resid <= kth_max) & ((resid <= threshold) | (resid <= kth_min))
        matrix_n = _weighted_fit(model, xn, yn, w * inliers)
    matrix = _denormalise(matrix_n, centre, scale)
    # half a pixel of spread is far below one 8x8 block: the points nearly coincide
    fallback = (n_valid < config.min_vectors) | _degenerate(model, p, inliers, 0.5)
    matrix = torch.where(fallback[:, None, None], median, matrix)
    inliers = torch.where(fallback[:, None], valid, inliers)
    return CameraFit(matrix.float(), fallback, inliers)
