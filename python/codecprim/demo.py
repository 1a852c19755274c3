"""The main job on a sample it makes itself: ``python -m codecprim.demo [VIDEO] [--out PNG]``.

Without a video it generates a short moving clip with the ffmpeg CLI (H.264 with B-frames), then prints the GOP
table and motion-vector / residual statistics per frame type, and writes a picture of one P-frame: its luma,
its residual and its motion field.
"""

from __future__ import annotations

import argparse
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

import codecprim
from codecprim.reader import MV


def make_sample(folder: Path) -> Path:
    if shutil.which("ffmpeg") is None:
        raise SystemExit("the ffmpeg CLI is needed to generate the sample clip (apt-get install ffmpeg)")
    out = folder / "sample_h264.mp4"
    graph = (
        "mandelbrot=s=640x400:r=25,trim=duration=3,crop=480:272:x='20+40*t':y='10+12*t'[bg];"
        "testsrc2=s=96x96:r=25:d=3[obj];[bg][obj]overlay=x='40+90*t':y='60+40*sin(3*t)'"
    )
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-filter_complex", graph, "-t", "3", "-pix_fmt", "yuv420p",
         "-c:v", "libx264", "-bf", "2", "-g", "25", str(out)],
        check=True,
    )
    return out


def write_png(path: Path, rgb: np.ndarray) -> None:
    """A minimal PNG writer (8-bit RGB, no filtering), so the demo needs no imaging library."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[r].tobytes() for r in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6))
                     + chunk(b"IEND", b""))


def motion_picture(frame: codecprim.Frame) -> np.ndarray:
    """Each block coloured by its displacement: hue = direction, brightness = magnitude; intra blocks black."""
    h, w = frame.luma.shape
    img = np.zeros((h, w, 3), np.float32)
    mvs = frame.motion_vectors.numpy()
    past = mvs[mvs[:, MV.source] < 0]
    if len(past):
        dx = past[:, MV.motion_x] / past[:, MV.motion_scale]
        dy = past[:, MV.motion_y] / past[:, MV.motion_scale]
        mag = np.hypot(dx, dy)
        scale = max(float(np.percentile(mag, 99)), 1e-6)
        angle = np.arctan2(dy, dx)
        colours = np.stack([np.cos(angle), np.cos(angle - 2.094), np.cos(angle + 2.094)], 1) * 0.5 + 0.5
        colours *= np.clip(mag / scale, 0.15, 1.0)[:, None]
        for (src, bw, bh, _, _, cx, cy, *_), colour in zip(past, colours):
            img[max(cy - bh // 2, 0):cy + bh // 2, max(cx - bw // 2, 0):cx + bw // 2] = colour
    return (img * 255).astype(np.uint8)


def summarise(path: Path, out_png: Path) -> None:
    with codecprim.open(path) as reader:
        info = reader.info
        print(f"{path}: {info.codec} {info.width}x{info.height} @ {info.fps:.2f} fps, {len(reader)} frames, "
              f"vectors {info.motion_vectors}")
        print(f"residuals: {info.residual_method}")
        print("\nGOP  first  frames  pts_s   types")
        types = reader.pict_types
        for g in reader.gops:
            print(f"{g.index:>3}  {g.first_frame:>5}  {g.num_frames:>6}  {g.pts_seconds:6.3f}  "
                  f"{types[g.first_frame:g.first_frame + g.num_frames]}")
        stats = {}
        chosen = None
        for frame in reader:
            s = stats.setdefault(frame.pict_type, {"frames": 0, "vectors": 0, "mag": [], "res": [], "inter": 0.0})
            s["frames"] += 1
            mvs = frame.motion_vectors.numpy()
            s["vectors"] += len(mvs)
            if len(mvs):
                scale = mvs[:, MV.motion_scale]
                s["mag"].append(np.hypot(mvs[:, MV.motion_x] / scale, mvs[:, MV.motion_y] / scale).mean())
            if frame.residual is not None:
                s["res"].append(float(frame.residual.abs().float().mean()))
                s["inter"] += frame.inter_pixels / frame.luma.numel()
            if frame.pict_type == "P" and chosen is None and frame.index > 5:
                chosen = frame
        print("\ntype  frames  vectors/frame  mean |mv| px  mean |residual|  inter-coded")
        for kind in "IPB":
            if kind not in stats:
                continue
            s = stats[kind]
            n = s["frames"]
            mag = f"{np.mean(s['mag']):.2f}" if s["mag"] else "-"
            res = f"{np.mean(s['res']):.2f}" if s["res"] else "-"
            inter = f"{100 * s['inter'] / n:.1f}%" if s["res"] else "-"
            print(f"{kind:>4}  {n:>6}  {s['vectors'] / n:>13.1f}  {mag:>12}  {res:>15}  {inter:>11}")
        print(f"\ndamage: {reader.stats}")
    if chosen is None or chosen.residual is None:
        print("no P-frame with a residual to draw")
        return
    luma = chosen.luma.numpy()
    residual = np.clip(chosen.residual.numpy().astype(np.int32) * 4 + 128, 0, 255).astype(np.uint8)
    panel = np.concatenate(
        [np.repeat(luma[..., None], 3, 2), np.repeat(residual[..., None], 3, 2), motion_picture(chosen)], axis=1
    )
    write_png(out_png, panel)
    print(f"wrote {out_png}: frame {chosen.index} ({chosen.pict_type}) luma | residual (x4, grey = 0) | motion")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", nargs="?", help="a video file (default: generate a sample)")
    parser.add_argument("--out", default="codecprim_demo.png", help="where to write the picture")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.video) if args.video else make_sample(Path(tmp))
        try:
            summarise(path, Path(args.out))
        except codecprim.CodecprimError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
