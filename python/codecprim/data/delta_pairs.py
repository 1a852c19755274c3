"""Δ-encoder pre-training pairs from real compressed clips, decoded per item.

One item per P-frame t: the RGB image of its reference frame, the motion field and the residual of t,
and the RGB image of t itself (CoPE-VideoLM Supp. D). The reference is the I- or P-frame before t in
display order: frame t-1 in streams without B-frames; in streams with B-frames, P-frames predict from that
anchor, not from the B-frame just before them (B-frames are neither items nor references). With several
reference frames an encoder may pick older anchors for some blocks; :mod:`codecprim.ops.fusion` says what
that does to the field.

The motion and residual are a single fused step (:func:`codecprim.ops.fusion.fuse_pframes` with s = 1) at
the training size: the same definition as the deltas of :func:`codecprim.data.cope_sample`, so the
Δ-encoder is pre-trained on exactly what it later reads. Images go through the one RGB converter
(:func:`codecprim.ops.gather.frames_to_rgb`, range from the stream's pixel format).

Construction runs only the parser pass of each clip (frame types, no decoding) to list the pairs; each item
opens its clip and decodes the reference and the frame (from their GOP's keyframe), so memory holds one
item, whatever the number of clips, and the dataset crosses into DataLoader workers (fork or spawn).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch

from .._intra_op import intra_op_threads
from ..errors import CodecprimError
from ..ops.fusion import fuse_pframes
from ..ops.gather import frames_to_rgb
from ..ops.resize import resize_yuv
from ..reader import open as open_video
from .dataset import VideoDataset
from .failures import Failure

__all__ = ["DeltaPair", "DeltaPairBatch", "DeltaPairs", "collate_delta_pairs"]


@dataclass(repr=False)
class _Shapes:
    def __repr__(self) -> str:
        parts = [f"{f.name}={tuple(v.shape)}" if isinstance(v := getattr(self, f.name), torch.Tensor)
                 else f"{f.name}={v!r}" for f in fields(self)]
        return f"{type(self).__name__}({', '.join(parts)})"


@dataclass(repr=False)
class DeltaPair(_Shapes):
    """One pre-training sample."""

    prev_image: torch.Tensor  # (3, h, w) uint8 RGB of the reference frame
    image: torch.Tensor       # (3, h, w) uint8 RGB of frame t
    motion: torch.Tensor      # (h, w, 2) float32 pixels at (h, w): offset from t to its source in the reference
    residual: torch.Tensor    # (h, w) int16: frame t minus the reference warped by motion
    frame: int                # display index of t
    ref_frame: int            # display index of the reference
    clip: int                 # which of the dataset's clips
    path: str


@dataclass(repr=False)
class DeltaPairBatch(_Shapes):
    """B samples stacked; unreadable ones are listed in ``failures`` as (path, cause)."""

    prev_image: torch.Tensor  # (B, 3, h, w) uint8
    image: torch.Tensor       # (B, 3, h, w) uint8
    motion: torch.Tensor      # (B, h, w, 2) float32
    residual: torch.Tensor    # (B, h, w) int16
    frame: torch.Tensor       # (B,) int64
    ref_frame: torch.Tensor   # (B,) int64
    clip: torch.Tensor        # (B,) int64
    paths: list[str]
    failures: list[tuple[str, str]]

    def __len__(self) -> int:
        return len(self.paths)


def _pairs_of(types: str, limit: int | None) -> list[tuple[int, int]]:
    """(frame, reference) of every P-frame with an anchor before it, from the frame types."""
    pairs, anchor = [], None
    for index, kind in enumerate(types):
        if kind == "B":
            continue
        if kind == "P" and anchor is not None:
            pairs.append((index, anchor))
            if limit is not None and len(pairs) >= limit:
                break
        anchor = index
    return pairs


class DeltaPairs(VideoDataset):
    """Map-style dataset of :class:`DeltaPair` items over clips; batch with :func:`collate_delta_pairs`.

    Args:
        paths: video files readable by :func:`codecprim.open` (codecs that export vectors).
        size: (height, width) every plane is brought to; None keeps each clip's size (then batches need
            clips of one size).
        max_pairs_per_clip: cap on pairs taken from the start of each clip.
        threads: decoder threads.
        on_error: ``"skip"``: a clip that cannot be indexed gives no pairs and is listed in ``failures``, an
            item that cannot be decoded is a :class:`~codecprim.data.Failure`; ``"raise"``: the typed error.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], *, size: tuple[int, int] | None = (144, 256),
                 max_pairs_per_clip: int | None = None, threads: int = 1, on_error: str = "skip") -> None:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        if not paths:
            raise ValueError("paths must name at least one video file")
        if size is not None:
            if (not isinstance(size, (tuple, list)) or len(size) != 2
                    or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in size)):
                raise ValueError(f"size must be a (height, width) pair of positive ints or None, got {size!r}")
            size = (int(size[0]), int(size[1]))
        if max_pairs_per_clip is not None and (isinstance(max_pairs_per_clip, bool)
                                               or not isinstance(max_pairs_per_clip, int) or max_pairs_per_clip <= 0):
            raise ValueError(f"max_pairs_per_clip must be a positive int or None, got {max_pairs_per_clip!r}")
        clips = [os.fspath(p) for p in paths]
        super().__init__(clips, on_error=on_error)
        self.clips, self.size, self.threads = clips, size, threads
        self.failures: list[tuple[str, str]] = []
        rows: list[tuple[int, int, int]] = []
        for clip, path in enumerate(clips):
            try:
                with open_video(path, residuals=False) as reader:  # the parser pass only
                    types = reader.pict_types
            except CodecprimError as error:
                if on_error == "raise":
                    raise
                self.failures.append((path, error.cause))
                continue
            rows += [(clip, frame, ref) for frame, ref in _pairs_of(types, max_pairs_per_clip)]
        self.index = torch.tensor(rows, dtype=torch.int64).reshape(-1, 3)  # (N, 3): clip, frame, ref_frame
        self.paths = [clips[clip] for clip, _, _ in rows]  # item i's file, for VideoDataset's error policy

    def clip_indices(self, clip: int) -> list[int]:
        """Indices of the items that come from ``clips[clip]`` (for per-clip splits)."""
        return torch.nonzero(self.index[:, 0] == clip).flatten().tolist()

    @intra_op_threads(1)  # small per-frame ops: split across threads they only spin-wait (see _intra_op)
    def load(self, index: int, path: str) -> DeltaPair:
        clip, frame, ref = (int(v) for v in self.index[index])
        # fuse_pframes warps pictures itself: the codec's residual pass would go unused.
        with open_video(path, residuals=False, pixels=True, chroma=True, threads=self.threads) as reader:
            full = reader.info.pix_fmt.startswith("yuvj")
            # One call per pair: on a damaged file, matching iteration would decode from the start each time.
            reference, current = reader.frames_at([ref, frame], match_iteration=False)
        step = fuse_pframes([reference, current], size=self.size, skipped_b_frames=True)
        luma = torch.stack([reference.luma, current.luma])  # (2, H, W)
        chroma = torch.stack([reference.chroma, current.chroma])  # (2, 2, Hc, Wc)
        if self.size is not None:
            luma, chroma = resize_yuv(luma, chroma, self.size)
        rgb = frames_to_rgb(luma, chroma, [0, 1], color_range="full" if full else "limited")  # (2, 3, h, w)
        return DeltaPair(prev_image=rgb[0], image=rgb[1], motion=step.field_px, residual=step.residual,
                         frame=frame, ref_frame=ref, clip=clip, path=path)


