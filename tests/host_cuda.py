"""Host emulation of the CUDA kernels: the same ``cuda/*.cu`` sources compiled for the CPU with g++.

It lets CPU-only CI run the kernels' code paths, argument order and the ops' Python glue; it cannot see races,
timing or device-only behaviour. How a .cu file becomes host C++ (HOST_SHIM, plus two textual rewrites):

* CUDA keywords vanish; ``blockIdx``/``threadIdx``/``blockDim``/``gridDim`` are globals the runner sets.
* Every thread of a block is a fiber (ucontext) on one OS thread. ``__syncthreads()`` switches back to the
  runner, which resumes the block's fibers in rounds, so no fiber passes a barrier before all have reached it.
  Each round runs the threads in a fresh pseudo-random order, so a missing barrier usually shows as a wrong result.
* ``__shared__`` variables are function statics (blocks run one after another); the dynamic
  ``extern __shared__ T name[]`` becomes a pointer into a buffer of the launch's ``shared_mem`` bytes, filled
  with 0xFF so a kernel that reads shared memory it never wrote gives wrong results.
* ``__ballot_sync`` and the ``__shfl*_sync`` shuffles are two warp barriers around a shared array: a warp barrier
  waits for the live lanes of that warp only, so warps may shuffle different numbers of times between
  ``__syncthreads``. Threads left waiting at different barriers (a divergent sync) raise RuntimeError. Atomics are plain read-modify-writes (fibers only switch at barriers).
* Each ``extern "C" __global__`` kernel gets a ``host_<name>(const long long* slots)`` trampoline that casts
  its 8-byte slots to the declared parameter types (pointers, integers, float bit patterns).

A test module declares ``device = kernel_devices(["saliency.cu", ...])`` and compares with :func:`twin`: under
``"host"`` CPU tensors take the ops' CUDA branches and run through ``_cuda.launch`` /
``kernel(grid, block, args, shared_mem=...)`` as on a GPU; under ``"cuda"`` the real kernels run.
"""

from __future__ import annotations

import contextlib
import ctypes
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterable

import numpy as np
import pytest
import torch

import twin_outputs
from gpu import cuda_ready

from codecprim import _cuda

