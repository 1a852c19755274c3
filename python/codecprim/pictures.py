"""Pictures of a video's codec primitives that a person can read (``codecprim show``, ``codecprim demo``).

Every PNG has a title naming the file and the frame (index, type, pts), the picture, and a colour legend:

* ``mv_<f>.png``: motion vectors as arrows over the dimmed luma, from where the content was in the reference
  to where it is now, coloured by direction (legend: a colour wheel);
* ``residual_<f>.png``: the residual (luma minus its motion-compensated prediction) as a signed heat-map;
* ``saliency_<f>.png``: the fused saliency of :func:`codecprim.codec_patches` per patch;
* ``selected_<f>.png``: the selected patches outlined on the RGB frame, coloured by tier;
* ``gop.png``: the GOP strip: one bar per frame, its packet size, coloured by frame type.

Drawn with Pillow (the ``cli`` extra); importing this module without it raises a RuntimeError saying so.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from .ops.gather import frames_to_rgb
from .ops.patchify import patch_grid
from .patches import codec_patches
from .reader import MV
from .reader import open as open_video

__all__ = ["gop_strip", "show"]

_TYPE_COLOURS = {"I": (220, 50, 47), "P": (38, 139, 210), "B": (133, 153, 0)}
_TIER_COLOURS = {2: (0, 200, 0), 1: (255, 215, 0), 0: (0, 200, 255)}
_TIER_NAMES = {2: "whole frame (I / anchor)", 1: "salient", 0: "stratified fallback"}
_MIN_SIDE = 360  # small frames are enlarged so arrows and text stay readable


def _pil():
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as err:
        raise RuntimeError("codecprim's pictures need Pillow: pip install 'codecprim[cli]' (or pillow)") from err
    return Image, ImageDraw, ImageFont


def _font(size: int = 14):
    _, _, ImageFont = _pil()
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _page(body, title: str, subtitle: str, legend):
    """Title band, body, legend band stacked into one RGB image."""
    Image, ImageDraw, _ = _pil()
    width = max(body.width, legend.width, 480)
    page = Image.new("RGB", (width, 52 + body.height + legend.height + 8), (255, 255, 255))
    draw = ImageDraw.Draw(page)
    draw.text((8, 6), title, fill=(0, 0, 0), font=_font(16))
    draw.text((8, 28), subtitle, fill=(70, 70, 70), font=_font(13))
    page.paste(body, (0, 52))
    page.paste(legend, (0, 52 + body.height + 4))
    return page


def _enlarge(image):
    scale = max(1, math.ceil(_MIN_SIDE / min(image.size)))
    Image, _, _ = _pil()
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST), scale


def _direction_colour(angle: float) -> tuple[int, int, int]:
    """Hue wheel: right red, down yellow-green, left cyan, up violet."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((angle / (2 * math.pi)) % 1.0, 1.0, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def _wheel_legend(width: int):
    Image, ImageDraw, _ = _pil()
    legend = Image.new("RGB", (width, 70), (255, 255, 255))
    draw = ImageDraw.Draw(legend)
    cx, cy, radius = 40, 35, 28
    for degree in range(0, 360, 3):
        a = math.radians(degree)
        draw.line([(cx, cy), (cx + radius * math.cos(a), cy + radius * math.sin(a))], fill=_direction_colour(a), width=3)
    draw.text((84, 14), "arrow colour = direction the content moved (wheel: right, down, left, up)", fill=(0, 0, 0),
              font=_font(13))
    draw.text((84, 36), "arrow: from the block's place in the reference to its place in this frame", fill=(0, 0, 0),
              font=_font(13))
    return legend


def _bar_legend(width: int, colours: np.ndarray, low: str, mid: str, high: str, label: str):
    Image, ImageDraw, _ = _pil()
    legend = Image.new("RGB", (width, 60), (255, 255, 255))
    bar = Image.fromarray(np.repeat(colours[None], 16, axis=0)).resize((256, 16))
    legend.paste(bar, (10, 8))
    draw = ImageDraw.Draw(legend)
    draw.text((10, 28), low, fill=(0, 0, 0), font=_font(12))
    draw.text((130, 28), mid, fill=(0, 0, 0), font=_font(12))
    draw.text((236, 28), high, fill=(0, 0, 0), font=_font(12))
    draw.text((280, 8), label, fill=(0, 0, 0), font=_font(13))
    return legend


def _signed_colours(values: np.ndarray) -> np.ndarray:
    """-1 blue, 0 white, +1 red."""
    v = np.clip(values, -1.0, 1.0)[..., None]
    white = np.array([255.0, 255.0, 255.0])
    red, blue = np.array([200.0, 30.0, 30.0]), np.array([30.0, 60.0, 200.0])
    return np.where(v >= 0, white + (red - white) * v, white + (blue - white) * -v).astype(np.uint8)


