"""Patchify: centred-crop policy against plain loops, layouts, the unpatchify round trip, and the one
implementation every caller (ops, the codec ViT, the Δ-encoder) shares."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codecprim.ops.patchify import patch_grid, patchify, unpatchify


def reference_patches(x, p):
    """Loops: patch (r, c) holds x[:, top + r*p + v, left + c*p + u] at [r, c, :, v, u]."""
    channels, height, width = x.shape
    rows, cols = height // p, width // p
    top, left = (height - rows * p) // 2, (width - cols * p) // 2
    out = torch.empty(rows, cols, channels, p, p, dtype=x.dtype)
    for r in range(rows):
        for c in range(cols):
            for v in range(p):
                for u in range(p):
                    out[r, c, :, v, u] = x[:, top + r * p + v, left + c * p + u]
    return out


@pytest.mark.parametrize("p", [14, 16])
@pytest.mark.parametrize("size", [(224, 224), (45, 61), (31, 16)])
def test_matches_loops(p, size):
    x = torch.randint(-1000, 1000, (2, *size), generator=torch.Generator().manual_seed(p), dtype=torch.int16)
    assert torch.equal(patchify(x, p), reference_patches(x, p))


def test_model_grids_and_flat_layout():
    x = torch.rand(3, 224, 224)
    assert patchify(x, 14).shape == (16, 16, 3, 14, 14)
    assert patchify(x, 16).shape == (14, 14, 3, 16, 16)
    flat = patchify(x, 14, layout="flat")
    assert flat.shape == (256, 3 * 14 * 14)
    # raster order of patches, channel-major inside a patch
    assert torch.equal(flat[1 * 16 + 2], x[:, 14:28, 28:42].reshape(-1))


def test_centred_crop_policy():
    assert patch_grid(230, 229, 16) == (14, 14, 3, 2)  # remainders 6 and 5: odd pixel to bottom/right
    x = torch.arange(20 * 23, dtype=torch.float32).view(1, 20, 23)
    patches = patchify(x, 8)  # rows 2 (top 2), cols 2 (left 3)
    assert patches[0, 0, 0, 0, 0] == x[0, 2, 3] and patches[1, 1, 0, 7, 7] == x[0, 17, 18]


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 5), cols=st.integers(1, 5), p=st.sampled_from([2, 3, 14, 16]), extra_h=st.integers(0, 13),
       extra_w=st.integers(0, 13), lead=st.sampled_from([(), (2,), (2, 3)]),
       dtype=st.sampled_from([torch.uint8, torch.int16, torch.int32, torch.float32, torch.bool]))
def test_round_trip(rows, cols, p, extra_h, extra_w, lead, dtype):
    extra_h, extra_w = extra_h % p, extra_w % p
    height, width = rows * p + extra_h, cols * p + extra_w
    x = torch.randint(0, 2 if dtype == torch.bool else 100, (*lead, 2, height, width)).to(dtype)
    grid = patch_grid(height, width, p)
    crop = x[..., grid.top:grid.top + rows * p, grid.left:grid.left + cols * p]
    patches = patchify(x, p)
    assert patches.shape == (*lead, rows, cols, 2, p, p) and patches.dtype == dtype
    assert torch.equal(unpatchify(patches), crop)
    flat = patchify(x, p, layout="flat")
    assert torch.equal(unpatchify(flat.view(*lead, rows, cols, 2, p, p)), crop)
    if extra_h == 0 and extra_w == 0:
        assert torch.equal(unpatchify(patches), x)


def test_invalid_inputs():
    with pytest.raises(ValueError, match="holds no whole 16x16 patch"):
        patchify(torch.zeros(1, 15, 40), 16)
    with pytest.raises(ValueError, match="add a channel axis"):
        patchify(torch.zeros(32, 32), 16)
    with pytest.raises(ValueError, match="'grid', 'flat'"):
        patchify(torch.zeros(1, 32, 32), 16, layout="tokens")
    with pytest.raises(ValueError, match="patch must be a positive int"):
        patchify(torch.zeros(1, 32, 32), 0)
    with pytest.raises(ValueError, match="must be a torch.Tensor"):
        patchify([[[0.0]]], 1)
    with pytest.raises(ValueError, match=r"\(\.\.\., rows, cols, C, p, p\)"):
        unpatchify(torch.zeros(2, 2, 1, 4, 5))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_model_dtypes_match_loops(dtype):
    x = torch.randn(2, 3, 30, 33).to(dtype)
    for b in range(2):
        assert torch.equal(patchify(x, 7)[b], reference_patches(x[b], 7))


def test_gradient_flows_back_to_the_cropped_pixels():
    x = torch.randn(2, 20, 23, requires_grad=True)
    patchify(x, 8, layout="flat").sum().backward()
    grid = patch_grid(20, 23, 8)
    inside = torch.zeros(20, 23)
    inside[grid.top:grid.top + 16, grid.left:grid.left + 16] = 1
    assert torch.equal(x.grad, inside.expand(2, -1, -1))


def test_one_implementation_for_ops_and_models():
    import codecprim.models as models
    import codecprim.patchify as home
    from codecprim import ops
    from codecprim.models import codec_vit, delta_encoder

    assert ops.patchify is models.patchify is codec_vit.patchify is delta_encoder.patchify is home.patchify