HOST_SHIM = r"""
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>
#include <ucontext.h>
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static
struct HostDim { unsigned x, y, z; };
static HostDim blockIdx, threadIdx, blockDim, gridDim;
struct uint2 { unsigned x, y; };
struct int4 { int x, y, z, w; };
using std::max;
using std::min;
static inline float __int_as_float(int v) { float f; std::memcpy(&f, &v, 4); return f; }
static inline int __float_as_int(float f) { int v; std::memcpy(&v, &f, 4); return v; }
static inline int __popc(unsigned v) { return __builtin_popcount(v); }
template <class T> static inline T atomicAdd(T* address, T value) { const T old = *address; *address = old + value; return old; }
template <class T> static inline T atomicMax(T* address, T value) {
  const T old = *address;
  if (value > old) *address = value;
  return old;
}
namespace host {
static unsigned char* dynamic_shared = nullptr;
static ucontext_t runner;
static std::vector<ucontext_t> fibers;
static std::vector<char> finished;
static std::vector<unsigned char> predicates;
static std::vector<long long> lanes;     // what each thread offers to a shuffle
enum Wait : unsigned char { kRunnable = 0, kBlock = 1, kWarp = 2 };
static std::vector<unsigned char> waiting;
static int current = 0;
static void (*entry)(const long long*) = nullptr;
static const long long* entry_slots = nullptr;
static void wait_at(Wait kind) {
  waiting[current] = kind;
  swapcontext(&fibers[current], &runner);
}
static void sync() { wait_at(kBlock); }
// Warp-level calls wait for their warp only: a warp may shuffle more often than the others (a loop over
// candidates split between warps), which a block barrier would misalign.
static unsigned ballot(bool p) {
  predicates[threadIdx.x] = p;
  wait_at(kWarp);
  const unsigned first = threadIdx.x & ~31u;
  unsigned bits = 0;
  for (unsigned i = 0; i < 32 && first + i < blockDim.x; ++i) bits |= predicates[first + i] ? 1u << i : 0u;
  wait_at(kWarp);
  return bits;
}
template <class T> static T shuffle(T v, unsigned source) {
  static_assert(sizeof(T) <= sizeof(long long), "shuffles move at most 8 bytes");
  std::memcpy(&lanes[threadIdx.x], &v, sizeof v);
  wait_at(kWarp);
  T out;
  std::memcpy(&out, &lanes[source < blockDim.x ? source : threadIdx.x], sizeof out);
  wait_at(kWarp);
  return out;
}
static void fiber_main() {
  entry(entry_slots);
  finished[current] = 1;
}
// After a round every live fiber waits somewhere: free a warp whose live lanes all wait at a warp call, and the
// block when every live fiber waits at __syncthreads. False when nothing could be freed (divergent barriers).
static bool release(unsigned threads) {
  bool freed = false;
  for (unsigned first = 0; first < threads; first += 32) {
    bool all = true, any = false;
    for (unsigned t = first; t < first + 32 && t < threads; ++t) {
      if (finished[t]) continue;
      any = true;
      all = all && waiting[t] == kWarp;
    }
    if (all && any) {
      for (unsigned t = first; t < first + 32 && t < threads; ++t) waiting[t] = kRunnable;
      freed = true;
    }
  }
  bool all = true, any = false;
  for (unsigned t = 0; t < threads; ++t) {
    if (finished[t]) continue;
    any = true;
    all = all && waiting[t] == kBlock;
  }
  if (all && any) {
    for (unsigned t = 0; t < threads; ++t) waiting[t] = kRunnable;
    freed = true;
  }
  return freed;
}
}  // namespace host
#define __syncthreads() host::sync()
static inline unsigned __ballot_sync(unsigned, bool p) { return host::ballot(p); }
template <class T> static inline T __shfl_sync(unsigned, T v, int lane, int width = 32) {
  return host::shuffle(v, (threadIdx.x & ~static_cast<unsigned>(width - 1)) + (static_cast<unsigned>(lane) & (width - 1)));
}
template <class T> static inline T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
  const bool inside = (threadIdx.x & (width - 1)) + delta < static_cast<unsigned>(width);
  return host::shuffle(v, inside ? threadIdx.x + delta : threadIdx.x);
}
template <class T> static inline T __shfl_up_sync(unsigned, T v, unsigned delta, int width = 32) {
  const bool inside = (threadIdx.x & (width - 1)) >= delta;
  return host::shuffle(v, inside ? threadIdx.x - delta : threadIdx.x);
}
template <class T> static inline T __shfl_xor_sync(unsigned, T v, int mask, int width = 32) {
  const unsigned source = threadIdx.x ^ static_cast<unsigned>(mask);
  const unsigned base = threadIdx.x & ~static_cast<unsigned>(width - 1);
  return host::shuffle(v, source >= base && source < base + width ? source : threadIdx.x);
}
extern "C" int run_grid(void (*kernel)(const long long*), unsigned gx, unsigned gy, unsigned threads,
                        long long shared_bytes, const long long* slots) {
  const size_t stack_bytes = 64 * 1024;
  std::vector<unsigned char> shared(static_cast<size_t>(shared_bytes) + 16, 0xFF);
  std::vector<char> stacks(stack_bytes * threads);
  host::dynamic_shared = shared.data();
  host::fibers.assign(threads, ucontext_t{});
  host::finished.assign(threads, 0);
  host::predicates.assign(threads, 0);
  host::lanes.assign(threads, 0);
  host::waiting.assign(threads, host::kRunnable);
  host::entry = kernel;
  host::entry_slots = slots;
  std::vector<unsigned> order(threads);
  for (unsigned t = 0; t < threads; ++t) order[t] = t;
  unsigned long long lcg = 42;
  gridDim = {gx, gy, 1};
  blockDim = {threads, 1, 1};
  for (unsigned by = 0; by < gy; ++by) {
    for (unsigned bx = 0; bx < gx; ++bx) {
      blockIdx = {bx, by, 0};
      for (unsigned t = 0; t < threads; ++t) {
        getcontext(&host::fibers[t]);
        host::fibers[t].uc_stack.ss_sp = stacks.data() + stack_bytes * t;
        host::fibers[t].uc_stack.ss_size = stack_bytes;
        host::fibers[t].uc_link = &host::runner;
        makecontext(&host::fibers[t], host::fiber_main, 0);
        host::finished[t] = 0;
        host::waiting[t] = host::kRunnable;
      }
      for (;;) {
        for (unsigned i = threads; i > 1; --i) {  // a fresh thread order per round (LCG Fisher-Yates)
          lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
          std::swap(order[i - 1], order[(lcg >> 33) % i]);
        }
        bool live = false;
        for (const unsigned t : order) {
          if (host::finished[t] || host::waiting[t] != host::kRunnable) continue;
          threadIdx = {t, 0, 0};
          host::current = static_cast<int>(t);
          swapcontext(&host::runner, &host::fibers[t]);
        }
        for (unsigned t = 0; t < threads; ++t) live = live || !host::finished[t];
        if (!live) break;
        if (!host::release(threads)) return 1;  // threads wait at different barriers: a divergent sync
      }
    }
  }
  return 0;
}
"""

