"""The pixel kernels' instruction-set builds (AVX2, SSE2 and plain loops) give identical results on every codec
path: residuals (and the luma their pass writes) of whole clips, single blocks of every interpolation method
at every width, edges included, the SAD of every block size and the fused residual kernels.

Each level runs in its own process (CODECPRIM_SIMD chooses it once, at first use) and reports what it computed;
the plain-loop build is the reference the vector builds must equal bit for bit."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LEVELS = ("avx2", "sse2", "baseline")
# H.264 with B-frames and three references (the reference search), the single-reference QP-51 oracle, a cropped
# odd size; MPEG-4 Part 2 (native with B-frames, Xvid), MPEG-2 and H.263+ (half-pel, both rounding types).
CLIPS = ("h264_bframes", "h264_qp51_oracle", "h264_odd_size", "mpeg4_native_bframes", "mpeg4_xvid_gop2", "mpeg2",
         "h263p")

_RUN = r"""
import hashlib, json, sys
import numpy as np
import codecprim
from codecprim import _core

report = {"level": _core.simd_level(), "clips": {}, "blocks": {}}
for path in sys.argv[1:]:
    digest, inter, searches = hashlib.sha256(), 0, 0
    with codecprim.open(path) as reader:
        for frame in reader:
            if frame.residual is not None:  # its pass also writes the luma (stream_rows)
                digest.update(frame.residual.numpy().tobytes())
                digest.update(frame.luma.numpy().tobytes())
            inter += frame.inter_pixels
        searches = reader.stats.reference_searches
    report["clips"][path] = [digest.hexdigest(), inter, searches]

rng = np.random.default_rng(2024)
planes = [rng.integers(0, 256, (40, 44), dtype=np.uint8),
          # saturating samples exercise the clipping of the 6-tap half and centre samples
          np.where(np.indices((40, 44)).sum(0) % 3 == 0, 255, 0).astype(np.uint8)]
for method in ("h264", "halfpel", "halfpel_no_rounding", "bilinear_qpel"):
    digest = hashlib.sha256()
    for plane in planes:
        for w in (16, 8, 4, 12, 3):  # the compiled widths and the run-time-width path
            for h in (16, 8, 4, 5):
                for _ in range(12):
                    x, y = (int(v) for v in rng.integers(-24, 48, 2))  # windows inside and across every edge
                    mv_x, mv_y = (int(v) for v in rng.integers(-64, 64, 2))
                    digest.update(_core.predict(plane, x, y, mv_x, mv_y, w, h, method).tobytes())
    report["blocks"][method] = digest.hexdigest()
sads, expected = [], []
for w in (16, 8, 4, 12, 3):  # the unrolled sizes (16 or 8 wide; 16, 8 or 4 high) and the general loops
    for h in (16, 8, 4, 2, 5, 1):
        a, b = (rng.integers(0, 256, (h + 3, w + 5), dtype=np.uint8) for _ in range(2))
        sads.append(_core.block_sad(a, b, w, h))
        expected.append(int(np.abs(a[:h, :w].astype(np.int32) - b[:h, :w]).sum()))
report["blocks"]["sad"] = sads
# The fused residual kernels: 16x16 runs the vector code, other sizes the general loops; pred and the two
# directions are read with their own strides (the reference planes' and the prediction buffers').
fused, fused_numpy = [], []
for w, h in ((16, 16), (16, 8), (8, 8), (4, 4), (12, 5)):
    cur, a, b = (rng.integers(0, 256, (h + 2, w + 7 * k), dtype=np.uint8) for k in (1, 2, 3))
    residual, sad = _core.block_subtract_sad(cur, a, w, h)
    averaged = _core.block_average_subtract(cur, a, b, w, h)
    fused.append([residual.tolist(), sad, averaged.tolist()])
    c, p, q = (x[:h, :w].astype(np.int32) for x in (cur, a, b))
    fused_numpy.append([(c - p).tolist(), int(np.abs(c - p).sum()), (c - ((p + q + 1) >> 1)).tolist()])
report["blocks"]["fused"] = fused
report["fused_numpy"] = fused_numpy
report["sad_numpy"] = expected
print(json.dumps(report))
"""


def _run(level, paths):
    env = dict(os.environ, CODECPRIM_SIMD=level)
    done = subprocess.run([sys.executable, "-c", _RUN, *map(str, paths)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def reports(media):
    paths = [media[name] for name in CLIPS]
    return {level: _run(level, paths) for level in LEVELS}


def test_every_level_runs_what_it_was_asked_for(reports):
    assert reports["baseline"]["level"] == "baseline"
    for level in ("avx2", "sse2"):
        if reports[level]["level"] != level:
            pytest.skip(f"this CPU has no {level}")


@pytest.mark.parametrize("level", ["avx2", "sse2"])
def test_residuals_identical_to_plain_loops_on_every_codec(reports, level):
    if reports[level]["level"] != level:
        pytest.skip(f"this CPU has no {level}")
    reference = reports["baseline"]["clips"]
    got = reports[level]["clips"]
    for path, (digest, inter, searches) in reference.items():
        assert inter > 0, f"{Path(path).name}: no inter pixels, the clip tests nothing"
        assert got[path] == [digest, inter, searches], f"{level} differs from plain loops on {Path(path).name}"
    # The multi-reference clip exercises the reference search, not only single-candidate prediction.
    assert any(searches > 0 for _, _, searches in reference.values())


@pytest.mark.parametrize("level", ["avx2", "sse2"])
def test_blocks_identical_to_plain_loops_for_every_method(reports, level):
    if reports[level]["level"] != level:
        pytest.skip(f"this CPU has no {level}")
    assert reports[level]["blocks"] == reports["baseline"]["blocks"]


@pytest.mark.parametrize("level", LEVELS)
def test_sad_equals_numpy_on_every_block_size(reports, level):
    assert reports[level]["blocks"]["sad"] == reports[level]["sad_numpy"]


@pytest.mark.parametrize("level", LEVELS)
def test_fused_residual_kernels_equal_numpy(reports, level):
    assert reports[level]["blocks"]["fused"] == reports[level]["fused_numpy"]


def test_unknown_level_falls_back_to_the_best_supported():
    best = _run("", [])["level"]
    assert _run("no-such-level", [])["level"] == best
