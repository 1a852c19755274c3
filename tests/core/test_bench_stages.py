"""The C++ per-stage microbenchmark builds with plain CMake (as the README says) and runs, so it cannot rot
unseen: pip installs do not build it."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
def test_bench_stages_builds_and_reports_every_stage(media, tmp_path):
    build = tmp_path / "build"
    configure = subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"],
                               capture_output=True, text=True, timeout=300)
    assert configure.returncode == 0, configure.stdout[-2000:] + configure.stderr[-2000:]
    made = subprocess.run(["cmake", "--build", str(build), "--target", "bench_stages", "-j2"],
                          capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]

    run = subprocess.run([str(build / "bench_stages"), str(media["h264_bframes"]), "1"], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    for stage in ("demux", "decode (bare libavcodec)", "decode + export_mvs", "decode + export_mvs, no deblock",
                  "decode + export_mvs + outputs", "reader mv-only", "reader full", "of which copies", "of which residuals"):
        assert re.search(rf"^\s*{re.escape(stage)}\s+\d+\.\d+", run.stdout, re.M), (stage, run.stdout)
    # Wall and CPU ratios: bare decoding is the baseline of both.
    assert re.search(r"^decode \(bare libavcodec\)\s+\S+\s+\S+\s+1\.00\s+\S+\s+1\.00$", run.stdout, re.M), run.stdout

    for stage in ("full", "outputs"):
        one = subprocess.run([str(build / "bench_stages"), str(media["h264_bframes"]), "1", stage],
                             capture_output=True, text=True, timeout=300)
        # The full stage also gives the residual pass's own time per frame (for A/B runs of the pass).
        pass_line = r"residual pass: \d+\.\d+ ms/frame\n" if stage == "full" else ""
        assert one.returncode == 0 and re.fullmatch(rf"{pass_line}{stage}: \d+\.\d+ s wall, \d+\.\d+ s CPU\n",
                                                    one.stdout), one.stdout
    unknown = subprocess.run([str(build / "bench_stages"), str(media["h264_bframes"]), "1", "nonsense"],
                             capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "unknown stage" in unknown.stderr

    missing = subprocess.run([str(build / "bench_stages"), str(tmp_path / "missing.mp4")], capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode == 1 and "missing.mp4" in missing.stderr
    usage = subprocess.run([str(build / "bench_stages")], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "usage" in usage.stderr