_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)', re.S)
_DYNAMIC_SHARED = re.compile(r"extern\s+__shared__\s+([\w ]+?)\s+(\w+)\s*\[\s*\]\s*;")
_FLOATS = {"float": ("float", "uint32_t"), "double": ("double", "uint64_t")}


def _trampoline(name: str, params: str) -> str:
    casts = []
    for i, param in enumerate(p.strip() for p in params.split(",") if p.strip()):
        kind = re.sub(r"\s*\b\w+$", "", param).replace("__restrict__", "").strip()  # drop the parameter name
        bare = kind.replace("const", "").strip()
        if "*" in kind:
            casts.append(f"reinterpret_cast<{kind}>(s[{i}])")
        elif bare in _FLOATS:
            value, bits = _FLOATS[bare]
            casts.append(f"[&] {{ {value} v; const {bits} b = static_cast<{bits}>(s[{i}]); "
                         f"std::memcpy(&v, &b, sizeof v); return v; }}()")
        else:
            casts.append(f"static_cast<{bare}>(s[{i}])")
    return f'extern "C" void host_{name}(const long long* s) {{ {name}({", ".join(casts)}); }}\n'


def host_source(path: Path) -> str:
    """The .cu file as host C++: dynamic shared memory rewritten, a trampoline per kernel appended (kernels are
    found after preprocessing, since some files declare theirs through macros)."""
    text = path.read_text()
    expanded = subprocess.run(["g++", "-E", "-P", "-x", "c++", str(path)], check=True, capture_output=True,
                              text=True).stdout
    body = _DYNAMIC_SHARED.sub(lambda m: f"{m[1]}* {m[2]} = reinterpret_cast<{m[1]}*>(host::dynamic_shared);", text)
    trampolines = "".join(_trampoline(name, params) for name, params in _KERNEL.findall(expanded))
    return f'#line 1 "{path}"\n{body}\n{trampolines}'


class HostModule:
    def __init__(self, library: ctypes.CDLL):
        self.library = library


class HostKernel:
    """Callable like a CuPy RawKernel: ``kernel(grid, block, args, shared_mem=0)``."""

    def __init__(self, module: HostModule, name: str):
        self.library = module.library
        self.name = name
        self.pointer = ctypes.cast(getattr(self.library, "host_" + name), ctypes.c_void_p).value

    def __call__(self, grid, block, args, shared_mem: int = 0, **_):
        gx, gy = (tuple(grid) + (1, 1))[:2]
        if tuple(block)[1:] not in ((), (1,), (1, 1)):
            raise ValueError(f"host emulation runs 1-D blocks only, got {block}")
        slots = [_slot(arg) for arg in args]
        packed = (ctypes.c_longlong * max(len(slots), 1))(*slots)
        status = self.library.run_grid(ctypes.c_void_p(self.pointer), ctypes.c_uint(gx), ctypes.c_uint(gy),
                                       ctypes.c_uint(block[0]), ctypes.c_longlong(shared_mem), packed)
        if status:
            raise RuntimeError(f"host-emulated kernel {self.name}: its threads wait at different barriers")


