"""Applies every mutation of tests/mutations.py and checks that the tests tests/MUTATIONS.md names catch it.

    python3 tests/run_mutations.py [name ...]

Each row runs pytest once with CODECPRIM_MUTATION set (a few seconds to a minute each); the table says whether
the tests failed, as they must. Exit status 1 if any mutation survived.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# mutation -> the tests that must fail under it (pytest node ids or files with -k)
CATCHERS = {
    "h264_zero_residual": ["tests/core/test_residuals.py", "-k", "normal_qp or standard_on_real"],
    "residual_plus_one": ["tests/core/test_residuals.py", "-k", "bit_exact and mpeg2_gop2"],
    "swapped_vector_columns": ["tests/core/test_motion_vectors.py", "-k", "export and h264_no_bframes"],
    "transposed_saliency": ["tests/ops/test_codec_patches.py", "-k", "rows_and_columns"],
    "mirrored_saliency": ["tests/ops/test_codec_patches.py", "-k", "rows_and_columns or moving_object"],
    "no_camera_compensation": ["tests/ops/test_codec_patches.py", "-k", "camera_pan"],
    "gop_always_iframe": ["tests/core/test_gop.py", "-k", "gop_zero"],
    "pyav_other_libavcodec": ["tests/core/test_motion_vectors.py", "-k", "export_on_real"],
    "delta_zero_primitives": ["tests/models/test_delta_evidence.py", "-k", "blinded_encoder or retrieve"],
    "delta_other_primitives": ["tests/models/test_delta_evidence.py", "-k", "blinded_encoder or retrieve"],
    "codec_vit_weights_reset": ["tests/models/test_probe_task.py", "-k", "far_above_the_untrained"],
    "kernel_residual_square": ["tests/ops/test_cuda_twins_select.py", "-k", "host and residual"],
    "kernel_sort_without_barrier": ["tests/ops/test_cuda_twins_select.py", "-k", "host and combine"],
    "kernel_topk_without_barrier": ["tests/ops/test_cuda_twins_select.py", "-k", "host and topk"],
    "kernel_topk_ballot_count": ["tests/ops/test_cuda_twins_select.py", "-k", "host and topk"],
    "kernel_me_without_barrier": ["tests/ops/test_cuda_twins_me.py", "-k", "host and kernel_equals"],
    "kernel_me_half_warp_sum": ["tests/ops/test_cuda_twins_me.py", "-k", "host and kernel_equals"],
}


def run(name: str) -> tuple[bool, float, str]:
    env = dict(os.environ, CODECPRIM_MUTATION=name,
               PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "mutations",
                           *CATCHERS[name]], cwd=ROOT, env=env, capture_output=True, text=True)
    last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    return done.returncode not in (0, 5), time.perf_counter() - start, last


def main(names) -> int:
    survived = 0
    print(f"| mutation | caught | seconds | pytest summary |\n|---|---|---|---|")
    for name in names or CATCHERS:
        caught, seconds, last = run(name)
        survived += not caught
        print(f"| {name} | {'yes' if caught else '**NO**'} | {seconds:.0f} | {last} |", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
