"""Timestamps strictly increase in display order, and agree with FFmpeg's, on the streams that used to break
that: packed MPEG-4 B-frames in AVI (the last frame repeated its predecessor's pts) and H.264 whose first IDR
is damaged. The oracle is PyAV on the same libavcodec."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import codecprim
from media import make_damaged_idr, make_packed_bframes, make_unpacked_bframes

av = pytest.importorskip("av")


def _read(path, **options):
    with codecprim.open(path, **options) as reader:
        return list(reader), reader.stats


def _ffmpeg_times(path):
    """FFmpeg's presentation times (best-effort timestamps, as ffprobe prints them), in output order."""
    times = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue
            times += [None if f.pts is None else float(f.pts * stream.time_base) for f in frames]
    return times


def _strictly_increasing(frames):
    pts = np.array([f.pts_seconds for f in frames])
    return bool(np.all(np.diff(pts) > 0))


@pytest.fixture(scope="module")
def clips(media, tmp_path_factory):
    media["mpeg4_xvid"]  # skips without the ffmpeg CLI
    folder = tmp_path_factory.mktemp("timestamps")
    return {
        "packed": make_packed_bframes(folder),
        "unpacked": make_unpacked_bframes(folder),
        "idr_1slice": make_damaged_idr(folder, 1),
        "idr_4slices": make_damaged_idr(folder, 4),
    }


def test_packed_bframes_last_frame_gets_its_own_time(clips):
    frames, stats = _read(clips["packed"], residuals=False)
    assert "B" in "".join(f.pict_type for f in frames)
    assert _strictly_increasing(frames)
    # The decoder repeats an earlier pts for the last frame; FFmpeg's own times, as a set, are the stream's clock.
    ffmpeg = sorted(t for t in _ffmpeg_times(clips["packed"]) if t is not None)
    assert len(ffmpeg) == len(frames)
    np.testing.assert_allclose([f.pts_seconds for f in frames], ffmpeg, atol=1e-9)
    assert frames[-1].pts_seconds == pytest.approx(ffmpeg[-1])
    assert stats.frames_retimed >= 1 and stats.frames_reordered == 0


def test_unpacked_twin_gives_the_same_pictures_in_order(clips):
    packed, _ = _read(clips["packed"])
    unpacked, stats = _read(clips["unpacked"])
    assert _strictly_increasing(unpacked)
    assert len(unpacked) == len(packed)
    assert [f.pict_type for f in unpacked] == [f.pict_type for f in packed]
    for a, b in zip(packed, unpacked):
        assert torch.equal(a.luma, b.luma), a.index
        assert torch.equal(a.motion_vectors, b.motion_vectors), a.index
    assert stats.frames_reordered == 0


@pytest.mark.parametrize("name", ["idr_1slice", "idr_4slices"])
def test_damaged_first_idr(clips, name):
    frames, stats = _read(clips[name])
    assert len(frames) > 20 and _strictly_increasing(frames)
    ffmpeg = sorted(_ffmpeg_times(clips[name]))
    np.testing.assert_allclose([f.pts_seconds for f in frames], ffmpeg, atol=1e-9)
    assert stats.frames_retimed == 0
    if name == "idr_4slices":  # the IDR still decodes (from its intact slices), damaged
        assert frames[0].pict_type == "I" and stats.corrupt_frames >= 1
    else:  # the first GOP cannot be decoded: FFmpeg starts at the next IDR
        assert frames[0].key_frame and frames[0].pts_seconds == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["h264_bframes", "mpeg4_native_bframes", "mpeg2", "h264_scenecut", "hevc"])
def test_clean_streams_need_no_fixing(media, name):
    frames, stats = _read(media[name], residuals=False)
    assert _strictly_increasing(frames)
    np.testing.assert_allclose([f.pts_seconds for f in frames], sorted(_ffmpeg_times(media[name])), atol=1e-9)
    assert stats.frames_reordered == 0 and stats.frames_retimed == 0
