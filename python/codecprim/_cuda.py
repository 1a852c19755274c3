"""The one CuPy loader for codecprim's CUDA kernels, plus torch <-> CuPy interop.

Kernels live in ``cuda/*.cu`` (shipped as package data next to this file when installed, or in the
repository's top-level ``cuda/`` folder in a source checkout) as templated ``__device__`` code with
``extern "C" __global__`` entry points named ``<op>_<dtype>``.

Every module is compiled once per (file, options, device) with :class:`cupy.RawModule` and cached.
The source is prefixed with ``#line 1 "<path>"`` so NVRTC errors point at the real file and line.

Tensors cross between torch and CuPy through DLPack without copies, and every launch runs on
torch's *current* stream (wrapped as a :class:`cupy.cuda.ExternalStream`), so kernels are ordered
with the surrounding torch work without any extra synchronisation.

CuPy is an optional dependency imported lazily: asking for a kernel without it raises
:class:`RuntimeError` naming the missing package. There is never a silent CPU fallback.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

__all__ = [
    "DEFAULT_OPTIONS",
    "cuda_dir",
    "cupy",
    "device_index",
    "get_kernel",
    "get_module",
    "is_cuda",
    "launch",
    "to_cupy",
    "to_torch",
    "torch_stream",
]

# --fmad=false: no fused multiply-add contraction, so float arithmetic rounds after every
# operation exactly like the CPU twins (torch evaluates each elementwise op separately).
DEFAULT_OPTIONS: tuple[str, ...] = ("-std=c++17", "--fmad=false")

_THREADS_PER_BLOCK = 256
_lock = threading.Lock()
_modules: dict[tuple[str, tuple[str, ...], int], Any] = {}


def cupy():
    """Import and return the ``cupy`` module, or raise RuntimeError saying how to get it."""
    try:
        import cupy as cp
    except ImportError as exc:  # the message names the package and why it is needed
        raise RuntimeError(
            "codecprim's CUDA kernels need the 'cupy' package (e.g. `pip install cupy-cuda12x`, "
            "matching your CUDA toolkit); it could not be imported: " + str(exc)
        ) from exc
    return cp


def cuda_dir() -> Path:
    """Folder holding the ``.cu`` files: installed package data first, then the source tree."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "cuda", package_dir.parent.parent / "cuda"):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(
        f"codecprim's CUDA sources were not found (looked in {package_dir / 'cuda'} and "
        f"{package_dir.parent.parent / 'cuda'}); the installation is incomplete"
    )


def get_module(file: str, options: tuple[str, ...] = DEFAULT_OPTIONS, device: int | None = None):
    """Compiled :class:`cupy.RawModule` for ``cuda/<file>`` on ``device`` (default: current)."""
    cp = cupy()
    if device is None:
        device = cp.cuda.runtime.getDevice()
    key = (file, tuple(options), int(device))
    with _lock:
        module = _modules.get(key)
        if module is None:
            path = cuda_dir() / file
            if not path.is_file():
                raise RuntimeError(f"CUDA source {path} does not exist")
            source = f'#line 1 "{path.as_posix()}"\n' + path.read_text(encoding="utf-8")
            with cp.cuda.Device(device):
                module = cp.RawModule(code=source, options=tuple(options))
                module.compile()  # eagerly, so compiler errors surface here, pointing at `path`
            _modules[key] = module
    return module


def get_kernel(file: str, name: str, options: tuple[str, ...] = DEFAULT_OPTIONS,
               device: int | torch.device | None = None):
    """The ``extern "C"`` kernel ``name`` from ``cuda/<file>``, compiled for ``device``.

    ``device`` is a CUDA ordinal or a torch CUDA device; ``None`` means CuPy's current device.
    """
    cp = cupy()
    if isinstance(device, torch.device):
        device = device_index(device)
    if device is None:
        device = cp.cuda.runtime.getDevice()
    module = get_module(file, options, device)
    with cp.cuda.Device(device):
        return module.get_function(name)


def device_index(device: torch.device) -> int:
    """CUDA ordinal of a torch device (``cuda`` without an index means torch's current one)."""
    if device.type != "cuda":
        raise ValueError(f"expected a CUDA device, got {device}")
    return device.index if device.index is not None else torch.cuda.current_device()


def is_cuda(*tensors: torch.Tensor) -> bool:
    """Whether an op's inputs live on a CUDA device; they must all share one device."""
    devices = {t.device for t in tensors}
    if len(devices) != 1:
        raise ValueError(f"all inputs must be on one device, got {sorted(map(str, devices))}")
    return next(iter(devices)).type == "cuda"


@contextlib.contextmanager
def torch_stream(device: torch.device) -> Iterator[None]:
    """Make ``device`` and torch's current stream on it CuPy's current device and stream."""
    cp = cupy()
    index = device_index(device)
    stream = torch.cuda.current_stream(index)
    with cp.cuda.Device(index), cp.cuda.ExternalStream(stream.cuda_stream, index):
        yield


def to_cupy(tensor: torch.Tensor):
    """Zero-copy CuPy view of a CUDA tensor (DLPack, synchronised with CuPy's current stream)."""
    if tensor.device.type != "cuda":
        raise ValueError(f"to_cupy needs a CUDA tensor, got one on {tensor.device}")
    return cupy().from_dlpack(tensor.detach())


def to_torch(array) -> torch.Tensor:
    """Zero-copy torch view of a CuPy array (DLPack, synchronised with torch's current stream)."""
    return torch.from_dlpack(array)


def launch(kernel, num_threads: int | None, args: tuple, threads_per_block: int = _THREADS_PER_BLOCK,
           shared_mem: int = 0, *, grid: int | tuple[int, ...] | None = None) -> None:
    """Launch a kernel on torch's current stream: a 1-D grid of at least ``num_threads`` threads, or ``grid``.

    ``grid`` gives the blocks per axis, ``x`` or ``(x, y)``, for kernels that map blocks to work items
    (one block per frame, a (band, frame) grid); ``num_threads`` is then ignored (pass None).
    ``shared_mem`` is the dynamic shared memory per thread block in bytes.

    ``args`` holds CUDA tensors (passed as device pointers, so they must be contiguous) and NumPy
    scalars whose dtype matches the kernel's parameter (``np.int32``, ``np.float32``, ...). Bare
    Python numbers are refused because CuPy would guess their C type.
    """
    if grid is None:
        if num_threads is None or num_threads <= 0:
            return
        blocks: tuple[int, ...] = ((num_threads + threads_per_block - 1) // threads_per_block,)
    else:
        blocks = (grid,) if isinstance(grid, int) else tuple(int(g) for g in grid)
        if not 1 <= len(blocks) <= 2:
            raise ValueError(f"grid must be x or (x, y) blocks, got {grid!r}")
        if min(blocks) <= 0:
            return
    tensors = [arg for arg in args if isinstance(arg, torch.Tensor)]
    if not tensors:
        raise ValueError("a kernel launch needs at least one CUDA tensor argument")
    for arg in args:
        if isinstance(arg, torch.Tensor):
            if not arg.is_contiguous():
                raise ValueError("kernel arguments must be contiguous tensors")
        elif not isinstance(arg, np.generic):
            raise TypeError(f"kernel argument of type {type(arg).__name__}: pass a tensor or a NumPy scalar")
    is_cuda(*tensors)
    # converting inside the context hands torch's own stream to DLPack: no cross-stream wait
    with torch_stream(tensors[0].device):
        converted = tuple(to_cupy(arg) if isinstance(arg, torch.Tensor) else arg for arg in args)
        kernel(blocks, (threads_per_block,), converted, shared_mem=shared_mem)