def _hot_colours(values: np.ndarray) -> np.ndarray:
    """0 black, then red, yellow, white at 1."""
    v = np.clip(values, 0.0, 1.0)
    return (np.stack([np.clip(3 * v, 0, 1), np.clip(3 * v - 1, 0, 1), np.clip(3 * v - 2, 0, 1)], axis=-1) * 255
            ).astype(np.uint8)


def _titles(path: str, frame, what: str) -> tuple[str, str]:
    return (f"{what}: {os.path.basename(path)}",
            f"frame {frame.index}  type {frame.pict_type}  pts {frame.pts_seconds:.3f} s  GOP {frame.gop_index}")


def _mv_picture(path: str, frame):
    Image, ImageDraw, _ = _pil()
    base = Image.fromarray((frame.luma.numpy() // 2 + 64).astype(np.uint8)).convert("RGB")
    base, scale = _enlarge(base)
    draw = ImageDraw.Draw(base)
    rows = frame.motion_vectors.numpy()
    drawn = 0
    for r in rows:
        mx, my = r[MV.motion_x] / r[MV.motion_scale], r[MV.motion_y] / r[MV.motion_scale]
        sign = -1.0 if r[MV.source] > 0 else 1.0  # future references point the other way in time
        dx, dy = -mx * sign, -my * sign  # content moved from (dst + m) to dst
        if math.hypot(dx, dy) < 0.5:
            continue
        x1, y1 = r[MV.dst_x] * scale, r[MV.dst_y] * scale
        x0, y0 = x1 - dx * scale, y1 - dy * scale
        colour = _direction_colour(math.atan2(dy, dx))
        draw.line([(x0, y0), (x1, y1)], fill=colour, width=2)
        a = math.atan2(y1 - y0, x1 - x0)
        head = [(x1, y1), (x1 - 6 * math.cos(a - 0.5), y1 - 6 * math.sin(a - 0.5)),
                (x1 - 6 * math.cos(a + 0.5), y1 - 6 * math.sin(a + 0.5))]
        draw.polygon(head, fill=colour)
        drawn += 1
    title, subtitle = _titles(path, frame, "motion vectors")
    return _page(base, title, f"{subtitle}  {len(rows)} vectors, {drawn} arrows (|v| >= 0.5 px)",
                 _wheel_legend(base.width))


def _residual_picture(path: str, frame):
    Image, _, _ = _pil()
    res = frame.residual.numpy().astype(np.float32) if frame.residual is not None else np.zeros(frame.luma.shape)
    moving = np.abs(res[res != 0])  # most of a good prediction is exactly 0: scale by the rest
    bound = max(float(np.percentile(moving, 99)) if moving.size else 1.0, 1.0)
    # square-root scale: a good prediction leaves mostly small values, which a linear scale paints white
    body, _ = _enlarge(Image.fromarray(_signed_colours(np.sign(res) * np.sqrt(np.abs(res) / bound))))
    ramp = _signed_colours(np.linspace(-1, 1, 256))
    title, subtitle = _titles(path, frame, "residual")
    note = "" if frame.residual is not None else "  (no residual: I-frame or no exported vectors)"
    return _page(body, title, subtitle + note,
                 _bar_legend(max(body.width, 820), ramp, f"-{bound:.0f}", "0", f"+{bound:.0f}",
                             "luma minus prediction, square-root scale (clipped at the 99th percentile of non-zero values)"))


def _saliency_picture(path: str, frame, clip, t: int):
    Image, _, _ = _pil()
    sal = clip.saliency[t].numpy()
    top = max(float(clip.saliency.max()), 1e-6)
    cells = Image.fromarray(_hot_colours(sal / top))
    body = cells.resize((frame.luma.shape[1], frame.luma.shape[0]), Image.NEAREST)
    body, _ = _enlarge(body)
    title, subtitle = _titles(path, frame, "saliency")
    return _page(body, title, f"{subtitle}  {clip.grid[1]}x{clip.grid[2]} patches of the clip's {clip.grid[0]} frames",
                 _bar_legend(body.width, _hot_colours(np.linspace(0, 1, 256)), "0", f"{top / 2:.2f}", f"{top:.2f}",
                             "camera-compensated motion + residual energy"))


def _selected_picture(path: str, frame, clip, t: int):
    Image, ImageDraw, _ = _pil()
    rgb = frames_to_rgb(frame.luma[None], frame.chroma[None], [0])[0].permute(1, 2, 0).numpy()
    body, scale = _enlarge(Image.fromarray(rgb))
    draw = ImageDraw.Draw(body)
    h, w = frame.luma.shape
    _, hg, wg = clip.grid
    grid = patch_grid(hg * clip.patch, wg * clip.patch, clip.patch)
    sy, sx = h / (hg * clip.patch) * scale, w / (wg * clip.patch) * scale  # model pixels -> picture pixels
    mine = clip.positions[:, 0] == t
    for (_, row, col), tier in zip(clip.positions[mine].tolist(), clip.tier[mine].tolist()):
        y0, x0 = (grid.top + row * clip.patch) * sy, (grid.left + col * clip.patch) * sx
        draw.rectangle([x0, y0, x0 + clip.patch * sx - 1, y0 + clip.patch * sy - 1], outline=_TIER_COLOURS[tier],
                       width=2)
    legend = Image.new("RGB", (body.width, 40), (255, 255, 255))
    ld = ImageDraw.Draw(legend)
    x = 10
    for tier in (2, 1, 0):
        ld.rectangle([x, 12, x + 14, 26], outline=_TIER_COLOURS[tier], width=3)
        ld.text((x + 20, 12), _TIER_NAMES[tier], fill=(0, 0, 0), font=_font(12))
        x += 40 + 8 * len(_TIER_NAMES[tier])
    title, subtitle = _titles(path, frame, "selected patches")
    return _page(body, title, f"{subtitle}  {int(mine.sum())} of {hg * wg} patches kept", legend)


def gop_strip(path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """The GOP strip of the whole video: a bar per frame (height = packet size), coloured by type."""
    Image, ImageDraw, _ = _pil()
    with open_video(path, residuals=False) as reader:
        types, sizes, gops = reader.pict_types, reader.packet_sizes.numpy(), reader.gops
    n = len(types)
    step = max(2, min(12, 1200 // max(n, 1)))
    width, height = max(480, n * step + 80), 220
    body = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(body)
    top = max(int(sizes.max()) if n else 1, 1)
    base = height - 30
    for i, (kind, size) in enumerate(zip(types, sizes)):
        x = 60 + i * step
        draw.rectangle([x, base - (base - 10) * int(size) / top, x + step - 2, base], fill=_TYPE_COLOURS.get(kind, (0, 0, 0)))
    for g in gops:
        x = 60 + g.first_frame * step
        draw.line([(x - 1, 6), (x - 1, base)], fill=(120, 120, 120))
    draw.line([(58, base), (width - 10, base)], fill=(0, 0, 0))
    for i in range(0, n, max(1, n // 10)):
        draw.text((60 + i * step, base + 6), str(i), fill=(0, 0, 0), font=_font(11))
    draw.text((4, 6), f"{top // 1000} kB" if top >= 1000 else f"{top} B", fill=(0, 0, 0), font=_font(11))
    legend = Image.new("RGB", (width, 56), (255, 255, 255))
    ld = ImageDraw.Draw(legend)
    for k, kind in enumerate("IPB"):
        ld.rectangle([10 + k * 110, 10, 24 + k * 110, 24], fill=_TYPE_COLOURS[kind])
        ld.text((30 + k * 110, 10), f"{kind}-frame ({types.count(kind)})", fill=(0, 0, 0), font=_font(12))
    ld.text((10, 34), "bar height = packet size; grey lines = GOP starts; x = frame index", fill=(0, 0, 0),
            font=_font(12))
    page = _page(body, f"GOP strip: {os.path.basename(os.fspath(path))}",
                 f"{n} frames, {len(gops)} GOPs, largest packet {top} bytes", legend)
    out = Path(out)
    page.save(out)
    return out


def show(path: str | os.PathLike, out_dir: str | os.PathLike, *, frames: list[int] | None = None,
         num_frames: int = 64, **patch_options) -> list[Path]:
    """Write the pictures of ``frames`` (default: one P-frame a third of the way in) and the GOP strip.

    Saliency and selection come from :func:`codecprim.codec_patches` over ``num_frames`` frames starting at
    the first asked frame; ``patch_options`` are its other keywords. Returns the files written.
    """
    _pil()
    path = os.fspath(path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open_video(path, residuals=False) as reader:
        types, pts = reader.pict_types, reader.pts_seconds
    if not types:
        from .errors import InvalidVideoError

        raise InvalidVideoError(path, "no frame to show")
    if frames is None:
        start = len(types) // 3
        frames = [next((i for i in range(start, len(types)) if types[i] == "P"), start)]
    bad = [f for f in frames if not 0 <= f < len(types)]
    if bad or not frames:
        raise ValueError(f"frames must lie in [0, {len(types)}) for {path}; got {frames}")
    first = min(frames)
    clip = codec_patches(path, num_frames=num_frames, start_seconds=float(pts[first] - pts[0]), **patch_options)
    window = clip.frame_indices.tolist()
    outside = [f for f in frames if f not in window]
    if outside:
        raise ValueError(f"frames {outside} lie outside the {num_frames}-frame window from frame {first}; "
                         "raise num_frames or show them separately")
    written = [gop_strip(path, out / "gop.png")]
    with open_video(path, residuals=True, chroma=True) as reader:
        for frame in reader.frames_at(sorted(set(frames))):
            t = window.index(frame.index)
            for name, page in (("mv", _mv_picture(path, frame)), ("residual", _residual_picture(path, frame)),
                               ("saliency", _saliency_picture(path, frame, clip, t)),
                               ("selected", _selected_picture(path, frame, clip, t))):
                target = out / f"{name}_{frame.index:05d}.png"
                page.save(target)
                written.append(target)
    return written
