"""Batching CoPE samples of different GOP layouts: encoder inputs without padding, the LLM stream padded.

:func:`collate_cope` takes :class:`~codecprim.data.cope.CopeSample` items and :class:`~codecprim.data.Failure`
items (dropped and listed in ``failures`` as ``(path, cause)``). The encoders see only real inputs: every
keyframe of the batch in one ``(Kt, 3, S, S)`` tensor for the image encoder, every delta in one
``(Pt, h, w, 2)`` / ``(Pt, h, w)`` pair for the Δ-encoder. The language model needs one layout for the batch,
so the clips' streams are aligned run by run (a run is a keyframe and the deltas up to the next keyframe):
run r holds one keyframe slot and as many delta slots as the longest run r in the batch; a clip with a
shorter run, or fewer runs, leaves slots empty (masked). Each clip's real segments keep their display order,
so :meth:`CopeBatch.codec_tokens` gives :class:`~codecprim.models.video_llm.CodecTokens` whose padded stream
shows every clip exactly what it would see alone (same order, same positions, padding hidden).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch

from .cope import CopeSample
from .failures import Failure

__all__ = ["CopeBatch", "collate_cope"]


@dataclass(repr=False)
class CopeBatch:
    """B clips in the CoPE layout; R keyframe slots and Q delta slots in the shared padded layout."""

    keyframes: torch.Tensor             # (Kt, 3, S, S) uint8: image-encoder input, every keyframe of the batch
    motion: torch.Tensor                # (Pt, h, w, 2) float32: Δ-encoder input, every delta of the batch
    residual: torch.Tensor              # (Pt, h, w) int16
    keyframe_slot: torch.Tensor         # (B, R) int64 row of `keyframes` in each layout slot, -1 = padding
    delta_slot: torch.Tensor            # (B, Q) int64 row of `motion`/`residual`, -1 = padding
    keyframe_mask: torch.Tensor         # (B, R) bool real slots
    delta_mask: torch.Tensor            # (B, Q) bool
    keyframe_positions: torch.Tensor    # (R,) int64 order of the keyframe slots in the stream
    delta_positions: torch.Tensor       # (Q,) int64 order of the delta slots (distinct from the keyframes')
    keyframe_indices: torch.Tensor      # (B, R) int64 frame index, -1 = padding
    keyframe_pts_seconds: torch.Tensor  # (B, R) float64, NaN = padding
    delta_indices: torch.Tensor         # (B, Q) int64 first frame of the group, -1 = padding
    delta_pts_seconds: torch.Tensor     # (B, Q) float64, NaN = padding
    keyframe_clip: torch.Tensor         # (Kt,) int64 clip of each keyframe row
    delta_clip: torch.Tensor            # (Pt,) int64 clip of each delta row
    truncated: torch.Tensor             # (B,) bool
    paths: list[str]
    failures: list[tuple[str, str]]     # (path, cause) of the videos dropped from this batch

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        parts = [f"{f.name}={tuple(getattr(self, f.name).shape)}" for f in fields(self)
                 if isinstance(getattr(self, f.name), torch.Tensor)]
        return f"CopeBatch({', '.join(parts)}, paths=[{len(self.paths)}], failures=[{len(self.failures)}])"

    def to(self, device: str | torch.device, non_blocking: bool = False) -> "CopeBatch":
        """A copy with every tensor on ``device``."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in moved.items():
            if isinstance(value, torch.Tensor):
                moved[name] = value.to(device, non_blocking=non_blocking)
        return CopeBatch(**moved)

    def codec_tokens(self, keyframe_tokens: torch.Tensor, delta_tokens: torch.Tensor | None):
        """The ``VideoLLM`` input from the encoders' outputs on this batch.

        Args:
            keyframe_tokens: (Kt, M, D) image-encoder tokens of ``keyframes``, row for row.
            delta_tokens: (Pt, N, D') Δ-tokens of ``motion``/``residual`` (``DeltaTokens.tokens``), or None
                when the batch has no deltas.

        Returns:
            :class:`~codecprim.models.video_llm.CodecTokens` over the padded layout, with its masks.
        """
        from ..models.video_llm import CodecTokens  # data hands models their input; models never import data

        if keyframe_tokens.shape[0] != self.keyframes.shape[0]:
            raise ValueError(f"keyframe_tokens has {keyframe_tokens.shape[0]} rows for {self.keyframes.shape[0]} keyframes")
        keys = _scatter(keyframe_tokens, self.keyframe_slot)  # (B, R, M, D)
        deltas = None
        if self.delta_positions.numel():
            if delta_tokens is None or delta_tokens.shape[0] != self.motion.shape[0]:
                raise ValueError(f"delta_tokens must have {self.motion.shape[0]} rows (one per delta)")
            deltas = _scatter(delta_tokens, self.delta_slot)  # (B, Q, N, D')
        return CodecTokens(keys, self.keyframe_positions.tolist(), deltas,
                           self.delta_positions.tolist() if deltas is not None else (),
                           keyframe_mask=self.keyframe_mask.to(keys.device),
                           delta_mask=self.delta_mask.to(keys.device) if deltas is not None else None)


