"""pack_canvases: every selected patch once, in place on its I-canvas or inside its 2x2 block on a P-canvas."""

from __future__ import annotations

import pytest
import torch

from codecprim import codec_patches
from codecprim.data import pack_canvases


@pytest.fixture(scope="module")
def clip(media):
    return codec_patches(media["h264_no_bframes"], num_frames=16, size=112, budget=200)  # GOP 12: two anchors


def test_every_selected_patch_appears_once_with_its_pixels(clip):
    canvases = pack_canvases(clip)
    c, _, height, width = canvases.pixels.shape
    p = clip.patch
    seen = {}
    for n in range(c):
        for r in range(height // p):
            for col in range(width // p):
                src = tuple(canvases.cell_positions[n, r, col].tolist())
                tile = canvases.pixels[n, :, r * p:(r + 1) * p, col * p:(col + 1) * p]
                if src == (-1, -1, -1):
                    assert tile.eq(0).all()
                    continue
                assert src not in seen
                seen[src] = tile
    want = {tuple(pos): k for k, pos in enumerate(clip.positions.tolist())}
    assert set(seen) == set(want)
    for src, tile in seen.items():
        assert torch.equal(tile, clip.pixels[want[src]])


def test_icanvases_are_anchor_frames_and_pcanvases_hold_whole_blocks(clip):
    canvases = pack_canvases(clip)
    _, hg, wg = clip.grid
    anchors = torch.nonzero(clip.anchor).flatten().tolist()
    assert int(canvases.is_icanvas.sum()) == len(anchors) == 2
    for n in torch.nonzero(canvases.is_icanvas).flatten().tolist():
        cells = canvases.cell_positions[n]
        assert cells[..., 0].unique().numel() == 1 and int(cells[0, 0, 0]) in anchors
        rows, cols = torch.meshgrid(torch.arange(hg), torch.arange(wg), indexing="ij")
        assert torch.equal(cells[..., 1], rows) and torch.equal(cells[..., 2], cols)
    scores: dict[int, list[float]] = {}  # segment -> block saliency in placement order
    for n in torch.nonzero(~canvases.is_icanvas).flatten().tolist():
        for br in range(hg // 2):
            for bc in range(wg // 2):
                block = canvases.cell_positions[n, 2 * br:2 * br + 2, 2 * bc:2 * bc + 2].reshape(4, 3)
                real = block[block[:, 0] >= 0]
                if not len(real):
                    continue
                t, r0, c0 = int(real[0, 0]), int(real[0, 1]) // 2, int(real[0, 2]) // 2
                for k, (dr, dc) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
                    if block[k, 0] >= 0:  # same source block, same offset inside it
                        assert block[k].tolist() == [t, 2 * r0 + dr, 2 * c0 + dc]
                score = float(clip.saliency[t, 2 * r0:2 * r0 + 2, 2 * c0:2 * c0 + 2].sum())
                scores.setdefault(int(canvases.segment[n]), []).append(score)
    assert scores and all(v == sorted(v, reverse=True) for v in scores.values())  # by falling saliency


def test_patch_positions_follow_merge_block_order(clip):
    canvases = pack_canvases(clip)
    _, hg, wg = clip.grid
    first = canvases.cell_positions[0]
    expected = [first[2 * br + dr, 2 * bc + dc].tolist() for br in range(hg // 2) for bc in range(wg // 2)
                for dr in range(2) for dc in range(2)]
    assert canvases.patch_positions[: hg * wg].tolist() == expected
    assert int(canvases.valid.sum()) == clip.positions.shape[0]


def test_odd_grid_is_refused(media):
    odd = codec_patches(media["h264_no_bframes"], num_frames=2, size=42, budget=9)  # 3x3 patches
    with pytest.raises(ValueError, match="does not split into 2x2 blocks"):
        pack_canvases(odd)
