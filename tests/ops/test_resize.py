"""Resizing fields, residuals, masks and YUV planes: exact-fraction references, torch oracles, properties."""

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from codecprim.ops.resize import (_area_sum, resize_field, resize_mask, resize_patches, resize_plane, resize_residual,
                                  resize_yuv)


def reference_area(plane, out_h, out_w):
    """Exact box filter with Fractions: mean over each output footprint, weighted by overlap."""
    height, width = len(plane), len(plane[0])
    out = []
    for i in range(out_h):
        y_lo, y_hi = Fraction(i * height, out_h), Fraction((i + 1) * height, out_h)
        row = []
        for j in range(out_w):
            x_lo, x_hi = Fraction(j * width, out_w), Fraction((j + 1) * width, out_w)
            total = Fraction(0)
            for y in range(height):
                oy = min(y_hi, y + 1) - max(y_lo, y)
                if oy <= 0:
                    continue
                for x in range(width):
                    ox = min(x_hi, x + 1) - max(x_lo, x)
                    if ox > 0:
                        total += oy * ox * Fraction(plane[y][x])
            row.append(total / ((y_hi - y_lo) * (x_hi - x_lo)))
        out.append(row)
    return out


def round_half_away(q):
    return int(q + Fraction(1, 2)) if q >= 0 else -int(-q + Fraction(1, 2))


@pytest.mark.parametrize("size", [(7, 5), (10, 23), (25, 16)])  # down, mixed, up
def test_residual_and_mask_match_exact_area(size):
    gen = torch.Generator().manual_seed(sum(size))
    residual = torch.randint(-255, 256, (13, 17), generator=gen, dtype=torch.int16)
    mask = torch.rand((13, 17), generator=gen) > 0.6
    means = reference_area(residual.tolist(), *size)
    expected = torch.tensor([[round_half_away(q) for q in row] for row in means], dtype=torch.int16)
    assert torch.equal(resize_residual(residual, size), expected)
    coverage = reference_area(mask.int().tolist(), *size)
    assert torch.equal(resize_mask(mask, size, rule="any"), torch.tensor([[c > 0 for c in row] for row in coverage]))
    assert torch.equal(resize_mask(mask, size, rule="majority"),
                       torch.tensor([[c >= Fraction(1, 2) for c in row] for row in coverage]))


def test_field_area_matches_exact_area_and_scales_vectors():
    gen = torch.Generator().manual_seed(4)
    field = torch.randint(-40, 41, (11, 14, 2), generator=gen).float() / 4
    out = resize_field(field, (6, 9))
    for c, factor in ((0, Fraction(9, 14)), (1, Fraction(6, 11))):
        expected = [[float(q * factor) for q in row] for row in reference_area(field[..., c].tolist(), 6, 9)]
        torch.testing.assert_close(out[..., c], torch.tensor(expected), rtol=0, atol=1e-5)


def test_area_matches_torch_for_integer_ratios():
    field = torch.randn(2, 48, 64, 2, generator=torch.Generator().manual_seed(1))
    ours = resize_field(field, (12, 16))  # 4x: torch's adaptive pooling is then an exact box filter
    theirs = F.interpolate(field.permute(0, 3, 1, 2), size=(12, 16), mode="area").permute(0, 2, 3, 1)
    torch.testing.assert_close(ours, theirs * 0.25, rtol=0, atol=1e-6)


def integer_area_sums(plane, out_h, out_w):
    """Exact overlap-weighted sums (units: input cell = out_size, output cell = size) as int64 matrix products:
    a slow, obvious reference for the banded float products of the CPU twin."""
    def axis(size, out):
        i, j = np.arange(out)[:, None], np.arange(size)[None, :]
        return np.clip(np.minimum((i + 1) * size, (j + 1) * out) - np.maximum(i * size, j * out), 0, None)
    x = plane.numpy().astype(np.int64)
    return axis(x.shape[0], out_h) @ x @ axis(x.shape[1], out_w).T


