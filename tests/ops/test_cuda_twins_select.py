"""CPU twins vs CUDA kernels (cuda/saliency.cu, cuda/topk_select.cu) on the saved fixtures, on a GPU and
host-emulated (tests/host_cuda.py: the same kernels compiled with g++, barriers and ballots emulated), so CPU-only
CI runs the kernels' code paths too.

Exact equality for integer results (residual sums, selections, top-k indices); float results
(motion pooling, normalisation) within float32 rounding: both sides run the same operations in the
same order with FMA contraction off, but the camera fit solves its small systems with different
LAPACK / cuSOLVER code and torch's vector norms differ per device, so compensated vector lengths
may differ in the last bits.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from host_cuda import kernel_devices, twin

from codecprim.ops.saliency import (SaliencyConfig, combine_saliency, motion_energy_grid, residual_energy_grid,
                                    residual_kernel_name)
from codecprim.ops.select import select_patches, topk_sorted

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_select_fixtures", FIXTURES / "make_select_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def arrays():
    with np.load(FIXTURES / "select_ops.npz") as data:
        return {k: data[k] for k in data.files}


def test_saved_fixtures_are_reproducible(arrays):
    fresh = _load_generator().make_arrays()
    assert sorted(fresh) == sorted(arrays)
    for key, value in fresh.items():
        np.testing.assert_array_equal(arrays[key], value, err_msg=key)


device = kernel_devices(["saliency.cu", "topk_select.cu"])


def _vectors(arrays):
    rows = torch.from_numpy(arrays["vector_rows"])
    return list(torch.split(rows, arrays["vector_counts"].tolist()))


@pytest.mark.parametrize("key,grid", [("residual_odd", (5, 7)), ("residual_aligned", (4, 6)),
                                      ("residual_aligned", (16, 16))])
def test_residual_energy_twins_are_identical(arrays, device, key, grid):
    expected, got = twin(residual_energy_grid, device)(torch.from_numpy(arrays[key]), grid)
    assert torch.equal(got.cpu(), expected)


@pytest.mark.parametrize("width,kernel", [(68, "residual_sums_int16x4"), (640, "residual_sums_int16x8"),
                                          (53, "residual_sums_int16")])
def test_every_residual_load_width_is_identical(device, width, kernel):
    # 640 px: the band is narrower than the block (80 columns of 8), so threads share columns by pixel rows
    residual = torch.randint(-32768, 32768, (2, 45, width), generator=torch.Generator().manual_seed(width),
                             dtype=torch.int16)
    assert residual_kernel_name(width, residual.data_ptr()) == kernel
    expected, got = twin(residual_energy_grid, device)(residual, (3, 16))
    assert torch.equal(got.cpu(), expected)


def test_motion_pooling_adds_in_the_twins_shared_order(arrays, device):
    # Fed the same per-block lengths (the host run computes them with the CPU's torch), the kernel's bucketed
    # sums must be the CPU twin's to the bit: both add a cell's blocks in the same order.
    if device == "cuda":
        pytest.skip("on a GPU the lengths come from the device's own camera fit; see the test below")
    (cpu, _), (got, _) = twin(motion_energy_grid, device)(_vectors(arrays), (76, 100), (16, 16), (224, 224),
                                                          camera="similarity")
    assert torch.equal(got, cpu)


@pytest.mark.parametrize("camera", ["none", "median", "similarity", "affine"])
@pytest.mark.parametrize("grid,model", [((4, 5), None), ((16, 16), (224, 224))])
def test_motion_energy_twins_agree(arrays, device, camera, grid, model):
    (cpu, cpu_fallback), (got, got_fallback) = twin(motion_energy_grid, device)(
        _vectors(arrays), (76, 100), grid, model, camera=camera)
    # The camera fit runs in float64 on each device (solves differ in the last float64 bits) and the
    # compensated vectors are rounded once to float32 (ops.camera.camera_motion), so per-block lengths
    # agree to an ulp (~1e-7 px at these magnitudes); the pooled means then sum a few hundred of them:
    # 1e-5 px bounds that with margin, yet a float32-cancelling compensation (2.2e-5 px) fails it.
    torch.testing.assert_close(got.cpu(), cpu, rtol=1e-5, atol=1e-5)
    assert torch.equal(got_fallback.cpu(), cpu_fallback)


@pytest.mark.parametrize("fusion", ["mean", "max", "weighted"])
@pytest.mark.parametrize("residual", [True, False])
def test_combine_twins_agree(arrays, device, fusion, residual):
    cfg = SaliencyConfig(fusion=fusion, motion_weight=0.3, centre_prior=0.5)
    m = torch.from_numpy(arrays["motion_grid"])
    r = torch.from_numpy(arrays["residual_grid"]) if residual else None
    i = torch.from_numpy(arrays["grid_is_iframe"])
    expected, got = twin(combine_saliency, device)(m, r, i, cfg)
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("budget,ratio", [(2048, None), (700, None), (300, None), (16384, None), (None, 0.1)])
def test_selection_twins_are_identical(arrays, device, budget, ratio):
    s = torch.from_numpy(arrays["saliency"])
    i = torch.from_numpy(arrays["is_iframe"])
    expected, got = twin(select_patches, device)(s, i, budget=budget, ratio=ratio)
    assert torch.equal(got.visible_indices.cpu(), expected.visible_indices)
    assert torch.equal(got.positions.cpu(), expected.positions)
    assert torch.equal(got.tier.cpu(), expected.tier)
    assert torch.equal(got.anchor.cpu(), expected.anchor)


@pytest.mark.parametrize("budget,ratio", [(300, None), (1000, None), (None, 0.3)])
def test_selection_of_still_odd_clips_is_identical(device, budget, ratio):
    # mostly below the floor, so the dither fallback decides; NaN, inf and negatives; a 5 x 7 grid; 9 I-frames
    gen = torch.Generator().manual_seed(budget or 7)
    saliency = torch.rand(40, 5, 7, generator=gen) * 0.6
    saliency.view(-1)[torch.randint(0, 1400, (30,), generator=gen)] = torch.tensor(
        [float("nan"), float("inf"), -1.0]).repeat(10)
    is_iframe = torch.rand(40, generator=gen) < 0.2
    expected, got = twin(select_patches, device)(saliency, is_iframe, budget=budget, ratio=ratio)
    for field in ("visible_indices", "positions", "tier", "anchor"):
        assert torch.equal(getattr(got, field).cpu(), getattr(expected, field)), field


def test_topk_twins_are_identical(arrays, device):
    keys = torch.from_numpy(arrays["topk_keys"])
    k = torch.from_numpy(arrays["topk_k"])
    expected, got = twin(topk_sorted, device)(keys, k)
    assert torch.equal(got.cpu(), expected)
    expected, got = twin(topk_sorted, device)(keys[2:3], k[2:3])
    assert torch.equal(got.cpu(), expected)