def _slot(arg) -> int:
    if isinstance(arg, torch.Tensor):
        if not arg.is_contiguous():
            raise ValueError("kernel arguments must be contiguous tensors")
        return arg.data_ptr()
    if isinstance(arg, np.floating):
        bits = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}[arg.dtype]
        return int(np.array(arg).view(bits))
    if isinstance(arg, (np.integer, np.bool_)):
        return int(arg)
    raise TypeError(f"kernel argument of type {type(arg).__name__}: pass a tensor or a NumPy scalar")


def compile_kernels(files: Iterable[str], folder: Path) -> Dict[str, HostModule]:
    """Compiles each named cuda/*.cu file into a host shared library (skips the test without g++ on Linux)."""
    if sys.platform != "linux" or shutil.which("g++") is None:
        pytest.skip("host emulation of the kernels needs g++ on Linux")
    (folder / "host_shim.h").write_text(HOST_SHIM)
    modules = {}
    for name in files:
        source, target = folder / (name + ".cpp"), folder / (name + ".so")
        source.write_text(host_source(_cuda.cuda_dir() / name))
        subprocess.run(["g++", "-std=c++17", "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-w", "-include",
                        str(folder / "host_shim.h"), str(source), "-o", str(target)], check=True)
        modules[name] = HostModule(ctypes.CDLL(str(target)))
    return modules


def route_to_host(monkeypatch, modules: Dict[str, HostModule]) -> None:
    """CPU tensors take the ops' CUDA branches; kernels come from ``modules`` and run on the host."""
    monkeypatch.setattr(_cuda, "is_cuda", lambda *tensors: True)
    monkeypatch.setattr(_cuda, "get_kernel", lambda file, name, *a, **k: HostKernel(modules[file], name))
    monkeypatch.setattr(_cuda, "to_cupy", lambda tensor: tensor)
    monkeypatch.setattr(_cuda, "torch_stream", lambda device: contextlib.nullcontext())


_COMPILED: Dict[tuple, Dict[str, HostModule]] = {}


def kernel_devices(kernel_files: Iterable[str]):
    """A ``device`` fixture: "cuda" (a real GPU and CuPy; skipped without) and "host" (the files compiled once per
    session with :func:`compile_kernels`, the ops routed to them with :func:`route_to_host`)."""
    files = tuple(kernel_files)

    @pytest.fixture(params=[pytest.param("cuda", marks=pytest.mark.cuda), "host"])
    def device(request, monkeypatch, tmp_path_factory):
        if request.param == "cuda":
            if not cuda_ready():
                pytest.skip("needs a CUDA device and CuPy")
            return "cuda"
        if files not in _COMPILED:
            _COMPILED[files] = compile_kernels(files, tmp_path_factory.mktemp("host_kernels"))
        route_to_host(monkeypatch, _COMPILED[files])
        return "host"

    return device


def _to(value, device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (list, tuple)):
        return type(value)(_to(v, device) for v in value)
    return value


def twin(op, device):
    """Run ``op`` with the CPU twin, then through the kernels on ``device``; return both. The CPU twin's result
    comes from the saved outputs (:mod:`twin_outputs`) where the compiled core cannot load: a GPU box without
    FFmpeg, for the twins that live in the core (camera fit, motion pooling, residual sums, patch resize)."""
    def run(*args, **kwargs):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_cuda, "is_cuda", lambda *tensors: tensors[0].device.type == "cuda")
            expected = twin_outputs.cpu_twin(op, args, kwargs)
        target = "cuda" if device == "cuda" else "cpu"
        got = op(*_to(list(args), target), **{k: _to(v, target) for k, v in kwargs.items()})
        return expected, got
    return run

