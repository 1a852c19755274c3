"""``_cuda.launch``: the grid it hands the kernel (1-D from a thread count, or explicit 1-/2-D blocks), dynamic
shared memory, and the arguments it refuses. A recording kernel stands in for CuPy's, so no GPU is needed."""

import contextlib

import numpy as np
import pytest
import torch

from codecprim import _cuda


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, grid, block, args, shared_mem=0):
        self.calls.append((grid, block, shared_mem, len(args)))


@pytest.fixture
def kernel(monkeypatch):
    monkeypatch.setattr(_cuda, "torch_stream", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(_cuda, "to_cupy", lambda tensor: tensor)
    return Recorder()


def test_grids_and_shared_memory(kernel):
    x = torch.zeros(4)
    _cuda.launch(kernel, 1000, (x, np.int32(3)))
    _cuda.launch(kernel, None, (x,), threads_per_block=128, grid=(16, 64), shared_mem=2048)
    _cuda.launch(kernel, None, (x,), grid=7)
    assert kernel.calls == [((4,), (256,), 0, 2), ((16, 64), (128,), 2048, 1), ((7,), (256,), 0, 1)]


def test_empty_launches_do_nothing(kernel):
    x = torch.zeros(4)
    _cuda.launch(kernel, 0, (x,))
    _cuda.launch(kernel, None, (x,), grid=(0, 5))
    assert kernel.calls == []


def test_refusals(kernel):
    x = torch.zeros(4)
    with pytest.raises(ValueError, match=r"x or \(x, y\)"):
        _cuda.launch(kernel, None, (x,), grid=(1, 2, 3))
    with pytest.raises(TypeError, match="NumPy scalar"):
        _cuda.launch(kernel, 10, (x, 3))
    with pytest.raises(ValueError, match="contiguous"):
        _cuda.launch(kernel, 10, (torch.zeros(4, 4).t(),))
    with pytest.raises(ValueError, match="at least one"):
        _cuda.launch(kernel, 10, (np.int32(1),))
