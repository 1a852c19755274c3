"""What README command 1 runs (``codecprim demo``, or ``python -m codecprim.demo``).

It makes a clip in process (frames drawn with numpy, written as YUV4MPEG, encoded by :func:`codecprim.transcode`
with the ``onevision-h264`` and ``cope`` recipes; no ffmpeg program), prints the GOP table and the token budgets
of both recipes against dense 64-frame sampling, and writes the pictures of :func:`codecprim.pictures.show`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from .reader import open as open_video
from .token_budget import cope_budget_from_frame_types, onevision_budget
from .transcode import transcode

__all__ = ["budget_table", "gop_table", "make_clip", "run"]


def make_clip(folder: str | os.PathLike, *, seconds: float = 3.0, fps: int = 25, width: int = 320,
              height: int = 240) -> Path:
    """A moving test clip drawn in process: a textured background panning under a bright square that moves on
    its own. Returned as ``clip.y4m`` (raw 4:2:0 frames, any libavformat reads it)."""
    rng = np.random.default_rng(0)
    big = np.zeros((height + 200, width + 300), np.float32)
    yy, xx = np.mgrid[0:big.shape[0], 0:big.shape[1]]
    for _ in range(12):  # smooth texture: random plane waves, so block matching has something to follow
        fx, fy, phase = rng.uniform(0.01, 0.12, 2).tolist() + [rng.uniform(0, 6.28)]
        big += np.sin(fx * xx + fy * yy + phase)
    big = (big - big.min()) / (big.max() - big.min()) * 180 + 30
    out = Path(folder) / "clip.y4m"
    with open(out, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(int(seconds * fps)):
            t = i / fps
            x0, y0 = int(10 + 60 * t), int(5 + 20 * t)  # the camera pans
            luma = big[y0:y0 + height, x0:x0 + width].copy()
            bx, by = int(30 + 70 * t), int(height / 2 + 50 * np.sin(2.5 * t))  # the object moves on its own
            luma[max(by - 24, 0):by + 24, max(bx - 24, 0):bx + 24] = 235
            cb = np.full((height // 2, width // 2), 110, np.uint8)
            cr = np.clip(luma[::2, ::2] * 0.4 + 80, 0, 255).astype(np.uint8)
            f.write(b"FRAME\n" + luma.astype(np.uint8).tobytes() + cb.tobytes() + cr.tobytes())
    return out


def gop_table(path: str | os.PathLike) -> str:
    """Stream info and the GOP table of a video, as text."""
    with open_video(path, residuals=False) as reader:
        info, gops, types, sizes = reader.info, reader.gops, reader.pict_types, reader.packet_sizes
        lines = [f"{path}: {info.codec} {info.width}x{info.height} @ {info.fps:.2f} fps, {len(reader)} frames, "
                 f"{info.container}, vectors {info.motion_vectors}"
                 + (f", display rotation {info.rotation} deg clockwise" if info.rotation else ""),
                 "  GOP  first  frames  pts_s    kB  types"]
        for g in gops:
            span = slice(g.first_frame, g.first_frame + g.num_frames)
            shown = types[span] if g.num_frames <= 48 else types[span][:45] + "..."
            lines.append(f"  {g.index:>3}  {g.first_frame:>5}  {g.num_frames:>6}  {g.pts_seconds:6.2f}  "
                         f"{int(sizes[span].sum()) / 1000:5.1f}  {shown}")
    return "\n".join(lines)


def budget_table(onevision_clip: str | os.PathLike, cope_clip: str | os.PathLike) -> str:
    """Tokens of each recipe's clip against dense sampling of 64 frames."""
    rows = []
    with open_video(onevision_clip, residuals=False) as reader:
        types = reader.pict_types
        rows.append(("onevision (I + K P-patches)", len(types), types.count("I"),
                     onevision_budget(len(types), types.count("I"))))
    with open_video(cope_clip, residuals=False) as reader:
        types = reader.pict_types
        rows.append(("cope (I-frames + delta tokens)", len(types), types.count("I"), cope_budget_from_frame_types(types)))
    lines = ["  recipe                          frames  I-frames  codec tokens  dense-64 tokens  ratio"]
    for name, n, n_i, b in rows:
        lines.append(f"  {name:<30}  {n:>6}  {n_i:>8}  {b.codec_tokens:>12}  {b.dense_tokens:>15}  {b.ratio:5.2f}")
    return "\n".join(lines)


def run(out_dir: str | os.PathLike = "codecprim_demo", *, video: str | None = None) -> list[Path]:
    """The demo: clip (made, or ``video``), GOP table, budgets, pictures in ``out_dir``; returns the pictures."""
    from .pictures import show

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = Path(video) if video else make_clip(out)
    onevision = transcode(source, out / "clip_onevision_h264.mp4", recipe="onevision-h264").path
    cope = transcode(source, out / "clip_cope.avi", recipe="cope").path
    if not video:
        source.unlink()  # the raw frames are large; the encodes keep the clip
    print(gop_table(onevision))
    print("\n" + gop_table(cope))
    print("\ntoken budgets against dense sampling of 64 frames:")
    print(budget_table(onevision, cope))
    pictures = show(onevision, out)
    print(f"\nwrote {len(pictures)} pictures to {out}/: " + ", ".join(p.name for p in pictures))
    return pictures


if __name__ == "__main__":
    from .cli import main

    sys.exit(main(["demo", *sys.argv[1:]]))
