"""YUV -> RGB patch gathering against a slow whole-frame float conversion written out plainly."""

import numpy as np
import pytest
import torch

from codecprim.ops.gather import frames_to_rgb, gather_rgb_patches
from codecprim.ops.patchify import patch_grid, patchify

# Published YUV -> RGB matrices: (Y gain, Cr->R, Cb->G, Cr->G, Cb->B), Y offset, C range scale applied.
ORACLE = {
    ("bt601", "limited"): (255 / 219, 1.596027, 0.391762, 0.812968, 2.017232, 16),
    ("bt709", "limited"): (255 / 219, 1.792741, 0.213249, 0.532909, 2.112402, 16),
    ("bt601", "full"): (1.0, 1.402, 0.344136, 0.714136, 1.772, 0),
    ("bt709", "full"): (1.0, 1.5748, 0.187324, 0.468124, 1.8556, 0),
}


def oracle_rgb(luma, chroma, matrix, color_range):
    """Whole frames, float64: chroma repeated 2x2 (nearest), the matrix applied, rounded, clipped."""
    gain, rv, gu, gv, bu, offset = ORACLE[(matrix, color_range)]
    y = luma.numpy().astype(np.float64) - offset
    height, width = y.shape[-2:]
    c = chroma.numpy().astype(np.float64).repeat(2, axis=-2).repeat(2, axis=-1)[..., :height, :width] - 128
    cb, cr = c[:, 0], c[:, 1]
    rgb = np.stack([gain * y + rv * cr, gain * y - gu * cb - gv * cr, gain * y + bu * cb], axis=1)
    return torch.from_numpy(np.clip(np.floor(rgb + 0.5), 0, 255).astype(np.uint8))


def random_yuv(seed, frames=3, height=45, width=60):
    gen = torch.Generator().manual_seed(seed)
    luma = torch.randint(0, 256, (frames, height, width), generator=gen, dtype=torch.uint8)
    chroma = torch.randint(0, 256, (frames, 2, (height + 1) // 2, (width + 1) // 2), generator=gen, dtype=torch.uint8)
    return luma, chroma


def assert_close_to_oracle(got, expected):
    diff = (got.int() - expected.int()).abs()
    assert diff.max() <= 1  # fixed point vs float: only values within ~0.004 of a .5 boundary differ
    assert (diff > 0).float().mean() < 0.01


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
@pytest.mark.parametrize("color_range", ["limited", "full"])
def test_frames_match_oracle(matrix, color_range):
    luma, chroma = random_yuv(1)
    got = frames_to_rgb(luma, chroma, [0, 2], matrix=matrix, color_range=color_range)
    assert got.shape == (2, 3, 45, 60) and got.dtype == torch.uint8
    assert_close_to_oracle(got, oracle_rgb(luma, chroma, matrix, color_range)[[0, 2]])


@pytest.mark.parametrize("p", [14, 16])
def test_patches_are_the_oracle_frames_patches(p):
    luma, chroma = random_yuv(2, frames=4, height=61, width=75)  # odd sizes: centred crop, clamped chroma
    grid = patch_grid(61, 75, p)
    positions = torch.tensor([[0, 0, 0], [3, grid.rows - 1, grid.cols - 1], [1, 1, 2], [1, 1, 2]])
    got = gather_rgb_patches(luma, chroma, positions, p)
    assert got.shape == (4, 3, p, p)
    # the default is BT.601 limited range; the expected patches come from patchify on oracle frames
    expected = patchify(oracle_rgb(luma, chroma, "bt601", "limited"), p)[positions[:, 0], positions[:, 1], positions[:, 2]]
    assert_close_to_oracle(got, expected)
    # and bit-identical to cutting the library's own whole-frame conversion
    frames = frames_to_rgb(luma, chroma, range(4))
    assert torch.equal(got, patchify(frames, p)[positions[:, 0], positions[:, 1], positions[:, 2]])


def test_extremes_clamp():
    luma = torch.tensor([[[0, 255], [16, 235]]], dtype=torch.uint8)
    chroma = torch.tensor([[[[240]], [[16]]]], dtype=torch.uint8)
    rgb = frames_to_rgb(luma, chroma, [0])
    assert rgb.min() == 0 and rgb.max() == 255
    grey = frames_to_rgb(torch.full((1, 2, 2), 235, dtype=torch.uint8), torch.full((1, 2, 1, 1), 128, dtype=torch.uint8), [0])
    assert (grey == 255).all()  # limited-range white


def test_empty_selection():
    luma, chroma = random_yuv(3)
    assert gather_rgb_patches(luma, chroma, torch.zeros((0, 3), dtype=torch.int64), 14).shape == (0, 3, 14, 14)


def test_invalid_inputs():
    luma, chroma = random_yuv(4)
    with pytest.raises(ValueError, match="positions must lie in"):
        gather_rgb_patches(luma, chroma, torch.tensor([[0, 3, 0]]), 14)  # 45 px -> 3 rows: row 3 is out
    with pytest.raises(ValueError, match="positions must lie in"):
        gather_rgb_patches(luma, chroma, torch.tensor([[3, 0, 0]]), 14)
    with pytest.raises(ValueError, match=r"\(K, 3\)"):
        gather_rgb_patches(luma, chroma, torch.tensor([[0, 0]]), 14)
    with pytest.raises(ValueError, match="'bt601', 'bt709'"):
        gather_rgb_patches(luma, chroma, torch.tensor([[0, 0, 0]]), 14, matrix="bt2020")
    with pytest.raises(ValueError, match="'limited', 'full'"):
        frames_to_rgb(luma, chroma, [0], color_range="pc")
    with pytest.raises(ValueError, match="ceil"):
        frames_to_rgb(luma, chroma[..., :-1], [0])
    with pytest.raises(ValueError, match="frame indices"):
        frames_to_rgb(luma, chroma, [5])


@pytest.mark.parametrize("height, width, p", [(56, 70, 14), (62, 74, 14), (34, 30, 8), (17, 17, 4), (9, 9, 3)])
def test_every_cell_in_any_order_is_the_frames_patch(height, width, p):
    # even grid origins and patches take the cut-cells route, odd ones the per-pixel gather: both are frames_to_rgb's
    luma, chroma = random_yuv(7, frames=3, height=height, width=width)
    grid = patch_grid(height, width, p)
    cells = torch.stack(torch.meshgrid(torch.arange(3), torch.arange(grid.rows), torch.arange(grid.cols),
                                       indexing="ij"), dim=-1).reshape(-1, 3)
    cells = cells[torch.randperm(len(cells), generator=torch.Generator().manual_seed(height))]
    for matrix, color_range in [("bt601", "limited"), ("bt709", "full")]:
        got = gather_rgb_patches(luma, chroma, cells, p, matrix=matrix, color_range=color_range)
        frames = patchify(frames_to_rgb(luma, chroma, range(3), matrix=matrix, color_range=color_range), p)
        assert torch.equal(got, frames[cells[:, 0], cells[:, 1], cells[:, 2]])
