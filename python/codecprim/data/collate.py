"""Batching codec clips: packed (one token sequence with offsets) or padded (with masks).

Both collate functions take dataset items, :class:`~codecprim.patches.CodecClip` or
:class:`~codecprim.data.Failure`. Failures are dropped and listed in ``batch.failures`` as ``(path, cause)``,
so a bad video never ends an epoch; a batch in which every video failed has ``B == 0`` (``len(batch)``) and
empty tensors. Per-frame entries are padded to the batch's longest clip: ``frame_indices`` with -1,
``pts_seconds`` with NaN, ``is_iframe`` with False; ``frame_mask`` marks the real frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch

from .failures import Failure

__all__ = ["PackedBatch", "PaddedBatch", "collate_packed", "collate_padded"]


def _shapes(batch) -> str:
    parts = []
    for f in fields(batch):
        value = getattr(batch, f.name)
        if isinstance(value, torch.Tensor):
            parts.append(f"{f.name}={tuple(value.shape)}")
        elif f.name in ("paths", "failures"):
            parts.append(f"{f.name}=[{len(value)}]")
    return f"{type(batch).__name__}({', '.join(parts)})"


class _Batch:
    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return _shapes(self)

    def to(self, device: str | torch.device, non_blocking: bool = False):
        """A copy with every tensor on ``device``."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in moved.items():
            if isinstance(value, torch.Tensor):
                moved[name] = value.to(device, non_blocking=non_blocking)
        return type(self)(**moved)


@dataclass(repr=False)
class PackedBatch(_Batch):
    """The clips' patches concatenated into one sequence of N tokens (FlashAttention-style offsets)."""

    pixels: torch.Tensor           # (N, 3, p, p) uint8 RGB
    positions: torch.Tensor        # (N, 3) int64 (t, row, col) within its own clip
    cu_seqlens: torch.Tensor       # (B + 1,) int32 token offsets of the clips
    max_seqlen: int
    seq_index: torch.Tensor        # (N,) int64 clip of each token
    visible_indices: torch.Tensor  # (N,) int64 flat t * Hg * Wg + row * Wg + col within its clip
    tier: torch.Tensor             # (N,) int8
    frame_indices: torch.Tensor    # (B, T) int64, -1 = padding
    pts_seconds: torch.Tensor      # (B, T) float64, NaN = padding
    is_iframe: torch.Tensor        # (B, T) bool
    frame_mask: torch.Tensor       # (B, T) bool real frames
    grids: torch.Tensor            # (B, 3) int64 (T, Hg, Wg) of each clip
    truncated: torch.Tensor        # (B,) bool the video ended before its container said
    modes: list[str]               # input mode of each clip ("codec", "chunks", "image")
    paths: list[str]
    failures: list[tuple[str, str]]  # (path, cause) of the videos dropped from this batch


@dataclass(repr=False)
class PaddedBatch(_Batch):
    """The clips' patches padded to the longest clip, K tokens each, with ``valid`` marking real ones."""

    pixels: torch.Tensor           # (B, K, 3, p, p) uint8, zeros where not valid
    positions: torch.Tensor        # (B, K, 3) int64, zeros where not valid
    valid: torch.Tensor            # (B, K) bool
    visible_indices: torch.Tensor  # (B, K) int64, -1 where not valid
    tier: torch.Tensor             # (B, K) int8, -1 where not valid
    frame_indices: torch.Tensor    # (B, T) int64, -1 = padding
    pts_seconds: torch.Tensor      # (B, T) float64, NaN = padding
    is_iframe: torch.Tensor        # (B, T) bool
    frame_mask: torch.Tensor       # (B, T) bool real frames
    grids: torch.Tensor            # (B, 3) int64 (T, Hg, Wg) of each clip
    truncated: torch.Tensor        # (B,) bool
    modes: list[str]
    paths: list[str]
    failures: list[tuple[str, str]]


def _split(items: Sequence) -> tuple[list, list[tuple[str, str]]]:
    clips, failures = [], []
    for item in items:
        if isinstance(item, Failure):
            failures.append((item.path, item.cause))
        else:
            clips.append(item)
    return clips, failures


