"""CUDA twin of estimate_motion: bit-identical to the CPU twin (csrc/block_matching.cpp) on the saved
fixtures.

The fixtures (tests/fixtures/motion_estimation_cases.npz, written by make_me_fixtures.py) hold
inputs and the CPU twin's rows; the CPU test below keeps them in step with the code, the GPU
tests replay them through the kernels of cuda/motion_estimation.cu.

No host emulation here (unlike test_cuda_twins_geometry.py): these kernels cooperate across a
thread block (warp shuffles, __syncthreads between stages), which a one-thread-at-a-time loop
cannot run. The saved fixtures are what ties the GPU run to the CPU twin.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

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


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("case", range(NUM_CASES))
def test_cuda_kernel_equals_torch_twin_on_fixtures(case):
    i, cur, ref, opts, rows = list(load_cases())[case]
    dev = torch.device("cuda")
    out = estimate_motion_batch(cur.to(dev), ref.to(dev), config=MotionEstimationConfig(**opts))
    assert len(out) == len(rows)
    for t, (a, b) in enumerate(zip(out, rows)):
        assert a.device.type == "cuda"
        assert torch.equal(a.cpu(), b), f"case {i} frame {t} ({opts})"


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("case", range(NUM_CASES))
def test_confidence_intra_and_residual_on_the_gpu_equal_the_fixtures(case):
    """Plain torch ops on the kernels' vectors: intra and residual exactly, confidence to float rounding."""
    i, cur, ref, opts, _ = list(load_cases())[case]
    check_frames(estimate_motion_frames(cur.cuda(), ref.cuda(), config=MotionEstimationConfig(**opts)), i)


@pytest.mark.cuda
@needs_gpu
def test_cuda_single_frame_and_auto_backend():
    _, cur, ref, opts, rows = list(load_cases())[0]
    dev = torch.device("cuda")
    out = estimate_motion(cur[0].to(dev), ref[0].to(dev), **opts)  # auto: CUDA tensors -> CUDA kernel
    assert torch.equal(out.cpu(), rows[0])
