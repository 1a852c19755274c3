"""codecprim.data.motion_stats, the index's motion statistic: a still clip, a half-still clip, a moving one, and a
codec without exported vectors."""

from __future__ import annotations

import subprocess

import pytest

from codecprim.data import motion_stats
from media import ffmpeg_available

HALF_STILL = ("color=c=gray:s=160x120:r=25:d=1[a];testsrc2=s=160x120:r=25:d=1[b];"
              "color=c=red:s=32x32:r=25:d=1[box];[b][box]overlay=x='10+80*t':y=40[c];[a][c]concat=n=2:v=1")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    if not ffmpeg_available():
        pytest.skip("the ffmpeg CLI is needed to generate test videos")
    folder = tmp_path_factory.mktemp("motion")
    out = {}
    for name, graph in (("still", "color=c=gray:s=160x120:r=25:d=2"), ("half_still", HALF_STILL)):
        out[name] = folder / f"{name}.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-filter_complex", graph, "-pix_fmt", "yuv420p",
                        "-c:v", "libx264", "-bf", "0", "-g", "250", "-threads", "1", str(out[name])],
                       check=True, capture_output=True)
    return out


def test_still_clip_is_all_static(clips):
    stats = motion_stats(clips["still"])
    assert (stats.frames, stats.inter_frames, stats.static_share) == (50, 49, 1.0)
    assert stats.motion_mean < 0.01


def test_half_still_clip_has_half_static_frames(clips):
    stats = motion_stats(clips["half_still"])
    # 24 still P-frames, then ~24 with a box moving 3.2 px per frame (x264 may put an I-frame at the cut).
    assert stats.inter_frames in (48, 49) and 20 / 48 <= stats.static_share <= 26 / 48
    assert stats.motion_mean > 0.1


def test_moving_clip_has_motion(media):
    stats = motion_stats(media["h264_no_bframes"])
    assert stats.static_share < 0.1 and stats.motion_mean > 0.5


def test_hevc_has_no_statistic(media):
    stats = motion_stats(media["hevc"])
    assert stats.frames == 25 and stats.motion_mean is None and stats.static_share is None


def test_bad_threshold():
    with pytest.raises(ValueError, match="static_pixels"):
        motion_stats("x.mp4", static_pixels=-1)
