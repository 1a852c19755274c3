"""The CoPE-VideoLM recipe: a video as RGB keyframes interleaved with fused P-frame deltas.

:func:`cope_sample` is the per-video function; :class:`CopeDataset` wraps it (seed, ``set_epoch``, ``on_error``
from :class:`~codecprim.data.dataset.VideoDataset`). The layout comes from the reader's own GOP table and frame
types (a parser pass), then only the chosen GOPs' frames are decoded, a few at a time:

* **GOPs.** A video with more than ``max_gops`` GOPs keeps ``max_gops`` of them, uniformly: GOP list split into
  ``max_gops`` equal strata, one GOP drawn from each with ``seed`` (``seed=None``: the first of each stratum).
* **Anchors.** With ``b_frames="skip"`` (the only policy) B-frames get nothing: no keyframe, no delta, and no
  chain runs through them. A GOP's anchors are its I- and P-frames in display order; every P-frame's past
  vectors point at the anchor before it (the decoder's past reference), so a delta step spans the B-frames
  between two anchors.
* **Keyframes.** Per GOP, ``keyframes_per_gop`` anchors evenly spread over its anchors (the first is the GOP's
  I-frame), plus any other I-frame in it: fusion never crosses an I-frame, so each one is shown as RGB. A GOP
  that starts with a P-frame (a damaged or cut stream) shows its first anchor as the keyframe.
* **Deltas.** The anchors after each keyframe, up to the next, are cut into groups of ``fuse`` consecutive
  P-frames (the last group may be shorter). A group's motion is the fused field from its last frame back to
  the frame before the group (the keyframe, or the previous group's last frame), and its residual that last
  frame's luma minus the reference luma warped by the field, all at ``delta_size`` (see
  :mod:`codecprim.ops.fusion`; s = 1 and s > 1 use the same definition). ``delta_indices`` is the first frame
  of each group, where its tokens sit in the stream.
* **Motion.** ``motion="auto"`` takes each P-frame's vectors from the codec where it exports them (H.264,
  MPEG-1/2/4 Part 2, H.263). Codecs that export none (HEVC, VP9, AV1, ...) get them by block matching
  (:func:`codecprim.ops.motion_estimation.estimate_motion_frames`, quarter-pel) of the frame's luma at
  ``delta_size`` against its anchor's, so OneVision's HEVC corpora need no re-encoding for this recipe;
  ``motion="estimated"`` does so for every codec (to compare with the codec's own vectors).
  ``CopeSample.motion_source`` says which. Either way the fields are fused and the residual taken the same way.
  One exception under "auto": libavcodec returns the last picture of an MPEG-1/2/4 stream decoded with output
  delay (MPEG-1/2 without the low-delay flag, MPEG-4 with B-frames) at the end without its vectors
  (``reader.stats.frames_without_export``); that P-frame alone is matched against its anchor, exactly as
  ``motion="estimated"`` would, instead of counting as no motion.

Each kept GOP is decoded once, streamed from its keyframe to its last anchor (``reader.iter_frames``), so memory
stays one small sample plus a full-size frame or two, whatever the video's or the GOP's length.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch

from .._intra_op import intra_op_threads
from ..errors import InvalidVideoError
from ..ops._checks import check_choice, check_positive_int
from ..ops.fusion import field_at_size, fuse_fields, fused_residual
from ..ops.gather import frames_to_rgb
from ..ops.motion_estimation import MotionEstimationConfig, estimate_motion_frames
from ..ops.resize import resize_plane, resize_yuv
from ..reader import open as open_video
from .dataset import VideoDataset

__all__ = ["B_FRAME_POLICIES", "COPE_MOTIONS", "CopeDataset", "CopePlan", "CopeSample", "cope_sample", "plan_cope"]

B_FRAME_POLICIES = ("skip",)
COPE_MOTIONS = ("auto", "estimated")
# Deltas are a prediction, so their vectors are refined to quarter-pel (selection's integer-pel setting is enough
# to rank patches, not to warp a reference into the frame).
_DELTA_ESTIMATION = MotionEstimationConfig()


@dataclass(repr=False)
class CopeSample:
    """One video in the CoPE layout; every index is a display-order frame index of the video."""

    keyframes: torch.Tensor                 # (K, 3, S, S) uint8 RGB at image_size
    keyframe_indices: torch.Tensor          # (K,) int64, ascending
    keyframe_pts_seconds: torch.Tensor      # (K,) float64
    motion: torch.Tensor                    # (P, h, w, 2) float32 fused fields, pixels at delta_size
    residual: torch.Tensor                  # (P, h, w) int16 at delta_size
    delta_indices: torch.Tensor             # (P,) int64 first frame of each fused group, ascending
    delta_pts_seconds: torch.Tensor         # (P,) float64 of delta_indices
    delta_last_indices: torch.Tensor        # (P,) int64 frame the group's field and residual belong to
    delta_reference_indices: torch.Tensor   # (P,) int64 frame the field points into (before the group)
    path: str
    truncated: bool = False                 # the stream ended before what its container promised
    motion_source: str = "exported"         # "exported" (the codec's vectors) or "estimated" (block matching)

    @property
    def pts_seconds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The issue's ``pts_seconds`` "for both": ``(keyframe_pts_seconds, delta_pts_seconds)``."""
        return self.keyframe_pts_seconds, self.delta_pts_seconds

    def __repr__(self) -> str:
        parts = [f"{f.name}={tuple(getattr(self, f.name).shape)}" for f in fields(self)
                 if isinstance(getattr(self, f.name), torch.Tensor)]
        return f"CopeSample({', '.join(parts)}, truncated={self.truncated}, path={self.path!r})"