@pytest.mark.parametrize("dtype, shape, size, fill", [
    (torch.uint8, (257, 255), (7, 11), 255),      # integer sums just under 2^24 in coarse units: float32 path
    (torch.uint8, (257, 257), (7, 11), 255),      # just over: the float64 path
    (torch.uint8, (720, 1280), (224, 224), None),  # the 720p model size (period-aligned blocks)
    (torch.uint8, (719, 1279), (224, 210), None),  # coprime sizes (gathered blocks)
    (torch.int16, (90, 160), (14, 28), 32767),    # residual extremes: float64
    (torch.int16, (61, 87), (23, 9), None),
])
def test_area_sums_are_exact_integers(dtype, shape, size, fill):
    gen = torch.Generator().manual_seed(shape[0])
    if fill is not None:
        plane = torch.full(shape, fill, dtype=dtype)
    elif dtype == torch.uint8:
        plane = torch.randint(0, 256, shape, generator=gen, dtype=dtype)
    else:
        plane = torch.randint(-32768, 32768, shape, generator=gen, dtype=dtype)
    sums = _area_sum(plane[None, :, :, None], *size)[0, :, :, 0]
    assert np.array_equal(sums.numpy(), integer_area_sums(plane, *size).astype(np.float64))
    if dtype == torch.uint8:
        expected = (2 * integer_area_sums(plane, *size) + shape[0] * shape[1]) // (2 * shape[0] * shape[1])
        assert np.array_equal(resize_plane(plane, size).numpy(), expected)


@pytest.mark.parametrize("size", [(30, 50), (61, 87), (224, 224)])
def test_bilinear_matches_torch(size):
    field = torch.randn(40, 60, 2, generator=torch.Generator().manual_seed(2))
    ours = resize_field(field, size, mode="bilinear")
    theirs = F.interpolate(field.permute(2, 0, 1)[None], size=size, mode="bilinear", align_corners=False)
    theirs = theirs[0].permute(1, 2, 0) * torch.tensor([size[1] / 60, size[0] / 40])
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), oh=st.integers(1, 40), ow=st.integers(1, 40),
       dx=st.floats(-20, 20, width=32), dy=st.floats(-20, 20, width=32), mode=st.sampled_from(["area", "bilinear"]))
def test_uniform_translation_scales_per_axis(h, w, oh, ow, dx, dy, mode):
    field = torch.tensor([dx, dy]).expand(h, w, 2).contiguous()
    out = resize_field(field, (oh, ow), mode=mode)
    expected = torch.tensor([dx * ow / w, dy * oh / h], dtype=torch.float32).expand(oh, ow, 2)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 30), w=st.integers(1, 30), seed=st.integers(0, 2**16))
def test_same_size_is_identity(h, w, seed):
    gen = torch.Generator().manual_seed(seed)
    field = torch.randn(2, h, w, 2, generator=gen)
    residual = torch.randint(-300, 300, (h, w), generator=gen, dtype=torch.int16)
    mask = torch.rand((h, w), generator=gen) > 0.5
    plane = torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8)
    assert torch.equal(resize_field(field, (h, w)), field)
    assert torch.equal(resize_field(field, (h, w), mode="bilinear"), field)
    assert torch.equal(resize_field(field, (h, w), mask=mask.expand(2, h, w)), torch.where(mask[..., None], field, 0.0))
    assert torch.equal(resize_residual(residual, (h, w)), residual)
    assert torch.equal(resize_mask(mask, (h, w)), mask) and torch.equal(resize_mask(mask, (h, w), rule="majority"), mask)
    assert torch.equal(resize_plane(plane, (h, w)), plane)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(2, 30), w=st.integers(2, 30), oh=st.integers(1, 30), ow=st.integers(1, 30), seed=st.integers(0, 99))
