"""The outputs of the CPU twins that need the compiled core (camera fit, motion pooling, residual sums, patch
resize run in C++), for every :func:`host_cuda.twin` call of the suite, saved in
``tests/fixtures/cpu_twin_outputs.pt``: a GPU box without FFmpeg has no core, and compares its kernels with them.
Keyed by the op and a digest of its arguments. Twins in plain torch run live everywhere.

Where the core loads (CPU CI), each live result of a core-backed twin is compared with the saved one: integers
exactly, floats within 1e-5 (CPUs may round reductions differently), so a saved file that no longer matches the
code fails the suite. Record after changing such an op or adding a twin call:

    CODECPRIM_RECORD_TWINS=1 python3 -m pytest -q tests/ops -k twins
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
import sys
from pathlib import Path

import pytest
import torch

PATH = Path(__file__).resolve().parent / "fixtures" / "cpu_twin_outputs.pt"
_cache: dict | None = None


def _digest(value, h) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, (list, tuple)):
        h.update(f"L{len(value)}".encode())
        for v in value:
            _digest(v, h)
    elif isinstance(value, dict):
        for k in sorted(value):
            h.update(repr(k).encode())
            _digest(value[k], h)
    else:
        h.update(repr(value).encode())


def key(op, args, kwargs) -> str:
    h = hashlib.sha256()
    _digest(list(args), h)
    _digest(dict(kwargs), h)
    return f"{op.__module__}.{op.__qualname__}:{h.hexdigest()[:24]}"


def _pack(value):
    """Tensors, containers and dataclasses as plain data that ``torch.load(weights_only=True)`` reads."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__dataclass__": f"{type(value).__module__}:{type(value).__qualname__}",
                "fields": {f.name: _pack(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, tuple):
        return {"__tuple__": [_pack(v) for v in value]}
    if isinstance(value, list):
        return [_pack(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save a twin output of type {type(value).__name__}")


def _unpack(value):
    if isinstance(value, dict) and "__dataclass__" in value:
        module, name = value["__dataclass__"].split(":")
        cls = getattr(importlib.import_module(module), name)
        return cls(**{k: _unpack(v) for k, v in value["fields"].items()})
    if isinstance(value, dict) and "__tuple__" in value:
        return tuple(_unpack(v) for v in value["__tuple__"])
    if isinstance(value, list):
        return [_unpack(v) for v in value]
    return value


def _load() -> dict:
    global _cache
    if _cache is None:
        _cache = torch.load(PATH, weights_only=True) if PATH.exists() else {}
    return _cache


def _same(saved, live, where: str) -> None:
    if isinstance(live, torch.Tensor):
        assert isinstance(saved, torch.Tensor) and saved.shape == live.shape and saved.dtype == live.dtype, where
        if live.is_floating_point():
            torch.testing.assert_close(live, saved, rtol=1e-5, atol=1e-5, equal_nan=True, msg=where)
        else:
            assert torch.equal(live, saved), where
    elif isinstance(live, (list, tuple)):
        assert isinstance(saved, (list, tuple)) and len(saved) == len(live), where
        for i, (a, b) in enumerate(zip(saved, live)):
            _same(a, b, f"{where}[{i}]")
    elif dataclasses.is_dataclass(live):
        for f in dataclasses.fields(live):
            _same(getattr(saved, f.name), getattr(live, f.name), f"{where}.{f.name}")
    else:
        assert saved == live, where


def _without_core(op, args, kwargs) -> bool:
    """Whether ``op`` runs here with the core made unloadable (False: it needs the core)."""
    import codecprim

    with pytest.MonkeyPatch.context() as patch:  # as on a machine where the extension cannot load
        patch.delattr(codecprim, "_core", raising=False)
        patch.setitem(sys.modules, "codecprim._core", None)
        try:
            op(*args, **kwargs)
        except ImportError:
            return False
    return True


def cpu_twin(op, args, kwargs):
    """The CPU twin's result: computed, and checked against (or recorded into) the saved outputs when it needs
    the core; read from them where the core cannot load."""
    k = key(op, args, kwargs)
    try:
        live = op(*args, **kwargs)
    except ImportError:  # no compiled core on this machine
        outputs = _load()
        if k not in outputs:
            pytest.fail(f"no saved CPU twin output for {k}, and no compiled core to compute it")
        return _unpack(outputs[k])
    if _without_core(op, args, kwargs):
        return live
    outputs = _load()
    if os.environ.get("CODECPRIM_RECORD_TWINS"):
        outputs[k] = _pack(live)
        PATH.parent.mkdir(parents=True, exist_ok=True)
        torch.save(outputs, PATH)
    elif k not in outputs:
        pytest.fail(f"no saved CPU twin output for {k}; record them (see tests/twin_outputs.py)")
    else:
        _same(_unpack(outputs[k]), live, k)
    return live
