"""The frame sampler against slow obvious references, and reading through frames_at against a full pass."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import codecprim
from codecprim.data.sampling import plan_frames, read_frames, sample_frames


def _times(n: int, fps: float, offset: float = 0.0) -> torch.Tensor:
    return offset + torch.arange(n, dtype=torch.float64) / fps


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 200), num=st.integers(1, 80), offset=st.floats(0, 100))
def test_uniform_spreads_evenly_over_the_whole_video(n, num, offset):
    sample = plan_frames(_times(n, 25.0, offset), 25.0, num_frames=num, sampling="uniform")
    count = min(n, num)
    assert list(sample.indices) == [math.floor(i * n / count) for i in range(count)]
    assert sample.fps == pytest.approx(25.0 * count / n)
    assert sample.pts_seconds == tuple(offset + i / 25.0 for i in sample.indices)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 300), start=st.floats(0, 14), length=st.floats(0, 14))
def test_uniform_stays_inside_video_start_and_end(n, start, length):
    times = _times(n, 20.0)
    sample = plan_frames(times, 20.0, num_frames=16, sampling="uniform", video_start=start, video_end=start + length)
    inside = [i for i in range(n) if start - 0.025 <= float(times[i]) <= start + length + 0.025]
    assert set(sample.indices) <= set(inside)
    if inside:
        assert sample.indices[0] == inside[0] and len(sample) == min(16, len(inside))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 300), fps=st.floats(0.2, 60), cap=st.integers(1, 40))
def test_fps_picks_the_frame_at_each_instant(n, fps, cap):
    native = 25.0
    times = _times(n, native)
    sample = plan_frames(times, native, num_frames=64, sampling="fps", fps=fps, max_frames=cap)
    # reference: walk the instants 0, 1/fps, ... and take the first frame presented at or after each
    slack = 0.5 / native
    picked, k = [], 0
    while k / fps - slack <= float(times[-1]) + 1e-9:
        instant = k / fps - slack
        picked.append(min(i for i in range(n) if float(times[i]) >= instant - 1e-12) if instant <= times[-1] else n - 1)
        k += 1
    picked = sorted(set(picked))
    if len(picked) > cap:
        picked = [picked[i * len(picked) // cap] for i in range(cap)]
    assert list(sample.indices) == picked


def test_consecutive_window_from_start_seconds_or_seed():
    times = _times(100, 25.0, offset=3.0)  # the container's clock starts at 3 s; times count from the first frame
    assert plan_frames(times, 25.0, num_frames=10).indices == tuple(range(10))
    assert plan_frames(times, 25.0, num_frames=10, start_seconds=2.0).indices == tuple(range(50, 60))
    assert plan_frames(times, 25.0, num_frames=10, start_seconds=3.8).indices == tuple(range(95, 100))  # shorter
    starts = set()
    for seed in range(1500):
        sample = plan_frames(times, 25.0, num_frames=10, generator=torch.Generator().manual_seed(seed))
        assert sample.indices == tuple(range(sample.indices[0], sample.indices[0] + 10))
        starts.add(sample.indices[0])
    assert starts == set(range(91))  # every window position is drawn, none outside
    again = plan_frames(times, 25.0, num_frames=10, generator=torch.Generator().manual_seed(7))
    assert again == plan_frames(times, 25.0, num_frames=10, generator=torch.Generator().manual_seed(7))
    assert plan_frames(times, 25.0, num_frames=200).indices == tuple(range(100))  # short video: fewer frames


def test_bad_arguments_say_what_is_allowed():
    times = _times(10, 25.0)
    with pytest.raises(ValueError, match="sampling must be one of 'consecutive', 'uniform', 'fps'"):
        plan_frames(times, 25.0, sampling="random")
    with pytest.raises(ValueError, match='sampling="fps" needs fps'):
        plan_frames(times, 25.0, sampling="fps")
    with pytest.raises(ValueError, match="num_frames must be a positive int"):
        plan_frames(times, 25.0, num_frames=0)
    with pytest.raises(ValueError, match="video_end .* is before video_start"):
        plan_frames(times, 25.0, sampling="uniform", video_start=2.0, video_end=1.0)
    with pytest.raises(ValueError, match="start_seconds places a"):
        plan_frames(times, 25.0, sampling="uniform", start_seconds=1.0)


@pytest.mark.parametrize("name", ["h264_bframes", "h264_no_bframes"])
def test_read_frames_equals_a_full_pass_and_decodes_only_needed_gops(media, name):
    path = media[name]
    with codecprim.open(path, chroma=True) as reader:
        everything = {f.index: f for f in reader}
    with codecprim.open(path, chroma=True) as reader:
        sample = sample_frames(reader, num_frames=5, sampling="uniform")
        got = list(read_frames(reader, sample.indices))
        decoded = reader.stats.frames_decoded
        last_gop_end = max(g.first_frame + g.num_frames for g in reader.gops if g.first_frame <= sample.indices[-1])
    assert [f.index for f in got] == list(sample.indices)
    for frame in got:
        want = everything[frame.index]
        assert frame.pict_type == want.pict_type and frame.pts_seconds == want.pts_seconds
        assert torch.equal(frame.luma, want.luma) and torch.equal(frame.chroma, want.chroma)
        assert torch.equal(frame.motion_vectors, want.motion_vectors)
    assert decoded <= last_gop_end + 8  # never more than the GOPs holding the frames (plus decoder delay)


@pytest.mark.parametrize("name", ["h264_bframes", "h264_scenecut", "hevc", "mpeg4_native_bframes", "mpeg2"])
def test_read_frames_decodes_as_one_call_would_and_holds_one_frame(media, name):
    path = media[name]
    with codecprim.open(path) as reader:
        n = len(reader)
        wanted = sorted(set(range(0, n, 4)) | set(range(n // 3, n // 3 + 5)) | {n - 1})
        reader.frames_at(wanted, match_iteration=False)
        one_call = reader.stats.frames_decoded
    with codecprim.open(path) as reader:
        frames = read_frames(reader, wanted)
        first = next(frames)
        assert first.index == wanted[0] and reader.stats.frames < len(wanted)  # handed out as read, not held
        got = [first, *frames]
        assert [f.index for f in got] == wanted
        assert reader.stats.frames_decoded <= one_call
        assert reader.stats.frames == len(wanted)


def test_sparse_frames_of_a_long_gop_are_not_all_handed_out(media):
    path = media["h264_scenecut"]  # keyint 250: the first GOP is the whole first scene
    with codecprim.open(path, chroma=True) as reader:
        everything = {f.index: f for f in reader}
    wanted = [2, 5, 27]  # 6..26 are decoded on the way to 27 but not handed out
    with codecprim.open(path, chroma=True) as reader:
        got = list(read_frames(reader, wanted))
        handed_out = reader.stats.frames
    assert [f.index for f in got] == wanted
    assert all(torch.equal(f.luma, everything[f.index].luma) and f.pict_type == everything[f.index].pict_type
               for f in got)
    assert handed_out == 3


def test_times_with_holes_are_refused():
    # The reader fills the times a container leaves out (tests/core/test_timestamps_remuxed.py); a NaN here is
    # a caller's bug, and would make every relative time NaN.
    times = _times(10, 25.0)
    times[3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        plan_frames(times, 25.0, num_frames=4, sampling="uniform")


def test_mpeg4_bframes_in_avi_sample_despite_missing_times(tmp_path):
    # The first frame of such an AVI has no pts: every relative time used to become NaN ("no frame to sample").
    import shutil
    import subprocess

    if shutil.which("ffmpeg") is None:
        pytest.skip("needs the ffmpeg CLI")
    path = tmp_path / "packed_b.avi"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=25", "-t", "1",
                    "-c:v", "mpeg4", "-bf", "2", str(path)], check=True)
    with codecprim.open(path) as reader:
        assert not reader.pts_seconds.isnan().any()
        sample = sample_frames(reader, num_frames=8, sampling="uniform")
        decoded = [f.pts_seconds for f in reader.frames_at(list(sample.indices))]
    assert len(sample.indices) == 8
    assert sample.pts_seconds == pytest.approx(tuple(decoded), abs=1e-6)
