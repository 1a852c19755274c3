"""CPU twin vs CUDA kernel for the geometry ops, on the saved random inputs of geometry_ops.npz.

Two backends run every comparison:

* ``cuda``: the real thing (CuPy + a CUDA device; skipped without them).
* ``host``: the same ``cuda/*.cu`` sources compiled for the CPU with g++ (tests/host_cuda.py), driven
  through the ops' own CUDA code paths and ``_cuda.launch``. It checks kernel logic, argument order and
  the Python glue on machines without a GPU; it cannot see races or device-only behaviour.

Tolerances: integer and boolean outputs must be identical; float outputs within 1e-5 px (dense
coarse grid, resize) or 1e-4 px (fusion, whose steps chain). Both sides are compiled without FMA
contraction and share one operation order, so they are normally bit-identical.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from host_cuda import kernel_devices, twin

from codecprim import _cuda
from codecprim.ops.dense import dense_field
from codecprim.ops.fusion import fuse_fields, fused_residual
from codecprim.ops.gather import frames_to_rgb, gather_rgb_patches
from codecprim.ops.patchify import patchify
from codecprim.ops.resize import resize_field, resize_mask, resize_plane, resize_residual

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
KERNEL_FILES = ("dense_field.cu", "fusion.cu", "resize.cu", "patchify.cu", "gather.cu")

def _generator():
    spec = importlib.util.spec_from_file_location("make_geometry_fixtures", FIXTURES / "make_geometry_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def arrays():
    with np.load(FIXTURES / "geometry_ops.npz") as data:
        return {name: torch.from_numpy(data[name]) for name in data.files}


def test_saved_fixtures_match_their_script(arrays):
    fresh = _generator().make_arrays()
    assert sorted(fresh) == sorted(arrays)
    for name, value in fresh.items():
        assert np.array_equal(value, arrays[name].numpy()), name


device = kernel_devices(KERNEL_FILES)


def same(expected, got):
    assert torch.equal(expected, got.cpu())


def close(expected, got, atol):
    assert got.dtype == expected.dtype
    torch.testing.assert_close(got.cpu(), expected, rtol=0, atol=atol)


@pytest.mark.parametrize("direction", ["past", "future"])
def test_dense_field(arrays, device, direction):
    height, width = arrays["dense_size"].tolist()
    cpu, dev = twin(dense_field, device)(arrays["dense_blocks"], height, width, direction=direction)
    assert cpu.mask.any() and cpu.coarse_mask.any()
    same(cpu.field_px, dev.field_px)
    same(cpu.mask, dev.mask)
    same(cpu.coarse_mask, dev.coarse_mask)
    close(cpu.coarse_px, dev.coarse_px, 1e-5)
    _, empty = twin(dense_field, device)(torch.zeros((0, 10), dtype=torch.int32), height, width)
    assert not empty.mask.any() and not empty.field_px.any()


@pytest.mark.parametrize("all_spans", [False, True])
def test_fuse_fields(arrays, device, all_spans):
    (cpu_field, cpu_mask), (dev_field, dev_mask) = twin(fuse_fields, device)(
        arrays["fusion_fields"], arrays["fusion_masks"], all_spans=all_spans)
    close(cpu_field, dev_field, 1e-4)
    same(cpu_mask, dev_mask)


def test_fused_residual(arrays, device):
    same(*twin(fused_residual, device)(arrays["fusion_luma_t"], arrays["fusion_luma_ref"], arrays["fusion_warp_field"]))


def test_resize(arrays, device):
    field, mask = arrays["resize_field"], arrays["resize_mask"]
    for size in map(tuple, arrays["resize_sizes"].tolist()):
        close(*twin(resize_field, device)(field, size), 1e-5)
        close(*twin(resize_field, device)(field, size, mode="bilinear"), 1e-5)
        close(*twin(resize_field, device)(field, size, mask=mask), 1e-5)
        same(*twin(resize_residual, device)(arrays["resize_residual"], size))
        same(*twin(resize_plane, device)(arrays["resize_plane"], size))
        for rule in ("any", "majority"):
            same(*twin(resize_mask, device)(mask, size, rule=rule))


@pytest.mark.parametrize("p", [14, 16])
def test_patchify(arrays, device, p):
    for name in ("patchify_uint8", "patchify_float32"):
        same(*twin(patchify, device)(arrays[name], p))
    masks = arrays["resize_mask"][:, None]  # (2, 1, 37, 53) bool
    same(*twin(patchify, device)(masks, p, layout="flat"))


@pytest.mark.parametrize("matrix,color_range", [("bt601", "limited"), ("bt709", "full")])
def test_gather(arrays, device, matrix, color_range):
    luma, chroma, positions = arrays["gather_luma"], arrays["gather_chroma"], arrays["gather_positions"]
    options = {"matrix": matrix, "color_range": color_range}
    same(*twin(gather_rgb_patches, device)(luma, chroma, positions, 14, **options))
    same(*twin(frames_to_rgb, device)(luma, chroma, [0, 3], **options))


def test_cuda_tensor_without_cupy_names_the_package(monkeypatch):
    """The loader's error path, exercised without a GPU by hiding cupy from the import system."""
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    with pytest.raises(RuntimeError, match="'cupy' package"):
        _cuda.get_kernel("dense_field.cu", "dense_owner_int32")


def test_every_kernel_file_is_found():
    assert set(KERNEL_FILES) <= {p.name for p in _cuda.cuda_dir().glob("*.cu")}
