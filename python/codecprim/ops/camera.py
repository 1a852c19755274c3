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

On the CPU each frame is fitted by the C++ core (``csrc/camera_fit.cpp``, order statistics by selection); on
other devices the frames are batched with padding (``valid`` masks) in torch ops, sorting for the order
statistics. Both follow this contract; they differ only in float64 rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import _cuda
from ..reader import MV, _load_core

__all__ = [
    "CAMERA_MODELS",
    "CameraConfig",
    "CameraFit",
    "block_centres_and_motion",
    "camera_motion",
    "compensate_motion",
    "fit_camera",
]

CAMERA_MODELS = ("none", "median", "similarity", "affine")  # the core's CameraModel codes, in order


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

    Computed as ``(A - I) p + t`` in float64 and rounded once. In float32, ``A p + t - p`` loses about
    seven bits to cancellation at p ~ 100 px, and the einsum's summation order differs between the
    CPU and CUDA, so the motion twins disagreed by 2.2e-5 px on similarity/affine fits; now both
    devices round the same float64 value and agree to an ulp of the result.
    """
    m = matrix.to(torch.float64)
    deviation = m[:, :, :2] - torch.eye(2, dtype=torch.float64, device=m.device)  # (B, 2, 2)
    moved = torch.einsum("bij,bnj->bni", deviation, points.to(torch.float64)) + m[:, None, :, 2]  # (B, N, 2)
    return moved.to(points.dtype)


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


def _fit_features(model: str, u: torch.Tensor, v: torch.Tensor, up: torch.Tensor, vp: torch.Tensor) -> torch.Tensor:
    """Per-point products whose weighted sums are the normal equations of ``model``: (B, F, N) float64 for
    normalised points ``(u, v)`` mapped to ``(u', v')``, each (B, N).

    The points never change between the trimmed refits, only their weights, so each refit is one weighted
    sum over these rows (:func:`_weighted_sums`) instead of rebuilding the moments from the points. The
    first four rows (three for affine's moments: 1, u, v, then u^2, uv, v^2) also give the spread of the
    inliers (:func:`_degenerate`).
    """
    batch, n = u.shape
    features = torch.empty((batch, 8 if model == "similarity" else 12, n), dtype=u.dtype, device=u.device)
    # written row by row into one buffer: stacking fresh temporaries cost as much as the whole fit
    features[:, 0] = 1.0
    if model == "similarity":
        # sum w, w u, w v, w (u^2 + v^2) | rhs: w (u u' + v v'), w (u v' - v u'), w u', w v'
        torch.mul(u, u, out=features[:, 3]).addcmul_(v, v)
        torch.mul(u, up, out=features[:, 4]).addcmul_(v, vp)
        torch.mul(u, vp, out=features[:, 5]).addcmul_(v, up, value=-1.0)
        copies = {1: u, 2: v, 6: up, 7: vp}
    else:
        # the moments of (u, v, 1) | rhs: (u, v, 1) times u' and v'
        for row, (x, y) in {3: (u, u), 4: (u, v), 5: (v, v), 6: (u, up), 7: (v, up), 9: (u, vp), 10: (v, vp)}.items():
            torch.mul(x, y, out=features[:, row])
        copies = {1: u, 2: v, 8: up, 11: vp}
    for row, x in copies.items():
        features[:, row] = x
    return features


def _weighted_sums(features: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(B, F) sums of :func:`_fit_features` rows weighted by ``w`` (B, N)."""
    return (features @ w[:, :, None])[:, :, 0]


def _weighted_fit(model: str, sums: torch.Tensor) -> torch.Tensor:
    """Weighted LS fit of ``model`` from :func:`_weighted_sums` (B, F).

    Returns (B, 2, 3) float64 in the normalised frame. Singular systems get a tiny ridge so the solve never
    fails; callers reject those frames by their point spread.
    """
    if model == "similarity":
        # unknowns (a, b, tx, ty): x' = a x - b y + tx, y' = b x + a y + ty
        sw, sx, sy, sxx = sums[:, :4].unbind(-1)
        zero = torch.zeros_like(sw)
        normal = torch.stack([
            torch.stack([sxx, zero, sx, sy], -1),
            torch.stack([zero, sxx, -sy, sx], -1),
            torch.stack([sx, -sy, sw, zero], -1),
            torch.stack([sy, sx, zero, sw], -1)], dim=1)                 # (B, 4, 4)
        rhs = sums[:, 4:]                                                 # (B, 4)
    else:
        # x' and y' are two independent 3-parameter fits sharing the moment matrix of (x, y, 1)
        sw, sx, sy, sxx, sxy, syy = sums[:, :6].unbind(-1)
        normal = torch.stack([torch.stack([sxx, sxy, sx], -1), torch.stack([sxy, syy, sy], -1),
                              torch.stack([sx, sy, sw], -1)], dim=1)     # (B, 3, 3)
        rhs = sums[:, 6:].reshape(-1, 2, 3).transpose(1, 2)               # (B, 3, 2)
    k = normal.shape[-1]
    ridge = 1e-9 * (normal.diagonal(dim1=1, dim2=2).sum(-1) + 1.0)       # (B,)
    normal = normal + ridge[:, None, None] * torch.eye(k, dtype=normal.dtype, device=normal.device)
    if model == "similarity":
        a, b, tx, ty = torch.linalg.solve(normal, rhs).unbind(-1)
        return torch.stack([torch.stack([a, -b, tx], -1), torch.stack([b, a, ty], -1)], dim=1)
    theta = torch.linalg.solve(normal, rhs)                              # (B, 3, 2)
    return theta.transpose(1, 2)                                         # (B, 2, 3)


def _normalisation(x: torch.Tensor, y: torch.Tensor, valid: torch.Tensor, count: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre (B, 2) and scale (B,) that make the valid points ``(x, y)`` (B, N) zero-mean with unit RMS
    radius; ``count`` (B,) float64 valid points, at least 1."""
    w = valid.to(x.dtype)
    cx, cy = (x * w).sum(1) / count, (y * w).sum(1) / count                # (B,)
    dx, dy = x - cx[:, None], y - cy[:, None]
    spread = ((dx * dx + dy * dy) * w).sum(1) / count                     # (B,)
    return torch.stack([cx, cy], dim=1), spread.sqrt().clamp_min(1e-6)


def _denormalise(matrix_n: torch.Tensor, centre: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Undo p_n = (p - c) / s on both sides: T(p) = s * Tn((p - c) / s) + c."""
    lin = matrix_n[:, :, :2]                                               # (B, 2, 2)
    shift = matrix_n[:, :, 2] * scale[:, None] + centre - (lin @ centre[..., None])[..., 0]
    return torch.cat([lin, shift[..., None]], dim=-1)


def _degenerate(model: str, sums: torch.Tensor, scale: torch.Tensor, scale_floor: float) -> torch.Tensor:
    """Frames whose inliers cannot determine ``model``: too few, or too concentrated in space.

    ``sums`` (B, F) are the inliers' unweighted :func:`_weighted_sums` in the normalised frame (zero-mean, unit
    RMS radius, so the moments do not cancel), ``scale`` (B,) its pixels per unit. Similarity needs spread in
    any direction; affine needs spread in both (the smaller eigenvalue of the inliers' covariance), else it
    would extrapolate a shear from a line of blocks.
    """
    count = sums[:, 0].clamp_min(1.0)
    mu, mv = sums[:, 1] / count, sums[:, 2] / count
    if model == "similarity":
        spread = sums[:, 3] / count - mu * mu - mv * mv
    else:
        cuu, cuv, cvv = sums[:, 3] / count - mu * mu, sums[:, 4] / count - mu * mv, sums[:, 5] / count - mv * mv
        cov = torch.stack([torch.stack([cuu, cuv], -1), torch.stack([cuv, cvv], -1)], dim=1)  # (B, 2, 2)
        spread = torch.linalg.eigvalsh(cov)[:, 0]
    return spread * scale * scale < scale_floor ** 2


def _order_statistics(values: torch.Tensor, *ranks: torch.Tensor) -> list[torch.Tensor]:
    """For each ``rank`` (B,) int64: (B, 1) the ``rank[b]``-th smallest (0-based, clamped at 0) of row b of
    ``values`` (B, N)."""
    ordered = values.sort(dim=1).values
    return [ordered.gather(1, r.clamp_min(0)[:, None]) for r in ranks]


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
    if device.type == "cpu" and not _cuda.is_cuda(centres):  # host emulation of the kernels takes the GPU path
        matrix, fallback, inliers = _load_core().fit_camera(
            centres.to(torch.float64).contiguous().numpy(), motion.to(torch.float64).contiguous().numpy(),
            valid.contiguous().view(torch.uint8).numpy(),
            None if weights is None else weights.to(torch.float64).contiguous().numpy(), *camera_options(config, model))
        return CameraFit(torch.from_numpy(matrix), torch.from_numpy(fallback).bool(), torch.from_numpy(inliers).bool())
    return _fit_camera_torch(centres, motion, valid, weights, config, model)


def camera_options(config: CameraConfig, model: str | None = None) -> tuple:
    """The core's camera-fit arguments (model code, iterations, trim_fraction, cutoff, min_threshold,
    min_vectors) of ``config``, with ``model`` instead of ``config.model`` when given."""
    return (CAMERA_MODELS.index(config.model if model is None else model), config.iterations, config.trim_fraction,
            config.cutoff, config.min_threshold, config.min_vectors)


def _fit_camera_torch(centres: torch.Tensor, motion: torch.Tensor, valid: torch.Tensor,
                      weights: torch.Tensor | None, config: CameraConfig, model: str) -> CameraFit:
    """:func:`fit_camera` on (B, N, 2) inputs in batched torch ops (the GPU path; any device works)."""
    batch, n = centres.shape[:2]
    device = centres.device
    f64 = torch.float64
    px, py = centres[..., 0].to(f64), centres[..., 1].to(f64)             # (B, N) each, contiguous
    mx, my = motion[..., 0].to(f64), motion[..., 1].to(f64)
    w = valid.to(f64) if weights is None else weights.to(f64) * valid

    n_valid = valid.sum(1)
    no_fit = torch.zeros(batch, dtype=torch.bool, device=device)
    if model == "none":
        identity = _translation_matrix(torch.zeros(batch, 2, dtype=f64, device=device))
        return CameraFit(identity.float(), no_fit, valid.clone())
    if model == "median":
        median = _translation_matrix(_masked_median(torch.stack([mx, my], -1), valid))  # (B, 2, 3)
        return CameraFit(median.float(), no_fit, valid.clone())

    count = n_valid.to(f64).clamp_min(1.0)
    centre, scale = _normalisation(px, py, valid, count)
    cx, cy, s = centre[:, 0, None], centre[:, 1, None], scale[:, None]
    un, vn = (px - cx) / s, (py - cy) / s                                 # (B, N) normalised points
    upn, vpn = (px + mx - cx) / s, (py + my - cy) / s                     # ... and where they came from
    keep_max = torch.ceil((1.0 - config.trim_fraction) * n_valid.to(f64)).long()  # (B,)
    keep_min = torch.minimum(n_valid, torch.full_like(n_valid, config.min_vectors))
    features = _fit_features(model, un, vn, upn, vpn)                     # (B, F, N)
    matrix_n = _weighted_fit(model, _weighted_sums(features, w))
    min_threshold2 = (config.min_threshold / scale) ** 2                  # (B,) in normalised units
    # padding's residual is +inf: it sorts last and is never an inlier (where u', v' are +inf, so is it)
    upn, vpn = upn.masked_fill(~valid, torch.inf), vpn.masked_fill(~valid, torch.inf)
    keep = valid
    median_rank = (n_valid - 1) // 2
    # With cutoff >= 1 the threshold is at least the median, so a keep_min-th smallest residual ranked below the
    # median never raises the bound: selecting the median again instead (ranks are deduplicated) spares a third
    # selection per frame, the fit's largest cost.
    min_rank = keep_min - 1
    if config.cutoff >= 1.0:
        min_rank = torch.where(min_rank <= median_rank, median_rank, min_rank)
    for _ in range(config.iterations):
        (a, b, tx), (c, d, ty) = matrix_n[:, 0, :, None].unbind(1), matrix_n[:, 1, :, None].unbind(1)
        # squared residuals in normalised units (their order statistics are the squares of the residuals'),
        # in place: these passes over every vector are the fit's cost
        rx = torch.sub(tx, upn).addcmul_(a, un).addcmul_(b, vn)
        ry = torch.sub(ty, vpn).addcmul_(c, un).addcmul_(d, vn)
        resid = rx.mul_(rx).addcmul_(ry, ry)                              # (B, N)
        # (B, 1) each: the keep_max-th and keep_min-th smallest residuals and the lower median
        kth_max, kth_min, med = _order_statistics(resid, keep_max - 1, min_rank, median_rank)
        threshold = torch.maximum(config.cutoff ** 2 * med, min_threshold2[:, None])
        # keep the best (1 - trim) share, of which those under the threshold, but at least min_vectors:
        # resid <= kth_max and (resid <= threshold or resid <= kth_min), as one bound
        bound = torch.minimum(kth_max, torch.maximum(threshold, kth_min))
        keep = resid <= bound.masked_fill_(n_valid[:, None] == 0, -torch.inf)  # no vector: no inlier
        matrix_n = _weighted_fit(model, _weighted_sums(features, torch.where(keep, w, 0.0)))
    inliers = keep
    matrix = _denormalise(matrix_n, centre, scale)
    # half a pixel of spread is far below one 8x8 block: the points nearly coincide
    fallback = (n_valid < config.min_vectors) | _degenerate(model, _weighted_sums(features, inliers.to(f64)),
                                                            scale, 0.5)
    if bool(fallback.any()):
        median = _translation_matrix(_masked_median(torch.stack([mx[fallback], my[fallback]], -1), valid[fallback]))
        matrix[fallback] = median
        inliers = torch.where(fallback[:, None], valid, inliers)
    return CameraFit(matrix.float(), fallback, inliers)
