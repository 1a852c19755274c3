"""A codec clip laid out as LLaVA-OneVision-2 codec canvases, so a user of that stack can swap codecprim in.

That recipe's codec frontend (``lmms-video-utils`` / ``codec-video-prep``) turns each GOP into one I-canvas,
the I-frame itself, plus P-canvases that pack the GOP's most salient 2x2 patch blocks of later frames, and
keeps a ``(t, h, w)`` source position for every patch so 3-D RoPE can put it back where it came from.

:func:`pack_canvases` builds the same layout from a :class:`~codecprim.patches.CodecClip`:

* Segments start at the clip's anchor frames (the frames kept whole: I-frames, and the first frame). Each
  anchor becomes an I-canvas: its ``Hg x Wg`` patches in place.
* The selected patches of the segment's other frames are grouped by their ``merge x merge`` source block
  ``(t, row // merge, col // merge)``. Blocks are ordered by their summed saliency (highest first; ties by
  ``(t, row, col)``) and placed row-major into the block slots of P-canvases of the same ``Hg x Wg`` size,
  a block's patches keeping their offsets inside it. Cells of a block that selection left out, and slots past
  the last block, are empty: zero pixels, position -1, ``valid`` False.
* ``patch_positions`` and ``valid`` list every canvas cell in merge-block order (within a canvas: block by
  block, row-major, and the ``merge x merge`` cells of a block row-major), the order in which Qwen2-VL style
  mergers read patches.

Every selected patch of the clip appears exactly once, with its pixels and its ``(t, row, col)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..ops._checks import check_positive_int

__all__ = ["Canvases", "pack_canvases"]


@dataclass(repr=False)
class Canvases:
    """One clip as I- and P-canvases."""

    pixels: torch.Tensor           # (C, 3, Hg * p, Wg * p) uint8 canvas images
    cell_positions: torch.Tensor   # (C, Hg, Wg, 3) int64 source (t, row, col) of each cell, -1 = empty
    patch_positions: torch.Tensor  # (C * Hg * Wg, 3) int64 the same, in merge-block order
    valid: torch.Tensor            # (C * Hg * Wg,) bool cells holding a patch, merge-block order
    is_icanvas: torch.Tensor       # (C,) bool
    segment: torch.Tensor          # (C,) int64 which anchor's segment (GOP) each canvas belongs to
    merge: int
    patch: int

    def __repr__(self) -> str:
        return (f"Canvases(pixels={tuple(self.pixels.shape)}, icanvases={int(self.is_icanvas.sum())}, "
                f"valid={int(self.valid.sum())}/{self.valid.numel()}, merge={self.merge})")


def pack_canvases(clip, *, merge: int = 2) -> Canvases:
    """Lay ``clip`` out as I-canvases and P-canvases of ``merge x merge`` patch blocks (see the module doc)."""
    merge = check_positive_int("merge", merge)
    t_count, hg, wg = clip.grid
    if hg % merge or wg % merge:
        raise ValueError(f"the clip's {hg}x{wg} patch grid does not split into {merge}x{merge} blocks; "
                         f"choose a size that is a multiple of {merge * clip.patch}")
    p = clip.patch
    positions = clip.positions.cpu()
    pixels = clip.pixels.cpu()
    saliency = clip.saliency.cpu()
    anchors = set(torch.nonzero(clip.anchor.cpu()).flatten().tolist()) | {0}
    starts = sorted(anchors)
    segment_of = torch.zeros(t_count, dtype=torch.int64)
    for s, start in enumerate(starts):
        segment_of[start:] = s
    # Where each selected patch sits: (t, row, col) -> its row in clip.pixels.
    slot = {tuple(pos): k for k, pos in enumerate(positions.tolist())}

    canvases: list[torch.Tensor] = []   # (Hg, Wg) int64 index into clip.pixels per cell, -1 empty
    icanvas: list[bool] = []
    segments: list[int] = []
    blocks_per_canvas = (hg // merge) * (wg // merge)
    for s, start in enumerate(starts):
        cells = torch.full((hg, wg), -1, dtype=torch.int64)
        for (t, r, c), k in slot.items():
            if t == start:
                cells[r, c] = k
        canvases.append(cells)
        icanvas.append(True)
        segments.append(s)
        blocks: dict[tuple[int, int, int], float] = {}
        for (t, r, c) in slot:
            if t != start and int(segment_of[t]) == s:
                key = (t, r // merge, c // merge)
                if key not in blocks:
                    block = saliency[t, key[1] * merge:(key[1] + 1) * merge, key[2] * merge:(key[2] + 1) * merge]
                    blocks[key] = float(block.sum())
        order = sorted(blocks, key=lambda b: (-blocks[b], b))
        for first in range(0, len(order), blocks_per_canvas):
            cells = torch.full((hg, wg), -1, dtype=torch.int64)
            for n, (t, br, bc) in enumerate(order[first:first + blocks_per_canvas]):
                sr, sc = divmod(n, wg // merge)  # the block's slot on the canvas
                for dr in range(merge):
                    for dc in range(merge):
                        cells[sr * merge + dr, sc * merge + dc] = slot.get((t, br * merge + dr, bc * merge + dc), -1)
            canvases.append(cells)
            icanvas.append(False)
            segments.append(s)

    index = torch.stack(canvases)                                   # (C, Hg, Wg)
    filled = index >= 0
    source = torch.where(filled[..., None], positions[index.clamp(min=0)], torch.full((), -1))  # (C, Hg, Wg, 3)
    tiles = torch.where(filled[..., None, None, None], pixels[index.clamp(min=0)], torch.zeros((), dtype=torch.uint8))
    count = index.shape[0]
    images = tiles.permute(0, 3, 1, 4, 2, 5).reshape(count, 3, hg * p, wg * p)  # (C, 3, Hg*p, Wg*p)
    # (C, Hg/m, m, Wg/m, m, ...) -> (C, Hg/m, Wg/m, m, m, ...): merge-block order
    blocked = source.reshape(count, hg // merge, merge, wg // merge, merge, 3).permute(0, 1, 3, 2, 4, 5)
    valid = filled.reshape(count, hg // merge, merge, wg // merge, merge).permute(0, 1, 3, 2, 4)
    return Canvases(
        pixels=images, cell_positions=source, patch_positions=blocked.reshape(-1, 3), valid=valid.reshape(-1),
        is_icanvas=torch.tensor(icanvas, dtype=torch.bool), segment=torch.tensor(segments, dtype=torch.int64),
        merge=merge, patch=p)
