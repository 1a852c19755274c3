"""A per-video motion statistic for filtering static clips (as NeMo Curator's MotionFilterStage does).

One pass over the video on the motion-vector-only path (no pixels are reconstructed), P- and B-frames in
batches of ``batch`` frames:

* ``motion_mean``: the block-area-weighted mean length, in pixels at the coded size, of the motion left after
  the camera model is removed (:func:`codecprim.ops.saliency.block_motion`), averaged over the inter frames.
  It says how much things move on their own.
* ``static_share``: the share of inter frames whose blocks do not move at all, camera included: the
  area-weighted mean length of their raw vectors is below ``static_pixels`` (a still picture, a slide, a
  frozen stream). A clip that is only a pan is not static by this measure but has a small ``motion_mean``.

Codecs whose vectors libavcodec does not export (HEVC, VP9, AV1) have no statistic: both are None.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..ops.camera import CameraConfig, block_centres_and_motion
from ..ops.saliency import block_motion
from ..reader import open as open_video
from .._intra_op import intra_op_threads

__all__ = ["MotionStats", "motion_stats"]


@dataclass(frozen=True)
class MotionStats:
    frames: int                   # frames in the video (decoded)
    inter_frames: int             # P- and B-frames among them
    motion_mean: float | None     # camera-compensated motion, pixels (None: no exported vectors)
    static_share: float | None    # share of inter frames with no motion at all (None: no exported vectors)


@intra_op_threads(1)  # thousands of small ops per video: see codecprim._intra_op
def motion_stats(path, *, camera: str = "similarity", static_pixels: float = 0.25, batch: int = 64,
                 threads: int = 1) -> MotionStats:
    """The motion statistic of the video at ``path`` (see the module docstring)."""
    if not static_pixels >= 0:
        raise ValueError(f"static_pixels must be >= 0; got {static_pixels!r}")
    config = CameraConfig(model=camera)
    frames, compensated, raw = 0, [], []
    with open_video(path, residuals=False, threads=threads) as reader:
        info = reader.info
        exported = info.motion_vectors == "exported"
        pending: list[torch.Tensor] = []
        for frame in reader:
            frames += 1
            if frame.pict_type != "I":
                pending.append(frame.motion_vectors)
            if len(pending) == batch:
                _measure(pending, (info.height, info.width), config, compensated, raw)
                pending = []
        if pending:
            _measure(pending, (info.height, info.width), config, compensated, raw)
    inter = len(raw)
    if not exported:
        return MotionStats(frames=frames, inter_frames=inter, motion_mean=None, static_share=None)
    if not inter:
        return MotionStats(frames=frames, inter_frames=0, motion_mean=0.0, static_share=0.0)
    return MotionStats(frames=frames, inter_frames=inter, motion_mean=float(torch.tensor(compensated).mean()),
                       static_share=sum(r < static_pixels for r in raw) / inter)


def _measure(vectors: list[torch.Tensor], size: tuple[int, int], config: CameraConfig, compensated: list[float],
             raw: list[float]) -> None:
    """Appends each frame's area-weighted mean compensated and raw motion length."""
    t = len(vectors)
    rows = torch.cat(vectors)
    if not rows.shape[0]:
        compensated.extend([0.0] * t)
        raw.extend([0.0] * t)
        return
    rects, frame, length, _ = block_motion(vectors, size, None, config)
    area = ((rects[:, 2] - rects[:, 0]) * (rects[:, 3] - rects[:, 1])).to(torch.float64)  # clipped block areas
    _, motion, _ = block_centres_and_motion(rows)
    weight = torch.zeros(t, dtype=torch.float64).index_add_(0, frame, area).clamp_min(1.0)
    comp = torch.zeros(t, dtype=torch.float64).index_add_(0, frame, area * length.double()) / weight
    still = torch.zeros(t, dtype=torch.float64).index_add_(0, frame, area * motion.norm(dim=1).double()) / weight
    compensated.extend(comp.tolist())
    raw.extend(still.tolist())