def collate_delta_pairs(items: Sequence) -> DeltaPairBatch:
    """Stack :class:`DeltaPair` items (``collate_fn`` for a DataLoader), listing failures (a batch in which
    every item failed has ``B == 0`` and empty tensors)."""
    good = [item for item in items if not isinstance(item, Failure)]
    failures = [(item.path, item.cause) for item in items if isinstance(item, Failure)]
    empty = {"prev_image": (0, 3, 0, 0), "image": (0, 3, 0, 0), "motion": (0, 0, 0, 2), "residual": (0, 0, 0)}
    dtypes = {"prev_image": torch.uint8, "image": torch.uint8, "motion": torch.float32, "residual": torch.int16}

    def stack(name: str) -> torch.Tensor:
        if not good:
            return torch.zeros(empty[name], dtype=dtypes[name])
        return torch.stack([getattr(item, name) for item in good])

    def numbers(name: str) -> torch.Tensor:
        return torch.tensor([getattr(item, name) for item in good], dtype=torch.int64)

    return DeltaPairBatch(prev_image=stack("prev_image"), image=stack("image"), motion=stack("motion"),
                          residual=stack("residual"), frame=numbers("frame"), ref_frame=numbers("ref_frame"),
                          clip=numbers("clip"), paths=[item.path for item in good], failures=failures)