def _scatter(rows: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
    """(n, ...) rows into (B, S, ...) by ``slot`` (B, S) row numbers, zeros where -1."""
    slot = slot.to(rows.device)
    out = rows[slot.clamp(min=0)]  # (B, S, ...)
    keep = (slot >= 0).reshape(*slot.shape, *([1] * (rows.dim() - 1)))
    return out * keep.to(out.dtype)


def _runs(sample: CopeSample) -> list[int]:
    """Deltas after each keyframe, up to the next one."""
    keys, deltas = sample.keyframe_indices, sample.delta_indices
    if deltas.numel() and (not keys.numel() or int(deltas.min()) < int(keys.min())):
        raise ValueError(f"{sample.path}: a delta comes before the first keyframe; every run starts with one")
    owner = torch.searchsorted(keys, deltas, right=True) - 1  # (P,) keyframe of each delta
    return torch.bincount(owner, minlength=keys.numel()).tolist()


def collate_cope(items: Sequence) -> CopeBatch:
    """One batch of CoPE samples (``collate_fn`` for a DataLoader over :class:`~codecprim.data.CopeDataset`)."""
    clips = [item for item in items if not isinstance(item, Failure)]
    failures = [(item.path, item.cause) for item in items if isinstance(item, Failure)]
    runs = [_runs(c) for c in clips]
    num_runs = max((len(r) for r in runs), default=0)
    width = [max((r[j] for r in runs if j < len(r)), default=0) for j in range(num_runs)]  # delta slots per run
    key_pos, delta_pos, position = [], [], 0
    for w in width:
        key_pos.append(position)
        delta_pos.extend(range(position + 1, position + 1 + w))
        position += 1 + w
    b, r_slots, q_slots = len(clips), num_runs, len(delta_pos)
    keyframe_slot = torch.full((b, r_slots), -1, dtype=torch.int64)
    delta_slot = torch.full((b, q_slots), -1, dtype=torch.int64)
    key_row = delta_row = 0
    for i, (clip, counts) in enumerate(zip(clips, runs)):
        keyframe_slot[i, : len(counts)] = torch.arange(key_row, key_row + len(counts))
        key_row += len(counts)
        start = 0
        for j, n in enumerate(counts):
            start_slot = sum(width[:j])
            delta_slot[i, start_slot:start_slot + n] = torch.arange(delta_row + start, delta_row + start + n)
            start += n
        delta_row += start

    def per_slot(slot: torch.Tensor, name: str, fill, dtype) -> torch.Tensor:
        flat = torch.cat([getattr(c, name) for c in clips]) if clips else torch.zeros(0, dtype=dtype)
        out = torch.full(slot.shape, fill, dtype=dtype)
        out[slot >= 0] = flat[slot[slot >= 0]].to(dtype)
        return out

    def cat(name: str, empty_shape: tuple, dtype) -> torch.Tensor:
        return torch.cat([getattr(c, name) for c in clips]) if clips else torch.zeros(empty_shape, dtype=dtype)

    return CopeBatch(
        keyframes=cat("keyframes", (0, 3, 0, 0), torch.uint8),
        motion=cat("motion", (0, 0, 0, 2), torch.float32),
        residual=cat("residual", (0, 0, 0), torch.int16),
        keyframe_slot=keyframe_slot, delta_slot=delta_slot,
        keyframe_mask=keyframe_slot >= 0, delta_mask=delta_slot >= 0,
        keyframe_positions=torch.tensor(key_pos, dtype=torch.int64),
        delta_positions=torch.tensor(delta_pos, dtype=torch.int64),
        keyframe_indices=per_slot(keyframe_slot, "keyframe_indices", -1, torch.int64),
        keyframe_pts_seconds=per_slot(keyframe_slot, "keyframe_pts_seconds", float("nan"), torch.float64),
        delta_indices=per_slot(delta_slot, "delta_indices", -1, torch.int64),
        delta_pts_seconds=per_slot(delta_slot, "delta_pts_seconds", float("nan"), torch.float64),
        keyframe_clip=torch.repeat_interleave(torch.arange(b), torch.tensor([c.keyframes.shape[0] for c in clips],
                                                                            dtype=torch.int64)),
        delta_clip=torch.repeat_interleave(torch.arange(b), torch.tensor([c.motion.shape[0] for c in clips],
                                                                         dtype=torch.int64)),
        truncated=torch.tensor([bool(c.truncated) for c in clips], dtype=torch.bool),
        paths=[c.path for c in clips],
        failures=failures,
    )