@dataclass(frozen=True)
class _Group:
    reference: int
    frames: tuple[int, ...]  # the P-frames fused, ascending


@dataclass(frozen=True)
class CopePlan:
    """What :func:`cope_sample` reads: the keyframes and the fused groups, from the parser pass alone."""

    gops: tuple[int, ...]           # GOP numbers kept
    keyframes: tuple[int, ...]
    groups: tuple[_Group, ...]

    def frames(self) -> list[int]:
        """Every frame decoded, ascending."""
        return sorted(set(self.keyframes) | {i for g in self.groups for i in g.frames})


def plan_cope(pict_types: str, gops: Sequence, *, max_gops: int = 64, keyframes_per_gop: int = 1, fuse: int = 30,
              seed: int | None = 0) -> CopePlan:
    """The layout of a video with these frame types (display order) and GOP table (``reader.gops``)."""
    chosen = _choose_gops(len(gops), max_gops, seed)
    keyframes: list[int] = []
    groups: list[_Group] = []
    for g in chosen:
        gop = gops[g]
        anchors = [i for i in range(gop.first_frame, gop.first_frame + gop.num_frames) if pict_types[i] != "B"]
        if not anchors:
            continue
        shown = min(keyframes_per_gop, len(anchors))
        picks = {anchors[j * len(anchors) // shown] for j in range(shown)}
        picks |= {i for i in anchors if pict_types[i] == "I"}
        reference, run = anchors[0], []
        for i in anchors[1:] + [None]:
            if i is None or i in picks or len(run) == fuse:
                if run:
                    groups.append(_Group(reference, tuple(run)))
                    reference, run = run[-1], []
                if i is not None and i in picks:
                    reference = i
                    continue
            if i is not None:
                run.append(i)
        keyframes.extend(sorted(picks))
    return CopePlan(tuple(chosen), tuple(keyframes), tuple(groups))


def _choose_gops(count: int, max_gops: int, seed: int | None) -> list[int]:
    if count <= max_gops:
        return list(range(count))
    bounds = [i * count // max_gops for i in range(max_gops + 1)]
    if seed is None:
        return bounds[:-1]
    generator = torch.Generator().manual_seed(seed)
    return [lo + int(torch.randint(hi - lo, (), generator=generator)) for lo, hi in zip(bounds, bounds[1:])]


def _check(max_gops, keyframes_per_gop, fuse, image_size, delta_size, b_frames, seed, motion="auto") -> None:
    for name, value in (("max_gops", max_gops), ("keyframes_per_gop", keyframes_per_gop), ("fuse", fuse),
                        ("image_size", image_size), ("delta_size", delta_size)):
        check_positive_int(name, value)
    check_choice("b_frames", b_frames, B_FRAME_POLICIES)
    check_choice("motion", motion, COPE_MOTIONS)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be a non-negative int or None; got {seed!r}")


@intra_op_threads(1)  # thousands of small ops: split across threads they only spin-wait (see _intra_op)
def cope_sample(path: str | os.PathLike, *, max_gops: int = 64, keyframes_per_gop: int = 1, fuse: int = 30,
                image_size: int = 224, delta_size: int = 224, b_frames: str = "skip",
                seed: int | None = 0, motion: str = "auto") -> CopeSample:
    """The CoPE sample of one video (see the module docstring for the layout rules).

    Args:
        path: the video (any codec libavcodec decodes; see ``motion``).
        max_gops: GOPs kept at most, uniformly sampled beyond it.
        keyframes_per_gop: RGB frames per GOP (its I-frame first).
        fuse: P-frames fused into one delta at most (CoPE's s).
        image_size: keyframes are ``image_size x image_size`` RGB.
        delta_size: fields and residuals are ``delta_size x delta_size``.
        b_frames: ``"skip"``: B-frames get no tokens.
        seed: which GOP of each stratum is kept when there are more than ``max_gops``.
        motion: ``"auto"``: the codec's vectors where it exports them, else block matching at ``delta_size``;
            ``"estimated"``: block matching for every codec.

    Raises:
        InvalidVideoError: not a readable video, or it has no frames, or frames the parser listed did not
            decode while the reader saw no truncation. A truncated file (``reader.stats.truncated``) gives the
            keyframes and groups decoded before the cut, with ``truncated=True``.
    """
    _check(max_gops, keyframes_per_gop, fuse, image_size, delta_size, b_frames, seed, motion)
    path = os.fspath(path)
    with open_video(path, residuals=False, pixels=True, chroma=True) as reader:
        info = reader.info
        estimated = motion == "estimated" or info.motion_vectors != "exported"
        types = reader.pict_types
        if not types:
            raise InvalidVideoError(path, "the video has no frames")
        plan = plan_cope(types, reader.gops, max_gops=max_gops, keyframes_per_gop=keyframes_per_gop, fuse=fuse,
                         seed=seed)
        color_range = "full" if info.pix_fmt.startswith("yuvj") else "limited"
        out = _Builder(plan, (info.height, info.width), image_size, delta_size, color_range, types, path,
                       _DELTA_ESTIMATION if estimated else None)
        wanted = set(plan.frames())
        for g in plan.gops:
            gop = reader.gops[g]
            mine = [i for i in range(gop.first_frame, gop.first_frame + gop.num_frames) if i in wanted]
            if mine:  # streamed: one full-size frame at a time, whatever the GOP's length
                for frame in reader.iter_frames(mine[0], mine[-1] + 1):
                    if frame.index in wanted:
                        out.add(frame)
        truncated = reader.stats.truncated
        pts = reader.pts_seconds
    return out.sample(pts, truncated)


class _Builder:
    """Turns the planned frames, met in display order, into the sample's small tensors."""

    def __init__(self, plan: CopePlan, coded: tuple[int, int], image_size: int, delta_size: int, color_range: str,
                 types: str, path: str, estimation: MotionEstimationConfig | None = None) -> None:
        self.plan, self.coded, self.types, self.path = plan, coded, types, path
        self.image_size, self.delta_size, self.color_range = image_size, delta_size, color_range
        self.estimation = estimation  # None: the codec's vectors
        self.anchor_luma: torch.Tensor | None = None  # delta-size luma of the last anchor (estimation's reference)
        self.anchor_full: torch.Tensor | None = None  # its full-size luma (see _step)
        self.keyframe_set = set(plan.keyframes)
        self.group_of = {i: g for g in plan.groups for i in g.frames}
        self.references = {g.reference for g in plan.groups}
        self.small_luma: dict[int, torch.Tensor] = {}  # delta-size luma of references still needed
        self.steps: list[torch.Tensor] = []  # delta-size fields of the current group so far
        self.keyframes: list[torch.Tensor] = []
        self.motion: list[torch.Tensor] = []
        self.residual: list[torch.Tensor] = []

    def add(self, frame) -> None:
        index = frame.index
        if frame.pict_type != self.types[index]:
            raise InvalidVideoError(self.path, f"frame {index} is {frame.pict_type!r} when decoded but "
                                               f"{self.types[index]!r} in the parser pass")
        if index in self.keyframe_set:
            chroma = frame.chroma
            if chroma is None:  # a grey-only stream: neutral chroma
                chroma = torch.full((2, -(-frame.luma.shape[0] // 2), -(-frame.luma.shape[1] // 2)), 128,
                                    dtype=torch.uint8)
            luma, chroma = resize_yuv(frame.luma[None], chroma[None], self.image_size)
            self.keyframes.append(frames_to_rgb(luma, chroma, [0], color_range=self.color_range)[0])
        group = self.group_of.get(index)
        luma = resize_plane(frame.luma, self.delta_size) if self.estimation is not None or (
            group is not None and index == group.frames[-1]) or index in self.references else None
        if group is not None:
            self.steps.append(self._step(frame, luma))
            if index == group.frames[-1]:
                field, _ = fuse_fields(torch.stack(self.steps))  # from (s, h, w, 2)
                self.motion.append(field)
                self.residual.append(fused_residual(luma, self.small_luma.pop(group.reference), field))
                self.steps = []
                if index in self.references:
                    self.small_luma[index] = luma
        elif index in self.references:
            self.small_luma[index] = luma
        self.anchor_luma = luma  # every planned frame is an anchor: the next P-frame's past reference
        self.anchor_full = frame.luma

    def _step(self, frame, luma: torch.Tensor | None) -> torch.Tensor:
        """One P-frame's past field at delta size, from the codec's vectors or matched against its anchor."""
        if self.estimation is None:
            if frame.without_export and self.anchor_full is not None:
                # The last picture of an MPEG-1/2/4 stream decoded with output delay: libavcodec returns it at the
                # end without vectors (reader.stats.frames_without_export), so it is matched against its anchor.
                small = luma if luma is not None else resize_plane(frame.luma, self.delta_size)
                return self._matched(small, resize_plane(self.anchor_full, self.delta_size), _DELTA_ESTIMATION)
            return field_at_size(frame.motion_vectors, *self.coded, self.delta_size)[0]
        if self.anchor_luma is None:  # a group always follows its reference in display order
            raise InvalidVideoError(self.path, f"frame {frame.index} has no anchor decoded before it")
        return self._matched(luma, self.anchor_luma, self.estimation)

    def _matched(self, luma: torch.Tensor, anchor: torch.Tensor, config: MotionEstimationConfig) -> torch.Tensor:
        est = estimate_motion_frames(luma[None], anchor[None], config=config)
        rows = est.vectors[0][~est.intra[0]]  # unmatched (intra) blocks carry no vector, as in a codec's export
        return field_at_size(rows, self.delta_size, self.delta_size, self.delta_size)[0]

    def sample(self, pts: torch.Tensor, truncated: bool) -> CopeSample:
        plan, d = self.plan, self.delta_size
        keyframes, groups = plan.keyframes, plan.groups
        if len(self.keyframes) != len(keyframes) or len(self.motion) != len(groups):
            if not truncated or not self.keyframes:
                raise InvalidVideoError(self.path, "the decoder produced fewer frames than the parser pass listed")
            # A file cut short: frames arrive in display order, so what was built is a prefix of the plan.
            keyframes, groups = keyframes[:len(self.keyframes)], groups[:len(self.motion)]
        keys = torch.tensor(keyframes, dtype=torch.int64)
        firsts = torch.tensor([g.frames[0] for g in groups], dtype=torch.int64)
        return CopeSample(
            keyframes=torch.stack(self.keyframes) if self.keyframes else torch.zeros(
                (0, 3, self.image_size, self.image_size), dtype=torch.uint8),
            keyframe_indices=keys, keyframe_pts_seconds=pts[keys],
            motion=torch.stack(self.motion) if self.motion else torch.zeros((0, d, d, 2), dtype=torch.float32),
            residual=torch.stack(self.residual) if self.residual else torch.zeros((0, d, d), dtype=torch.int16),
            delta_indices=firsts, delta_pts_seconds=pts[firsts],
            delta_last_indices=torch.tensor([g.frames[-1] for g in groups], dtype=torch.int64),
            delta_reference_indices=torch.tensor([g.reference for g in groups], dtype=torch.int64),
            path=self.path, truncated=truncated,
            motion_source="exported" if self.estimation is None else "estimated")


class CopeDataset(VideoDataset):
    """Map-style dataset of :class:`CopeSample` items (or :class:`~codecprim.data.Failure` for a video that
    cannot be read, with ``on_error="skip"``); batch it with :func:`~codecprim.data.collate_cope`.

    ``dataset[i]`` equals ``cope_sample(paths[i], **dataset.options, seed=dataset.sample_seed(i))``, so each
    epoch (:meth:`set_epoch`) draws other GOPs from videos longer than ``max_gops`` GOPs.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], *, max_gops: int = 64, keyframes_per_gop: int = 1,
                 fuse: int = 30, image_size: int = 224, delta_size: int = 224, b_frames: str = "skip",
                 seed: int = 0, on_error: str = "skip", motion: str = "auto") -> None:
        super().__init__(paths, seed=seed, on_error=on_error)
        self.options: dict[str, Any] = dict(max_gops=max_gops, keyframes_per_gop=keyframes_per_gop, fuse=fuse,
                                            image_size=image_size, delta_size=delta_size, b_frames=b_frames,
                                            motion=motion)
        _check(seed=seed, **self.options)  # bad arguments fail here, not once per item in the workers

    def load(self, index: int, path: str) -> CopeSample:
        return cope_sample(path, seed=self.sample_seed(index), **self.options)
