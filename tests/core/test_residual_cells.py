"""Reader.sum_residual_cells: per-cell sums of the squared residual taken inside the residual pass equal the
sums of the residual the reader otherwise returns, on every codec path (rebuilt prediction, H.264 reference
search, MPEG-4 B-frames predicted by the decoder), cropped pictures and grids that do not divide the picture."""

import pytest
import torch

import codecprim


def residual_cell_sums(residual: torch.Tensor, grid) -> torch.Tensor:
    """The obvious reference, independent of the core: 2-D prefix sums of r^2 read at the cell edges."""
    h, w = residual.shape
    hg, wg = grid
    prefix = torch.zeros(h + 1, w + 1, dtype=torch.int64)
    prefix[1:, 1:] = (residual.long() ** 2).cumsum(0).cumsum(1)
    rows = torch.tensor([r * h // hg for r in range(hg + 1)])
    cols = torch.tensor([c * w // wg for c in range(wg + 1)])
    corner = prefix[rows][:, cols]
    return corner[1:, 1:] - corner[:-1, 1:] - corner[1:, :-1] + corner[:-1, :-1]


@pytest.mark.parametrize("name", ["h264_bframes", "h264_odd_size", "mpeg4_native_bframes", "mpeg2", "h263_gop2"])
@pytest.mark.parametrize("grid", [(7, 9), (16, 16), (1, 1)])
def test_cell_sums_equal_the_residuals_sums(media, name, grid):
    path = media[name]
    with codecprim.open(path) as whole, codecprim.open(path) as pooled:
        pooled.sum_residual_cells(grid)
        inter = 0
        for a, b in zip(whole, pooled, strict=True):
            assert torch.equal(a.luma, b.luma)
            if a.residual is None:
                assert b.residual_cell_sums is None
                continue
            inter += 1
            assert b.residual is None
            assert torch.equal(b.residual_cell_sums, residual_cell_sums(a.residual, grid))
        assert inter > 0
        assert pooled.stats.frames_predicted_by_decoder == whole.stats.frames_predicted_by_decoder


def test_cell_sums_on_real_footage_and_sparse_reads(real_clips):
    path = real_clips["bigbuckbunny"]
    grid = (16, 28)
    with codecprim.open(path) as whole, codecprim.open(path) as pooled:
        pooled.sum_residual_cells(grid)
        wanted = [5, 40, 41, 90]
        for a, b in zip(whole.frames_at(wanted), pooled.frames_at(wanted)):
            assert torch.equal(b.residual_cell_sums, residual_cell_sums(a.residual, grid))
        pooled.sum_residual_cells(None)  # back to whole residuals
        assert pooled[7].residual is not None and pooled[7].residual_cell_sums is None


def test_grid_is_checked(media):
    with codecprim.open(media["h264_bframes"]) as reader:
        for grid in [(0, 4), (4, 0), (reader.info.height + 1, 4), (2.5, 4), (True, 4)]:
            with pytest.raises(ValueError, match="grid"):
                reader.sum_residual_cells(grid)
