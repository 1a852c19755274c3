"""Loader soak: a DataLoader with 2 persistent workers reads a few hundred generated videos, 10 % of them damaged
(truncated, bit-flipped, an image with a video's extension, zero-length, audio-only), for several epochs.

It checks, and prints as a table with the command that made it:
- no worker dies or hangs (a batch that takes longer than --timeout is a hang);
- every damaged file is reported the same way each epoch (the same Failure, or the same clip);
- samples from good files are identical across epochs (persistent workers keep the epoch they started
  with, so every epoch draws the same seeds);
- the RSS of each worker is flat across epochs (the growth from the end of epoch 1 to the end of the last).

Use: python bench/loader_soak.py [--videos 300] [--epochs 8] [--workdir DIR]
Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch.utils.data import DataLoader, get_worker_info

import codecprim
from codecprim.data import CodecClipDataset, Failure

# name: (extension, encoder arguments); each good video is one of these, 160x120, 1 s, its own test pattern.
_GOOD = {
    "h264_mp4": ("mp4", ["-c:v", "libx264", "-bf", "2", "-g", "12"]),
    "h264_mkv": ("mkv", ["-c:v", "libx264", "-bf", "0", "-g", "8"]),
    # No B-frames in AVI: the container then stores no pts for them, reader.pts_seconds has NaN there, and
    # codec_patches' frame planner (data/sampling.plan_frames) finds no frame to sample (reported to the lead).
    "mpeg4_avi": ("avi", ["-c:v", "mpeg4", "-bf", "0", "-g", "12", "-q:v", "5"]),
    "mpeg4_mp4": ("mp4", ["-c:v", "mpeg4", "-bf", "2", "-g", "12", "-q:v", "5"]),
    "mpeg2_mpg": ("mpg", ["-c:v", "mpeg2video", "-bf", "2", "-g", "12", "-q:v", "5"]),
    "h263p_avi": ("avi", ["-c:v", "h263p", "-g", "12", "-q:v", "5"]),
}
_PATTERNS = ["testsrc2", "smptebars", "rgbtestsrc", "mandelbrot", "life"]
_DAMAGE = ["truncated", "bit_flipped", "wrong_extension", "zero_length", "audio_only"]


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-threads", "1", *args], check=True, capture_output=True)


def _good(directory: Path, i: int) -> Path:
    name = list(_GOOD)[i % len(_GOOD)]
    ext, enc = _GOOD[name]
    out = directory / f"good_{i:03d}_{name}.{ext}"
    if not out.exists():
        pattern = _PATTERNS[(i // len(_GOOD)) % len(_PATTERNS)]
        size = "s=160x120" if pattern != "life" else "s=160x120:mold=10"
        # A different start time per video, so no two good files hold the same pictures.
        source = f"{pattern}={size}:r=25,trim=start_frame={i % 50},setpts=PTS-STARTPTS,format=yuv420p"
        _ffmpeg("-f", "lavfi", "-i", source, "-t", "1", *enc, str(out))
    return out


def _damaged(directory: Path, i: int, kind: str, rng: random.Random) -> Path:
    out = directory / f"damaged_{i:03d}_{kind}.mp4"
    if out.exists():
        return out
    if kind in ("truncated", "bit_flipped"):
        whole = directory / f"whole_{i:03d}.mp4"
        _ffmpeg("-f", "lavfi", "-i", f"testsrc2=s=160x120:r=25,trim=start_frame={i},setpts=PTS-STARTPTS",
                "-t", "1", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-movflags", "+faststart", str(whole))
        data = bytearray(whole.read_bytes())
        whole.unlink()
        if kind == "truncated":
            data = data[: int(len(data) * rng.uniform(0.2, 0.8))]
        else:
            for _ in range(64):  # in the payload, past the index at the front
                at = rng.randrange(len(data) // 4, len(data))
                data[at] ^= 1 << rng.randrange(8)
        out.write_bytes(bytes(data))
    elif kind == "wrong_extension":
        _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120", "-frames:v", "1", "-f", "image2", "-c:v", "png", str(out))
    elif kind == "zero_length":
        out.write_bytes(b"")
    else:
        _ffmpeg("-f", "lavfi", "-i", f"sine=frequency={200 + i}:duration=1", "-c:a", "aac", str(out))
    return out


def make_videos(directory: Path, count: int, seed: int = 0) -> list[Path]:
    """`count` videos, every tenth damaged (the kinds in turn), shuffled with `seed`."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    jobs = []
    for i in range(count):
        if i % 10 == 9:
            kind = _DAMAGE[(i // 10) % len(_DAMAGE)]
            jobs.append(lambda i=i, kind=kind, r=random.Random(seed * 1000 + i): _damaged(directory, i, kind, r))
        else:
            jobs.append(lambda i=i: _good(directory, i))
    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(lambda job: job(), jobs))
    rng.shuffle(paths)
    return paths


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _digest(clip) -> str:
    h = hashlib.sha1()
    for name in ("pixels", "positions", "visible_indices", "tier", "saliency", "frame_indices", "pts_seconds"):
        h.update(name.encode())
        h.update(getattr(clip, name).contiguous().cpu().numpy().tobytes())
    h.update(repr((clip.grid, clip.pict_types, clip.motion_source, clip.truncated)).encode())
    return h.hexdigest()


def summarise(items):
    """collate_fn: in the worker, each item becomes (path, outcome) and the batch carries the worker's RSS."""
    outcomes = []
    for item in items:
        if isinstance(item, Failure):
            outcomes.append((item.path, f"failure {item.error_type}: {item.cause}"))
        else:
            outcomes.append((item.path, f"clip {_digest(item)}"))
    info = get_worker_info()
    return {"worker": info.id if info is not None else -1, "rss_mib": _rss_mib(), "outcomes": outcomes}


def soak(paths: list[Path], epochs: int, workers: int, timeout: float, seed: int):
    dataset = CodecClipDataset([str(p) for p in paths], num_frames=8, size=112, budget=64, seed=seed)
    loader = DataLoader(dataset, batch_size=4, shuffle=True, num_workers=workers, persistent_workers=True,
                        collate_fn=summarise, timeout=timeout, generator=torch.Generator().manual_seed(seed))
    rows, outcomes_by_epoch, problems = [], [], []
    for epoch in range(epochs):
        start = time.perf_counter()
        outcomes, rss, hangs, deaths = {}, {}, 0, 0
        try:
            for batch in loader:
                outcomes.update(batch["outcomes"])
                rss[batch["worker"]] = batch["rss_mib"]  # the last batch of the epoch wins
        except RuntimeError as exc:  # DataLoader's own words for a timeout or a dead worker
            if "timed out" in str(exc):
                hangs += 1
            elif "exited unexpectedly" in str(exc):
                deaths += 1
            problems.append(f"epoch {epoch + 1}: {type(exc).__name__}: {exc}")
        except Exception as exc:  # anything but a Failure item escaping a worker is a finding too
            problems.append(f"epoch {epoch + 1}: {type(exc).__name__}: {exc}")
        failures = sum(1 for o in outcomes.values() if o.startswith("failure"))
        rows.append((epoch + 1, len(outcomes), failures, hangs, deaths, dict(sorted(rss.items())),
                     time.perf_counter() - start))
        outcomes_by_epoch.append(outcomes)
    return rows, outcomes_by_epoch, problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one batch may take (a hang)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-growth-mib", type=float, default=32.0,
                        help="RSS growth of a worker after epoch 1 that counts as not flat")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/codecprim_loader_soak"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    codecprim.set_ffmpeg_log_level("quiet")  # damaged files make FFmpeg talk; forked workers inherit the level

    t0 = time.perf_counter()
    paths = make_videos(args.workdir, args.videos, args.seed)
    damaged = {str(p) for p in paths if Path(p).name.startswith("damaged_")}
    print(f"{len(paths)} videos ({len(damaged)} damaged) in {args.workdir}, made in {time.perf_counter() - t0:.0f} s")

    rows, by_epoch, problems = soak(paths, args.epochs, args.workers, args.timeout, args.seed)

    worker_ids = sorted({w for row in rows for w in row[5]})
    header = f"{'epoch':>5} {'files':>5} {'failures':>8} {'hangs':>5} {'deaths':>6} " + " ".join(
        f"{f'rss w{w} MiB':>11}" for w in worker_ids) + f" {'seconds':>7}"
    print(header)
    for epoch, files, failures, hangs, deaths, rss, seconds in rows:
        cells = " ".join(f"{rss.get(w, float('nan')):>11.1f}" for w in worker_ids)
        print(f"{epoch:>5} {files:>5} {failures:>8} {hangs:>5} {deaths:>6} {cells} {seconds:>7.1f}")

    ok = not problems
    for p in problems:
        print("PROBLEM:", p)
    if any(len(o) != len(paths) for o in by_epoch):
        ok = False
        print("PROBLEM: an epoch did not return every file")
    first = by_epoch[0]
    changed = sorted(p for o in by_epoch[1:] for p in o if o[p] != first.get(p))
    damaged_changed = [p for p in changed if p in damaged]
    good_changed = [p for p in changed if p not in damaged]
    failed_good = sorted(p for p, o in first.items() if p not in damaged and o.startswith("failure"))
    reported = sorted(p for p in damaged if first.get(p, "").startswith("failure"))
    print(f"damaged files reported as failures: {len(reported)} of {len(damaged)}; reported differently in a later "
          f"epoch: {len(set(damaged_changed))}")
    for p in sorted(damaged - set(reported)):
        print(f"  read despite damage (same clip every epoch: {p not in damaged_changed}): {Path(p).name}")
    print(f"good files whose sample changed between epochs: {len(set(good_changed))}; good files that failed: "
          f"{len(failed_good)}")
    growth = {w: rows[-1][5].get(w, float("nan")) - rows[0][5].get(w, float("nan")) for w in worker_ids}
    print("worker RSS growth, end of epoch 1 -> end of epoch {}: {}".format(
        len(rows), ", ".join(f"w{w} {g:+.1f} MiB" for w, g in growth.items())))
    hangs = sum(r[3] for r in rows)
    print(f"hangs = {hangs}, worker deaths = {sum(r[4] for r in rows)}")
    flat = all(g <= args.max_growth_mib for g in growth.values())
    ok = ok and not damaged_changed and not good_changed and not failed_good and hangs == 0 and flat
    print("command:", "python bench/loader_soak.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    print("result:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
