"""Camera-motion fits: synthetic similarity / affine fields with outlier blocks are recovered."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codecprim.ops.camera import (CameraConfig, block_centres_and_motion, camera_motion, compensate_motion,
                                  fit_camera)

WIDTH, HEIGHT = 640, 480
CORNERS = torch.tensor([[0.0, 0.0], [WIDTH, 0.0], [0.0, HEIGHT], [WIDTH, HEIGHT]])


def _block_centres(generator: torch.Generator, count: int) -> torch.Tensor:
    """Distinct 16x16 macroblock centres, as an encoder would report them."""
    cols, rows = WIDTH // 16, HEIGHT // 16
    cells = torch.randperm(cols * rows, generator=generator)[:count]
    return torch.stack([(cells % cols) * 16 + 8, (cells // cols) * 16 + 8], dim=1).float()


def _quarter_pel(motion: torch.Tensor) -> torch.Tensor:
    return torch.round(motion * 4) / 4


def _apply(matrix: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    return points @ matrix[:, :2].T + matrix[:, 2]


def _scene(seed: int, count: int, outlier_share: float, matrix: torch.Tensor):
    """Block centres, quarter-pel motion of ``matrix``, and outliers moving 8..40 px off it."""
    g = torch.Generator().manual_seed(seed)
    centres = _block_centres(g, count)
    motion = _apply(matrix, centres) - centres
    n_out = int(outlier_share * count)
    angle = torch.rand(n_out, generator=g) * 2 * math.pi
    length = 8 + 32 * torch.rand(n_out, generator=g)
    motion[:n_out] += torch.stack([angle.cos(), angle.sin()], dim=1) * length[:, None]
    return centres, _quarter_pel(motion)


def _corner_error(fitted: torch.Tensor, true: torch.Tensor) -> float:
    return float((_apply(fitted, CORNERS) - _apply(true, CORNERS)).norm(dim=1).max())


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.9, 1.1), angle=st.floats(-0.15, 0.15),
       tx=st.floats(-20, 20), ty=st.floats(-20, 20), count=st.integers(40, 300), outliers=st.floats(0.0, 0.3))
def test_similarity_with_outliers_is_recovered(seed, scale, angle, tx, ty, count, outliers):
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    true = torch.tensor([[c, -s, tx], [s, c, ty]])
    centres, motion = _scene(seed, count, outliers, true)
    fit = fit_camera(centres, motion, model="similarity")
    assert not bool(fit.fallback[0])
    # quarter-pel rounding of the inliers is the only error left: well under a pixel at the corners
    assert _corner_error(fit.matrix[0], true) < 0.5


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), lin=st.lists(st.floats(-0.08, 0.08), min_size=4, max_size=4),
       tx=st.floats(-20, 20), ty=st.floats(-20, 20), count=st.integers(40, 300), outliers=st.floats(0.0, 0.3))
def test_affine_with_outliers_is_recovered(seed, lin, tx, ty, count, outliers):
    true = torch.tensor([[1 + lin[0], lin[1], tx], [lin[2], 1 + lin[3], ty]])
    centres, motion = _scene(seed, count, outliers, true)
    fit = fit_camera(centres, motion, model="affine")
    assert not bool(fit.fallback[0])
    assert _corner_error(fit.matrix[0], true) < 0.5
    n_out = int(outliers * count)
    # the outliers (>= 8 px off) end outside the final inlier set
    assert not bool(fit.inliers[0, :n_out].any())


def test_plain_least_squares_would_fail_on_these_outliers():
    """Guards the test above against being too easy: without trimming the fit is far off."""
    true = torch.tensor([[1.02, -0.03, 5.0], [0.03, 1.02, -4.0]])
    centres, motion = _scene(3, 200, 0.3, true)
    plain = fit_camera(centres, motion, model="similarity", config=CameraConfig(iterations=0))
    robust = fit_camera(centres, motion, model="similarity")
    assert _corner_error(plain.matrix[0], true) > 2.0
    assert _corner_error(robust.matrix[0], true) < 0.5


@pytest.mark.parametrize("model", ["similarity", "affine"])
def test_too_few_vectors_fall_back_to_the_median(model):
    g = torch.Generator().manual_seed(0)
    centres = _block_centres(g, 5)
    motion = _quarter_pel(torch.randn(5, 2, generator=g) * 10)
    fit = fit_camera(centres, motion, model=model, config=CameraConfig(min_vectors=8))
    assert bool(fit.fallback[0])
    expected = [statistics.median_low(motion[:, i].tolist()) for i in range(2)]
    assert fit.matrix[0, :, :2].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert fit.matrix[0, :, 2].tolist() == pytest.approx(expected)


def test_affine_on_a_single_row_of_blocks_falls_back():
    """Collinear blocks cannot determine a shear: the median is used instead of extrapolating."""
    centres = torch.stack([torch.arange(20) * 16.0 + 8, torch.full((20,), 40.0)], dim=1)
    motion = torch.tensor([[2.0, 1.0]]).repeat(20, 1)
    affine = fit_camera(centres, motion, model="affine")
    assert bool(affine.fallback[0])
    assert affine.matrix[0, :, 2].tolist() == [2.0, 1.0]
    similarity = fit_camera(centres, motion, model="similarity")  # a line is enough for it
    assert not bool(similarity.fallback[0])
    assert _corner_error(similarity.matrix[0], torch.tensor([[1.0, 0, 2], [0, 1.0, 1]])) < 1e-3


def test_none_and_median_models():
    g = torch.Generator().manual_seed(1)
    centres = _block_centres(g, 31)
    motion = _quarter_pel(torch.randn(31, 2, generator=g) * 5)
    none = fit_camera(centres, motion, model="none")
    assert torch.equal(none.matrix[0], torch.eye(2, 3))
    median = fit_camera(centres, motion, model="median")
    assert median.matrix[0, :, 2].tolist() == [statistics.median(motion[:, 0].tolist()),
                                               statistics.median(motion[:, 1].tolist())]


def test_batched_padding_matches_single_frames():
    g = torch.Generator().manual_seed(2)
    true_a = torch.tensor([[1.01, -0.02, 3.0], [0.02, 1.01, -1.0]])
    true_b = torch.tensor([[0.98, 0.01, -6.0], [-0.01, 0.98, 2.5]])
    ca, ma = _scene(10, 120, 0.2, true_a)
    cb, mb = _scene(11, 70, 0.1, true_b)
    centres = torch.zeros(2, 120, 2)
    motion = torch.zeros(2, 120, 2)
    valid = torch.zeros(2, 120, dtype=torch.bool)
    centres[0], motion[0], valid[0] = ca, ma, True
    # garbage in the padding must not leak into frame b's fit
    centres[1] = torch.rand(120, 2, generator=g) * 600
    motion[1] = torch.rand(120, 2, generator=g) * 100
    centres[1, :70], motion[1, :70], valid[1, :70] = cb, mb, True
    batched = fit_camera(centres, motion, valid)
    single_b = fit_camera(cb, mb)
    assert torch.allclose(batched.matrix[1], single_b.matrix[0], atol=1e-4)
    assert _corner_error(batched.matrix[0], true_a) < 0.5


def test_compensation_leaves_only_independent_motion():
    true = torch.tensor([[1.0, 0.0, 4.0], [0.0, 1.0, -2.0]])  # a pan
    centres, motion = _scene(5, 150, 0.0, true)
    motion[:10] += torch.tensor([6.0, 0.0])  # a small object moving right
    fit = fit_camera(centres, motion, model="similarity")
    left = compensate_motion(centres[None], motion[None], fit.matrix)[0]
    assert torch.allclose(left[:10], torch.tensor([6.0, 0.0]).expand(10, 2), atol=0.3)
    assert float(left[10:].norm(dim=1).max()) < 0.3
    assert torch.allclose(camera_motion(fit.matrix, centres[None])[0, 50], torch.tensor([4.0, -2.0]), atol=0.1)


def test_block_rows_are_parsed_with_sub_pel_and_direction():
    rows = torch.tensor([
        [-1, 16, 16, 0, 0, 8, 8, 6, -3, 4],     # past: (1.5, -0.75)
        [1, 8, 16, 0, 0, 100, 40, 4, 2, 2],     # future ref: negated to read as past
    ], dtype=torch.int32)
    centres, motion, area = block_centres_and_motion(rows)
    assert centres.tolist() == [[8.0, 8.0], [100.0, 40.0]]
    assert motion.tolist() == [[1.5, -0.75], [-2.0, -1.0]]
    assert area.tolist() == [256.0, 128.0]


def test_invalid_input_raises_value_error():
    with pytest.raises(ValueError, match="similarity"):
        fit_camera(torch.zeros(10, 2), torch.zeros(10, 2), model="homography")
    with pytest.raises(ValueError, match="must both be"):
        fit_camera(torch.zeros(10, 2), torch.zeros(9, 2))
    with pytest.raises(ValueError, match="one of"):
        CameraConfig(model="projective")
    with pytest.raises(ValueError, match="N, 10"):
        block_centres_and_motion(torch.zeros(3, 9, dtype=torch.int32))


@pytest.mark.parametrize("model", ["similarity", "affine", "median", "none"])
@pytest.mark.parametrize("seed", range(4))
def test_core_fit_agrees_with_the_torch_twin(model, seed):
    """The CPU fit (the C++ core, selection for the order statistics) against the batched torch code the GPU runs
    (sorting), both on the CPU: same fallbacks and inliers, transforms equal to float64 rounding. The frames are
    padded with the valid vectors scattered among garbage, and include empty, too-few and weighted ones; the
    motion carries continuous noise so no two residuals tie at a trimming bound."""
    import codecprim.ops.camera as camera

    g = torch.Generator().manual_seed(seed)
    frames, n = 6, 160
    centres, motion = torch.rand(frames, n, 2, generator=g) * 600, torch.rand(frames, n, 2, generator=g) * 80
    valid = torch.zeros(frames, n, dtype=torch.bool)
    for f, count in enumerate([160, 0, 5, 40, 100, 9]):
        slots = torch.randperm(n, generator=g)[:count]
        angle, zoom = 0.1 * (torch.rand((), generator=g).item() - 0.5), 0.95 + 0.1 * torch.rand((), generator=g).item()
        true = torch.tensor([[zoom * math.cos(angle), -zoom * math.sin(angle), 5.0 * f - 12.0],
                             [zoom * math.sin(angle), zoom * math.cos(angle), 3.0 - f]])
        c, m = _scene(100 * seed + f, count, 0.25, true)
        centres[f, slots], motion[f, slots], valid[f, slots] = c, m + 0.1 * torch.randn(count, 2, generator=g), True
    weights = torch.rand(frames, n, generator=g) + 0.5
    for w in (None, weights):
        core = fit_camera(centres, motion, valid, weights=w, model=model)
        twin = camera._fit_camera_torch(centres, motion, valid, w, CameraConfig(), model)
        assert torch.equal(core.fallback, twin.fallback)
        assert torch.equal(core.inliers, twin.inliers)
        torch.testing.assert_close(core.matrix, twin.matrix, rtol=1e-5, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), count=st.integers(20, 400), outliers=st.floats(0.0, 0.15),
       pan=st.sampled_from([(0.0, 0.0), (2.0, -1.25), (-7.5, 0.25)]), model=st.sampled_from(["similarity", "affine"]))
def test_a_pan_keeps_exactly_the_vectors_that_follow_it(seed, count, outliers, pan, model):
    """Every background vector equal (a pure pan, quarter-pel: residuals tie in long runs or sit at rounding
    level, what the selection of the trimmed refits must rank right), a few far off: the inliers are background
    only, at least the 1 - trim_fraction best share (all of the background where it is smaller), and the pan is
    recovered."""
    g = torch.Generator().manual_seed(seed)
    centres = _block_centres(g, count)
    motion = torch.tensor(pan).repeat(count, 1)
    n_out = int(outliers * count)
    angle = torch.rand(n_out, generator=g) * 2 * math.pi
    motion[:n_out] += _quarter_pel(torch.stack([angle.cos(), angle.sin()], dim=1) * (12 + 20 * torch.rand(n_out, 1, generator=g)))
    fit = fit_camera(centres, motion, model=model)
    assert not bool(fit.fallback[0])
    inliers = fit.inliers[0]
    assert not bool(inliers[:n_out].any())
    assert int(inliers.sum()) >= min(math.ceil(0.8 * count), count - n_out)
    assert _corner_error(fit.matrix[0], torch.tensor([[1.0, 0.0, pan[0]], [0.0, 1.0, pan[1]]])) < 1e-3


def test_camera_motion_has_no_float32_cancellation():
    # A near-identity similarity at p ~ 1000 px: A p + t - p in float32 loses the small motion's low bits
    # (the cause of the CPU/CUDA twin gap); (A - I) p + t in float64 keeps it to the float32 rounding.
    g = torch.Generator().manual_seed(0)
    points = torch.rand(1, 500, 2, generator=g) * 1000 + 500
    angle, zoom = 1e-4, 1 + 3e-5
    matrix = torch.tensor([[[zoom * math.cos(angle), -zoom * math.sin(angle), 0.37],
                            [zoom * math.sin(angle), zoom * math.cos(angle), -1.21]]], dtype=torch.float32)
    exact = (torch.einsum("bij,bnj->bni", matrix.double()[:, :, :2] - torch.eye(2, dtype=torch.float64),
                          points.double()) + matrix.double()[:, None, :, 2])
    got = camera_motion(matrix, points)
    assert got.dtype == torch.float32
    assert torch.equal(got, exact.float())
    naive = (torch.einsum("bij,bnj->bni", matrix[:, :, :2], points) + matrix[:, None, :, 2]) - points
    assert (naive.double() - exact).abs().max() > 10 * (got.double() - exact).abs().max()
