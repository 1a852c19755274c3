"""Saliency per patch: CPU twin against slow per-pixel references, plus behaviour on synthetic fields."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codecprim.ops.saliency import (SaliencyConfig, cell_bounds, centre_prior, combine_saliency, motion_energy_grid,
                                    patch_saliency, residual_energy_grid)


def random_blocks(generator: torch.Generator, height: int, width: int, *, scale: int = 4,
                  intra: float = 0.2, spread: float = 8.0) -> torch.Tensor:
    """Macroblocks of a frame with random partitions (16x16, 16x8, 8x16, 8x8) and intra holes."""
    rows = []
    for my in range(0, height, 16):
        for mx in range(0, width, 16):
            if float(torch.rand(1, generator=generator)) < intra:
                continue
            w, h = [(16, 16), (16, 8), (8, 16), (8, 8)][int(torch.randint(4, (1,), generator=generator))]
            for oy in range(0, 16, h):
                for ox in range(0, 16, w):
                    mv = torch.round(torch.randn(2, generator=generator) * spread * scale).int().tolist()
                    cx, cy = mx + ox + w // 2, my + oy + h // 2
                    rows.append([-1, w, h, cx + mv[0] // scale, cy + mv[1] // scale, cx, cy, mv[0], mv[1], scale])
    return torch.tensor(rows, dtype=torch.int32).reshape(-1, 10)


def slow_motion_energy(vectors, frame_size, grid, model_size, shifts):
    """Per-pixel accumulation, then per-cell sums: the obvious way (camera = a known shift per frame)."""
    h, w = frame_size
    hg, wg = grid
    mh, mw = model_size
    out = np.zeros((len(vectors), hg, wg))
    for t, rows in enumerate(vectors):
        value = np.zeros((h, w))
        count = np.zeros((h, w))
        for row in rows.tolist():
            _, bw, bh, _, _, cx, cy, mx, my, sc = row
            dx = (mx / sc - shifts[t][0]) * mw / w
            dy = (my / sc - shifts[t][1]) * mh / h
            x0, y0 = max(cx - bw // 2, 0), max(cy - bh // 2, 0)
            x1, y1 = min(cx - bw // 2 + bw, w), min(cy - bh // 2 + bh, h)
            if x1 > x0 and y1 > y0:
                value[y0:y1, x0:x1] += math.hypot(dx, dy)
                count[y0:y1, x0:x1] += 1
        for r in range(hg):
            for c in range(wg):
                ys = slice(r * h // hg, (r + 1) * h // hg)
                xs = slice(c * w // wg, (c + 1) * w // wg)
                area = (ys.stop - ys.start) * (xs.stop - xs.start)
                out[t, r, c] = value[ys, xs].sum() / max(count[ys, xs].sum(), area)
    return out


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), h=st.integers(20, 90), w=st.integers(20, 90),
       hg=st.integers(1, 9), wg=st.integers(1, 9))
def test_residual_energy_matches_per_cell_loops(seed, h, w, hg, wg):
    g = torch.Generator().manual_seed(seed)
    res = torch.randint(-255, 256, (2, h, w), generator=g, dtype=torch.int16)
    got = residual_energy_grid(res, (hg, wg))
    for t in range(2):
        for r in range(hg):
            for c in range(wg):
                block = res[t, r * h // hg:(r + 1) * h // hg, c * w // wg:(c + 1) * w // wg].long()
                exact = math.sqrt(int((block * block).sum()) / block.numel())
                assert float(got[t, r, c]) == float(np.float32(exact))  # exact integer sums: bitwise
    assert torch.equal(residual_energy_grid(res[0], (hg, wg)), got[0])


@pytest.mark.parametrize("w, grid", [(6, (2, 3)),   # 2 pixels a row per cell: 2 * 32767^2 < 2^31, int32
                                     (6, (2, 2)),   # 3 pixels: int64
                                     (7, (2, 3)),   # uneven cells (cumulative sums over 7 pixels): int64
                                     (1280, (16, 16))])
def test_residual_energy_is_exact_at_int16_extremes(w, grid):
    res = torch.full((1, 32, w), -32767, dtype=torch.int16)
    res[0, ::2, ::3] = 32767
    got = residual_energy_grid(res, grid)[0]
    hg, wg = grid
    for r in range(hg):
        for c in range(wg):
            block = res[0, r * 32 // hg:(r + 1) * 32 // hg, c * w // wg:(c + 1) * w // wg].long()
            assert float(got[r, c]) == float(np.float32(math.sqrt(int((block * block).sum()) / block.numel())))


@pytest.mark.parametrize("frame_size,grid,model_size", [((76, 100), (5, 7), (76, 100)),
                                                        ((64, 96), (4, 6), (56, 84)),
                                                        ((48, 40), (6, 5), (224, 224))])
def test_motion_energy_matches_per_pixel_reference(frame_size, grid, model_size):
    g = torch.Generator().manual_seed(sum(frame_size))
    vectors = [random_blocks(g, *frame_size) for _ in range(3)] + [torch.zeros(0, 10, dtype=torch.int32)]
    got, fallback = motion_energy_grid(vectors, frame_size, grid, model_size, camera="none")
    want = slow_motion_energy(vectors, frame_size, grid, model_size, [(0.0, 0.0)] * 4)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    assert got.dtype == torch.float32 and got.shape == (4, *grid)
    assert not bool(fallback.any())

    med, _ = motion_energy_grid(vectors, frame_size, grid, model_size, camera="median")
    shifts = []
    for rows in vectors:
        mv = (rows[:, 7:9].double() / rows[:, 9:10].double()).tolist()
        shifts.append((statistics.median_low([m[0] for m in mv]), statistics.median_low([m[1] for m in mv]))
                      if mv else (0.0, 0.0))
    np.testing.assert_allclose(med.numpy(), slow_motion_energy(vectors, frame_size, grid, model_size, shifts),
                               rtol=1e-5, atol=1e-6)


def _pan_with_object(pan=(3.0, 1.0), obj=(-4.0, 0.0), size=(128, 160)):
    """Every 16x16 block moves with the pan, except a 32x32 object at x in [64, 96), y in [32, 64)."""
    h, w = size
    rows = []
    for cy in range(8, h, 16):
        for cx in range(8, w, 16):
            inside = 64 <= cx < 96 and 32 <= cy < 64
            dx, dy = obj if inside else pan
            rows.append([-1, 16, 16, 0, 0, cx, cy, int(dx * 4), int(dy * 4), 4])
    return torch.tensor(rows, dtype=torch.int32)


def test_camera_compensation_isolates_the_moving_object():
    rows = _pan_with_object()
    grid = (4, 5)  # cells of 32 x 32 px: the object is exactly cell (1, 2)
    for model in ("median", "similarity", "affine"):
        motion, _ = motion_energy_grid([rows], (128, 160), grid, camera=model)
        assert float(motion[0, 1, 2]) == pytest.approx(math.hypot(-7.0, -1.0), rel=1e-4)
        motion[0, 1, 2] = 0
        assert float(motion.abs().max()) < 1e-3
    raw, _ = motion_energy_grid([rows], (128, 160), grid, camera="none")
    assert float(raw[0, 0, 0]) == pytest.approx(math.hypot(3.0, 1.0), rel=1e-5)
    assert float(raw[0, 1, 2]) == pytest.approx(4.0, rel=1e-5)  # slower than the pan: not the top cell


def test_vectors_are_measured_in_model_pixels():
    rows = torch.tensor([[-1, 16, 16, 0, 0, 8, 8, 16, 0, 4]], dtype=torch.int32)  # 4 px right
    motion, _ = motion_energy_grid([rows], (16, 16), (1, 1), (8, 4), camera="none")   # width / 4
    assert float(motion[0, 0, 0]) == pytest.approx(1.0)


def slow_combine(motion, residual, is_iframe, cfg):
    out = np.zeros(motion.shape, dtype=np.float64)
    prior = centre_prior(motion.shape[1:], cfg.centre_prior, cfg.centre_sigma).double().numpy()

    def norm(x, reference, noise):
        floor = 0.0 if noise is None else float(torch.quantile(x.flatten(), noise))
        scale = max(float(torch.quantile(x.flatten(), cfg.percentile)) - floor, reference)
        return (x - floor).clamp_min(0) / scale

    for t in range(motion.shape[0]):
        if is_iframe[t]:
            continue
        m = norm(motion[t].double(), cfg.motion_reference, None)
        if residual is None:
            f = m
        else:
            r = norm(residual[t].double(), cfg.residual_reference, cfg.noise_percentile)
            f = {"mean": (m + r) / 2, "max": torch.maximum(m, r),
                 "weighted": cfg.motion_weight * m + (1 - cfg.motion_weight) * r}[cfg.fusion]
        out[t] = f.numpy() * prior
    return out


@pytest.mark.parametrize("fusion", ["mean", "max", "weighted"])
@pytest.mark.parametrize("prior,noise", [(0.0, 0.25), (0.6, None)])
def test_combine_matches_quantile_reference(fusion, prior, noise):
    g = torch.Generator().manual_seed(7)
    motion = torch.rand(6, 7, 9, generator=g) * 3
    motion[2] *= 0.01  # a still frame: scaled by the reference, not blown up to 1
    residual = torch.rand(6, 7, 9, generator=g) * 40
    is_iframe = torch.tensor([True, False, False, False, True, False])
    cfg = SaliencyConfig(fusion=fusion, motion_weight=0.7, centre_prior=prior, noise_percentile=noise)
    got = combine_saliency(motion, residual, is_iframe, cfg)
    np.testing.assert_allclose(got.numpy(), slow_combine(motion, residual, is_iframe, cfg), rtol=2e-6, atol=1e-7)
    assert float(got[0].abs().max()) == 0.0 and float(got[4].abs().max()) == 0.0
    assert float(got[2].max()) < 0.1 + 1.0  # still motion stays small; residual alone adds at most ~1
    motion_only = combine_saliency(motion, None, is_iframe, cfg)
    np.testing.assert_allclose(motion_only.numpy(), slow_combine(motion, None, is_iframe, cfg), rtol=2e-6, atol=1e-7)


def test_uniform_residual_grain_is_not_salient_but_a_local_residual_is():
    g = torch.Generator().manual_seed(8)
    motion = torch.zeros(2, 16, 16)
    grain = 25.0 + torch.rand(2, 16, 16, generator=g)  # strong sensor noise, the same everywhere
    grain[1, 5, 5] = 60.0                              # plus something new in one patch
    sal = combine_saliency(motion, grain, torch.zeros(2, dtype=torch.bool))
    assert float(sal[0].max()) < 0.1
    assert float(sal[1, 5, 5]) > 1.0 and float(sal[1].flatten().topk(2).values[1]) < 0.1


def test_centre_prior_peaks_in_the_middle_and_is_symmetric():
    prior = centre_prior((16, 16), 1.0, 0.5)
    assert prior.shape == (16, 16)
    assert torch.equal(prior, prior.flip(0)) and torch.equal(prior, prior.flip(1)) and torch.equal(prior, prior.T)
    assert float(prior[7, 7]) > 0.9 and float(prior[0, 0]) < 0.05
    assert torch.equal(centre_prior((5, 3), 0.0, 0.5), torch.ones(5, 3))


def test_patch_saliency_end_to_end_on_synthetic_frames():
    g = torch.Generator().manual_seed(3)
    pan = _pan_with_object()
    vectors = [torch.zeros(0, 10, dtype=torch.int32), pan, pan]
    residuals = [None, torch.zeros(128, 160, dtype=torch.int16), torch.zeros(128, 160, dtype=torch.int16)]
    residuals[2][32:64, 64:96] = torch.randint(-30, 30, (32, 32), generator=g, dtype=torch.int16)
    result = patch_saliency(vectors, residuals, torch.tensor([True, False, False]), (128, 160), (4, 5))
    assert result.saliency.shape == (3, 4, 5) and result.residual is not None
    assert float(result.saliency[0].abs().max()) == 0.0
    for t in (1, 2):
        top = int(result.saliency[t].flatten().argmax())
        assert top == 1 * 5 + 2  # the object cell
    stacked = patch_saliency(vectors, torch.stack([torch.zeros(128, 160, dtype=torch.int16), residuals[1],
                                                   residuals[2]]), torch.tensor([True, False, False]),
                             (128, 160), (4, 5))
    assert torch.equal(stacked.saliency, result.saliency)


def test_cell_bounds_and_validation():
    assert cell_bounds(10, 3).tolist() == [0, 3, 6, 10]
    with pytest.raises(ValueError, match="cannot hold"):
        cell_bounds(3, 4)
    with pytest.raises(ValueError, match="fusion"):
        SaliencyConfig(fusion="product")
    with pytest.raises(ValueError, match="camera"):
        motion_energy_grid([torch.zeros(0, 10, dtype=torch.int32)], (32, 32), (2, 2), camera="homography")
    with pytest.raises(ValueError, match="int16"):
        residual_energy_grid(torch.zeros(4, 4, dtype=torch.int32), (2, 2))
    with pytest.raises(ValueError, match="10 columns"):
        motion_energy_grid([torch.zeros(3, 9, dtype=torch.int32)], (32, 32), (2, 2))
