"""Which frames of a video a sample uses: the frame sampler shared by every recipe.

Times are seconds from the video's first frame (its first presentation time is 0 here), so ``start_seconds``,
``video_start`` and ``video_end`` mean the same thing for every container.

* ``"consecutive"``: ``num_frames`` frames in a row. The window starts at the first frame at or after
  ``start_seconds``; without it, at a position drawn uniformly from ``generator`` (a random temporal crop);
  without either, at the first frame of the range.
* ``"uniform"``: ``num_frames`` frames spread evenly over ``[video_start, video_end]`` (default: the whole
  video): frame ``lo + floor(i * m / num_frames)`` of the ``m`` frames in the range.
* ``"fps"``: one frame every ``1 / fps`` seconds over the range (the frame at or after each instant, duplicates
  dropped, so a rate above the video's gives every frame), then at most ``max_frames`` of them, evenly.

A video shorter than asked gives fewer frames, never repeated ones. :func:`read_frames` then reads the chosen
frames through ``reader.frames_at``, one call per frame reading on from the last, so only the GOP prefixes that
hold them are decoded and memory holds one frame at a time, whatever the video's length.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from ..errors import InvalidVideoError
from ..ops._checks import check_choice, check_positive_int

__all__ = ["SAMPLING_MODES", "FrameSample", "plan_frames", "read_frames", "sample_frames"]

SAMPLING_MODES = ("consecutive", "uniform", "fps")


@dataclass(frozen=True)
class FrameSample:
    """The frames chosen from one video."""

    indices: tuple[int, ...]   # display indices, ascending, no repeats
    pts_seconds: tuple[float, ...]  # their presentation times (the container's clock, not shifted)
    fps: float                 # frames per second of video time the sample represents

    def __len__(self) -> int:
        return len(self.indices)


def _seconds(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number of seconds or None; got {value!r}")
    return float(value)


def plan_frames(pts_seconds: torch.Tensor, native_fps: float, *, num_frames: int = 64,
                sampling: str = "consecutive", start_seconds: float | None = None,
                video_start: float | None = None, video_end: float | None = None, fps: float | None = None,
                max_frames: int | None = None, generator: torch.Generator | None = None) -> FrameSample:
    """Choose frames from a video whose frames are presented at ``pts_seconds`` (display order; see the module
    docstring for each mode). ``max_frames`` caps ``"fps"`` (default ``num_frames``)."""
    num_frames = check_positive_int("num_frames", num_frames)
    check_choice("sampling", sampling, SAMPLING_MODES)
    start_seconds = _seconds("start_seconds", start_seconds)
    video_start = _seconds("video_start", video_start)
    video_end = _seconds("video_end", video_end)
    if max_frames is not None:
        max_frames = check_positive_int("max_frames", max_frames)
    if sampling == "fps":
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
            raise ValueError(f'sampling="fps" needs fps, a positive frame rate; got {fps!r}')
    elif fps is not None:
        raise ValueError(f'fps is the target rate of sampling="fps"; got fps={fps!r} with sampling={sampling!r}')
    if start_seconds is not None and sampling != "consecutive":
        raise ValueError(f'start_seconds places a "consecutive" window; use video_start with {sampling!r}')
    native_fps = float(native_fps) if native_fps and native_fps > 0 else 25.0

    times = pts_seconds.to(torch.float64)
    if bool(torch.isnan(times).any()):
        raise ValueError("pts_seconds has NaN entries; reader.pts_seconds fills the times a container leaves out")
    if times.numel() == 0:
        return FrameSample((), (), native_fps)
    rel = times - times[0]
    # Half a frame of slack: a time that rounds to a frame's pts selects that frame.
    slack = 0.5 / native_fps
    lo = int(torch.searchsorted(rel, (video_start or 0.0) - slack))
    hi = len(rel) if video_end is None else int(torch.searchsorted(rel, video_end + slack, right=True))
    if video_end is not None and video_start is not None and video_end < video_start:
        raise ValueError(f"video_end ({video_end}) is before video_start ({video_start})")
    available = max(0, hi - lo)
    if available == 0:
        return FrameSample((), (), native_fps)

    if sampling == "consecutive":
        count = min(num_frames, available)
        if start_seconds is not None:
            first = int(torch.searchsorted(rel, start_seconds - slack))
            chosen = list(range(first, min(first + num_frames, len(rel))))
        elif generator is not None:
            first = lo + int(torch.randint(available - count + 1, (), generator=generator))
            chosen = list(range(first, first + count))
        else:
            chosen = list(range(lo, lo + count))
        used = native_fps
    elif sampling == "uniform":
        count = min(num_frames, available)
        chosen = [lo + i * available // count for i in range(count)]
        used = native_fps * count / available
    else:
        end = float(rel[hi - 1]) + slack
        steps = int(math.floor(((end - float(rel[lo])) * fps) + 1e-9)) + 1
        instants = float(rel[lo]) - slack + torch.arange(steps, dtype=torch.float64) / fps
        picked = torch.searchsorted(rel, instants).clamp(max=hi - 1)
        chosen = sorted(set(picked.tolist()))
        cap = max_frames if max_frames is not None else num_frames
        if len(chosen) > cap:
            chosen = [chosen[i * len(chosen) // cap] for i in range(cap)]
        span = (float(rel[chosen[-1]]) - float(rel[chosen[0]])) if len(chosen) > 1 else 0.0
        used = (len(chosen) - 1) / span if span > 0 else min(float(fps), native_fps)
    return FrameSample(tuple(chosen), tuple(float(times[i]) for i in chosen), float(used))


def sample_frames(reader, **options) -> FrameSample:
    """:func:`plan_frames` over an open reader's presentation times (a parser pass; nothing is decoded)."""
    return plan_frames(reader.pts_seconds, reader.info.fps, **options)


def read_frames(reader, indices: Sequence[int]) -> Iterator:
    """Yield the frames at ``indices`` (ascending) through ``reader.frames_at``, one call per frame.

    A call reads on from where the previous one stopped when its frame lies ahead in the same GOP (anywhere, on
    streams where a seek decodes from the start) and seeks to its GOP's keyframe otherwise; frames in between are
    decoded only as references (not copied, no residual) and non-reference ones skipped. So only the GOP prefixes
    that hold the frames are decoded, each once, as a single call for all of them would, while memory holds one
    frame at a time. A frame the decoder could not produce raises :class:`InvalidVideoError`.
    """
    indices = list(indices)
    if any(b <= a for a, b in zip(indices, indices[1:])):
        raise ValueError("indices must be ascending without repeats")
    if not indices:
        return
    total = len(reader)
    if indices[0] < 0 or indices[-1] >= total:
        raise InvalidVideoError(reader.path, f"frames {indices[0]}..{indices[-1]} asked of a video of {total} frames")
    for index in indices:
        # Many calls per file: on a damaged one, matching iteration would decode from the start each time.
        yield from reader.frames_at([index], match_iteration=False)