def test_residual_sign_symmetry(h, w, oh, ow, seed):
    residual = torch.randint(-500, 501, (h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.int16)
    assert torch.equal(resize_residual(-residual, (oh, ow)), -resize_residual(residual, (oh, ow)))


def test_masked_area_ignores_intra_pixels():
    field = torch.zeros(8, 8, 2)
    field[:, :4] = torch.tensor([2.0, -1.0])  # left half inter, right half intra (zero vectors)
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[:, :4] = True
    plain = resize_field(field, (1, 1))
    masked = resize_field(field, (1, 1), mask=mask)
    torch.testing.assert_close(plain[0, 0], torch.tensor([0.125, -0.0625]))  # diluted by the zeros, then / 8
    torch.testing.assert_close(masked[0, 0], torch.tensor([0.25, -0.125]))  # the inter vector, scaled by 1/8
    assert torch.equal(resize_field(field, (2, 2), mask=mask)[:, 1], torch.zeros(2, 2))  # no covered pixel


def test_resize_yuv_resizes_planes_separately():
    gen = torch.Generator().manual_seed(5)
    luma = torch.randint(0, 256, (2, 30, 41), generator=gen, dtype=torch.uint8)
    chroma = torch.randint(0, 256, (2, 2, 15, 21), generator=gen, dtype=torch.uint8)
    small_luma, small_chroma = resize_yuv(luma, chroma, (13, 17))
    assert small_luma.shape == (2, 13, 17) and small_chroma.shape == (2, 2, 7, 9)
    assert torch.equal(small_chroma[1, 0], resize_plane(chroma[1, 0], (7, 9)))
    expected = [[int(q + Fraction(1, 2)) for q in row] for row in reference_area(luma[0].tolist(), 13, 17)]
    assert torch.equal(small_luma[0], torch.tensor(expected, dtype=torch.uint8))


def test_invalid_inputs():
    field = torch.zeros(4, 4, 2)
    with pytest.raises(ValueError, match="'area', 'bilinear'"):
        resize_field(field, 2, mode="nearest")
    with pytest.raises(ValueError, match=r"shape \(\.\.\., H, W, 2\)"):
        resize_field(torch.zeros(4, 4, 3), 2)
    with pytest.raises(ValueError, match="only supported with mode='area'"):
        resize_field(field, 2, mode="bilinear", mask=torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="size must be an int or a"):
        resize_field(field, "224")
    with pytest.raises(ValueError, match="positive int"):
        resize_residual(torch.zeros(4, 4, dtype=torch.int16), (0, 3))
    with pytest.raises(ValueError, match="'any', 'majority'"):
        resize_mask(torch.ones(4, 4, dtype=torch.bool), 2, rule="all")
    with pytest.raises(ValueError, match="dtype int16"):
        resize_residual(torch.zeros(4, 4, dtype=torch.int32), 2)


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 90), w=st.integers(1, 90), rows=st.integers(1, 6), cols=st.integers(1, 6),
       patch=st.integers(1, 9), chroma=st.booleans(), seed=st.integers(0, 2**16))
def test_resized_patches_equal_cutting_the_resized_planes(h, w, rows, cols, patch, chroma, seed):
    """Oracle: resize the whole planes, then cut the cells (down- and upscaling, windows moved in at the edges)."""
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (3, *((2,) if chroma else ()), h, w), generator=g, dtype=torch.uint8)
    size = (rows * patch, cols * patch)
    whole = resize_plane(frames, size)
    cells = torch.stack([torch.randint(0, 3, (20,), generator=g), torch.randint(0, rows, (20,), generator=g),
                         torch.randint(0, cols, (20,), generator=g)], dim=1)
    expected = torch.stack([whole[t, ..., r * patch:(r + 1) * patch, c * patch:(c + 1) * patch]
                            for t, r, c in cells.tolist()])
    assert torch.equal(resize_patches(list(frames), size, cells, patch), expected)
    assert torch.equal(resize_patches(frames, size, cells[:0], patch), expected[:0])


def test_resized_patches_reject_bad_arguments():
    frames = torch.zeros(2, 20, 30, dtype=torch.uint8)
    cells = torch.tensor([[0, 0, 0]])
    with pytest.raises(ValueError, match="dividing both sides"):
        resize_patches(frames, (14, 15), cells, 7)
    with pytest.raises(ValueError, match="cells must lie"):
        resize_patches(frames, (14, 14), torch.tensor([[2, 0, 0]]), 7)
    with pytest.raises(ValueError, match="one shape"):
        resize_patches([frames[0], frames[1, :10]], (14, 14), cells, 7)
    with pytest.raises(ValueError, match="at least one frame"):
        resize_patches([], (14, 14), cells, 7)


@pytest.mark.parametrize("h,w,size,patch", [(601, 37, (28, 14), 14),   # 255 * 601 overflows 16-bit row sums
                                            (50, 70, (40, 20), 20),    # a patch wider than 16 lanes
                                            (9, 11, (34, 34), 17)])    # upscaling, 17 x 17 patches
def test_resized_patches_at_wide_sums_and_large_patches(h, w, size, patch):
    g = torch.Generator().manual_seed(h)
    frames = torch.randint(0, 256, (2, h, w), generator=g, dtype=torch.uint8)
    whole = resize_plane(frames, size)
    cells = torch.tensor([[t, r, c] for t in range(2) for r in range(size[0] // patch) for c in range(size[1] // patch)])
    expected = torch.stack([whole[t, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] for t, r, c in cells.tolist()])
    assert torch.equal(resize_patches(frames, size, cells, patch), expected)
