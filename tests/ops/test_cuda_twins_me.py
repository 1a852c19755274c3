"""CUDA twin of estimate_motion: bit-identical to the CPU twin (csrc/block_matching.cpp) on the saved
fixtures.

The fixtures (tests/fixtures/motion_estimation_cases.npz, written by make_me_fixtures.py) hold
inputs and the CPU twin's rows; the CPU test below keeps them in step with the code, the GPU
tests replay them through the kernels of cuda/motion_estimation.cu, on a GPU and host-emulated
(tests/host_cuda.py: warp shuffles and __syncthreads emulated with fibers), so CPU-only CI runs
the kernels' code paths and the ops' CUDA glue too.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from host_cuda import kernel_devices

from codecprim import _cuda
from codecprim.ops.motion_estimation import (
    MotionEstimationConfig,
    estimate_motion,
    estimate_motion_batch,
    estimate_motion_frames,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "motion_estimation_cases.npz"
HAVE_CUPY = importlib.util.find_spec("cupy") is not None
needs_gpu = pytest.mark.skipif(not (HAVE_CUPY and torch.cuda.is_available()), reason="needs CuPy and a CUDA GPU")
with np.load(FIXTURES) as _data:
    NUM_CASES = int(_data["num_cases"])


def load_cases():
    with np.load(FIXTURES) as data:
        for i in range(int(data["num_cases"])):
            opts = json.loads(str(data[f"config_{i}"]))
            counts = data[f"counts_{i}"].tolist()
            rows = torch.from_numpy(data[f"rows_{i}"]).split(counts)
            yield (i, torch.from_numpy(data[f"cur_{i}"]), torch.from_numpy(data[f"ref_{i}"]), opts, rows)


def load_extras(i: int):
    """Confidence (M,), intra (M,) of all frames' rows, and the residual (T, H, W) of case ``i``."""
    with np.load(FIXTURES) as data:
        return tuple(torch.from_numpy(data[f"{name}_{i}"]) for name in ("confidence", "intra", "residual"))


def check_frames(est, i: int) -> None:
    """Intra and residual exactly, confidence to float32 rounding (1e-4)."""
    confidence, intra, residual = load_extras(i)
    assert torch.equal(torch.cat(est.intra).cpu(), intra), f"case {i}: intra blocks differ"
    assert torch.equal(est.residual.cpu(), residual), f"case {i}: residual differs"
    torch.testing.assert_close(torch.cat(est.confidence).cpu(), confidence, rtol=1e-4, atol=1e-4)


def test_fixtures_match_the_torch_twin():
    """Regenerate the fixtures (make_me_fixtures.py) whenever this fails after an algorithm change."""
    for i, cur, ref, opts, rows in load_cases():
        out = estimate_motion_batch(cur, ref, config=MotionEstimationConfig(**opts))
        for t, (a, b) in enumerate(zip(out, rows)):
            assert torch.equal(a, b), f"case {i} frame {t} ({opts}) drifted from the saved fixture"
        check_frames(estimate_motion_frames(cur, ref, config=MotionEstimationConfig(**opts)), i)


@pytest.mark.skipif(HAVE_CUPY, reason="CuPy is installed")
def test_kernels_without_cupy_raise_runtime_error():
    with pytest.raises(RuntimeError, match="cupy"):
        _cuda.get_kernel("motion_estimation.cu", "me_level_search_u8")


device = kernel_devices(["motion_estimation.cu"])
# Host emulation runs a block's 256 threads as fibers, 1-16 s per case: the GPU run takes every case, the host run
# two that between them take both kernels, the tiled and the untiled window, and the candidate extras (full search
# with sub-pel; the pyramid with refinement radius 2).
HOST_CASES = (3, 5)


def _case_on(device, case):
    if device == "host" and case not in HOST_CASES:
        pytest.skip("host emulation runs HOST_CASES only")
    i, cur, ref, opts, rows = list(load_cases())[case]
    target = torch.device("cuda" if device == "cuda" else "cpu")
    return i, cur.to(target), ref.to(target), opts, rows


@pytest.mark.parametrize("case", range(NUM_CASES))
def test_cuda_kernel_equals_torch_twin_on_fixtures(device, case):
    i, cur, ref, opts, rows = _case_on(device, case)
    out = estimate_motion_batch(cur, ref, config=MotionEstimationConfig(**opts))
    assert len(out) == len(rows)
    for t, (a, b) in enumerate(zip(out, rows)):
        assert a.device.type == cur.device.type
        assert torch.equal(a.cpu(), b), f"case {i} frame {t} ({opts})"


@pytest.mark.parametrize("case", range(NUM_CASES))
def test_confidence_intra_and_residual_on_the_gpu_equal_the_fixtures(device, case):
    """Plain torch ops on the kernels' vectors: intra and residual exactly, confidence to float rounding."""
    i, cur, ref, opts, _ = _case_on(device, case)
    check_frames(estimate_motion_frames(cur, ref, config=MotionEstimationConfig(**opts)), i)


@pytest.mark.cuda
@needs_gpu
def test_cuda_single_frame_and_auto_backend():
    _, cur, ref, opts, rows = list(load_cases())[0]
    dev = torch.device("cuda")
    out = estimate_motion(cur[0].to(dev), ref[0].to(dev), **opts)  # auto: CUDA tensors -> CUDA kernel
    assert torch.equal(out.cpu(), rows[0])
