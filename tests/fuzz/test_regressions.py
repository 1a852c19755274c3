"""Every input in tests/fuzz/regressions/ is read through the Python reader the way the libFuzzer harness
(csrc/fuzz/fuzz_reader.cpp, scripts/fuzz.sh) drives the core: a full decode with residuals and chroma, the
motion-vector-only path, and the index with seeks (read_gop of the last GOP, frames_at of the middle frame).
The only allowed outcome besides frames is a codecprim error whose message starts with the path.

The files are fuzzer inputs kept small: crashes found (and fixed) and inputs that reach the core's damaged-input
paths. Reading happens in a child process, so a crash or a hang fails the test with the file named instead of
taking pytest down.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REGRESSIONS = Path(__file__).resolve().parent / "regressions"
_TIMEOUT_S = 120  # for all files; a clean read of one takes ~50 ms

_READER = r"""
import json, sys
import codecprim

def read(path, **kw):
    with codecprim.open(path, **kw) as reader:
        n = 0
        for frame in reader:
            for t in (frame.motion_vectors, frame.luma, frame.residual, frame.chroma):
                if t is not None:
                    int(t.sum())  # touches every element
            n += 1
        if kw.get("residuals", True) and reader.gops:
            reader.read_gop(-1)
            reader.frames_at([len(reader) // 2])
        return n

for path in sys.argv[1:]:
    print(f"start {path}", flush=True)
    results = []
    for kw in ({"residuals": True, "chroma": True}, {"residuals": False}):
        try:
            results.append({"frames": read(path, **kw)})
        except codecprim.CodecprimError as exc:
            results.append({"error": type(exc).__name__, "named": str(exc).startswith(path)})
        except Exception as exc:
            results.append({"unexpected": f"{type(exc).__name__}: {exc}"})
    print(json.dumps({"path": path, "results": results}), flush=True)
"""


def _inputs():
    return sorted(p for p in REGRESSIONS.iterdir() if p.is_file() and p.name != "README.md")


def test_there_are_regression_inputs():
    assert len(_inputs()) >= 1, f"{REGRESSIONS} holds no fuzzer inputs"


def test_regression_inputs_read_cleanly():
    paths = [str(p) for p in _inputs()]
    try:
        done = subprocess.run([sys.executable, "-c", _READER, *paths], capture_output=True, text=True,
                              timeout=_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        started = [l for l in (exc.stdout or b"").decode(errors="replace").splitlines() if l.startswith("start ")]
        pytest.fail(f"reading hung on {started[-1][6:] if started else 'the first input'}")
    lines = done.stdout.splitlines()
    if done.returncode != 0:
        started = [l for l in lines if l.startswith("start ")]
        pytest.fail(f"the reader died (exit status {done.returncode}) on {started[-1][6:] if started else '?'}: "
                    f"{done.stderr[-2000:]}")
    reports = [json.loads(l) for l in lines if l.startswith("{")]
    assert [r["path"] for r in reports] == paths
    for report in reports:
        for result in report["results"]:
            assert "unexpected" not in result, (report["path"], result["unexpected"])
            if "error" in result:
                assert result["named"], f"{report['path']}: the error message does not start with the path"
            else:
                assert result["frames"] >= 0