def _pad_rows(rows: Sequence[torch.Tensor], fill, length: int | None = None, dtype=None) -> torch.Tensor:
    """Stack 1-D+ tensors of different first lengths into (B, L, ...) filled with ``fill``."""
    length = max((r.shape[0] for r in rows), default=0) if length is None else length
    first = rows[0] if rows else torch.zeros(0)
    out = torch.full((len(rows), length, *first.shape[1:]), fill, dtype=dtype or first.dtype)
    for b, row in enumerate(rows):
        out[b, : row.shape[0]] = row
    return out


def _per_clip(clips: Sequence) -> dict:
    frames = torch.tensor([int(c.frame_indices.shape[0]) for c in clips], dtype=torch.int64)
    t_max = int(frames.max()) if len(clips) else 0
    return {
        "frame_indices": _pad_rows([c.frame_indices.cpu() for c in clips], -1, t_max, torch.int64),
        "pts_seconds": _pad_rows([c.pts_seconds.cpu() for c in clips], float("nan"), t_max, torch.float64),
        "is_iframe": _pad_rows([c.is_iframe.cpu() for c in clips], False, t_max, torch.bool),
        "frame_mask": torch.arange(t_max)[None, :] < frames[:, None],  # (B, T)
        "grids": torch.tensor([list(c.grid) for c in clips], dtype=torch.int64).reshape(len(clips), 3),
        "truncated": torch.tensor([bool(c.truncated) for c in clips], dtype=torch.bool),
        "modes": [c.mode for c in clips],
        "paths": [c.path for c in clips],
    }


def collate_packed(items: Sequence) -> PackedBatch:
    """One packed sequence of every good clip's patches (``collate_fn`` for a DataLoader)."""
    clips, failures = _split(items)
    lengths = torch.tensor([int(c.positions.shape[0]) for c in clips], dtype=torch.int64)
    cu = torch.zeros(len(clips) + 1, dtype=torch.int32)
    cu[1:] = lengths.cumsum(0).to(torch.int32)

    def cat(name: str, empty: torch.Tensor) -> torch.Tensor:
        return torch.cat([getattr(c, name).cpu() for c in clips]) if clips else empty

    return PackedBatch(
        pixels=cat("pixels", torch.zeros(0, 3, 0, 0, dtype=torch.uint8)),
        positions=cat("positions", torch.zeros(0, 3, dtype=torch.int64)),
        cu_seqlens=cu,
        max_seqlen=int(lengths.max()) if len(clips) else 0,
        seq_index=torch.repeat_interleave(torch.arange(len(clips)), lengths),  # (N,)
        visible_indices=cat("visible_indices", torch.zeros(0, dtype=torch.int64)),
        tier=cat("tier", torch.zeros(0, dtype=torch.int8)),
        failures=failures,
        **_per_clip(clips),
    )


def collate_padded(items: Sequence) -> PaddedBatch:
    """Every good clip's patches padded to the longest clip, with ``valid`` masks."""
    clips, failures = _split(items)
    lengths = torch.tensor([int(c.positions.shape[0]) for c in clips], dtype=torch.int64)
    k_max = int(lengths.max()) if len(clips) else 0
    if clips:
        pixels = _pad_rows([c.pixels.cpu() for c in clips], 0, k_max)  # (B, K, 3, p, p)
    else:
        pixels = torch.zeros(0, 0, 3, 0, 0, dtype=torch.uint8)
    return PaddedBatch(
        pixels=pixels,
        positions=_pad_rows([c.positions.cpu() for c in clips], 0, k_max, torch.int64).reshape(len(clips), k_max, 3),
        valid=torch.arange(k_max)[None, :] < lengths[:, None],  # (B, K)
        visible_indices=_pad_rows([c.visible_indices.cpu() for c in clips], -1, k_max, torch.int64),
        tier=_pad_rows([c.tier.cpu() for c in clips], -1, k_max, torch.int8),
        failures=failures,
        **_per_clip(clips),
    )
