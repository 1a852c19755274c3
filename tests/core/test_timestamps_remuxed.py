"""Streams whose container has no presentation times to give: raw elementary streams (.h264, .m4v, .m2v) and
raw streams remuxed into MP4 by hand (``ffmpeg -i raw.h264 -c copy out.mp4``). The raw demuxer has no pts,
so the MP4 muxer writes pts = dts, and the edit list it adds to start at the first presented frame drops the
pictures decoded first (the I-frame and the first P-frame), which libavcodec decodes and then discards.

The oracle is FFmpeg's decode through PyAV on the same libavcodec: the same frames in the same order with
bit-identical luma, the same picture types; timestamps strictly increase (the container's times, sorted, given
in display order); frames_at returns what sequential decoding does.
"""

from __future__ import annotations

import os
import subprocess
import threading

import numpy as np
import pytest

import codecprim
from codecprim.errors import UnsupportedVideoError
from h264_sps import declare_reorder_depth
from pyav_oracle import luma, require_same_libavcodec
from hypothesis import HealthCheck, given, settings
from test_frames_at import assert_same_frame, check_indices, index_sets

av = pytest.importorskip("av")

_SOURCE = ["-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=2", "-pix_fmt", "yuv420p", "-threads", "1"]
_ENCODERS = {
    "h264": ["-c:v", "libx264", "-bf", "3", "-g", "25"],
    # b-pyramid: a reorder depth of 2, which the lying twin declares as 1
    "h264_pyramid": ["-c:v", "libx264", "-bf", "3", "-x264-params", "b-pyramid=normal", "-g", "25"],
    "hevc": ["-c:v", "libx265", "-x265-params", "log-level=error:keyint=25:bframes=3"],
    "m2v": ["-c:v", "mpeg2video", "-bf", "2", "-g", "12", "-q:v", "4"],
    "m4v": ["-c:v", "mpeg4", "-bf", "2", "-g", "12", "-q:v", "4"],
    # Xvid's raw stream: its packets carry decode times (pts = dts), unlike the native encoder's
    "m4v_xvid": ["-c:v", "libxvid", "-bf", "2", "-g", "12", "-q:v", "4"],
}


def _ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def clips(media, tmp_path_factory):
    media["h264_bframes"]  # skips without the ffmpeg CLI
    require_same_libavcodec()
    folder = tmp_path_factory.mktemp("remuxed")
    out = {}
    for name, encoder in _ENCODERS.items():
        raw = folder / f"{name}_bframes.{name.split('_')[0]}"
        _ffmpeg(*_SOURCE, *encoder, raw)
        out[name] = raw
    for name in ("h264", "hevc", "m2v"):
        remuxed = folder / f"{name}_bframes_remuxed.mp4"
        _ffmpeg("-i", out[name], "-c", "copy", remuxed)
        out[f"{name}_mp4"] = remuxed
    data, declared = declare_reorder_depth(out["h264_pyramid"].read_bytes(), 1)
    assert declared == 2
    out["h264_lying"] = folder / "h264_too_small_reorder_depth.h264"
    out["h264_lying"].write_bytes(data)
    out["h264_avi"] = folder / "h264_bframes.avi"
    _ffmpeg("-i", out["h264"], "-c", "copy", out["h264_avi"])
    out["h264_lying_avi"] = folder / "h264_too_small_reorder_depth.avi"
    _ffmpeg("-i", out["h264_lying"], "-c", "copy", out["h264_lying_avi"])
    # Cut without re-encoding, as `-ss` before `-i` with `-c copy` does: the edit list starts mid-GOP.
    out["h264_trimmed_mp4"] = folder / "h264_bframes_trimmed.mp4"
    _ffmpeg("-ss", 0.5, "-i", media["h264_bframes"], "-c", "copy", out["h264_trimmed_mp4"])
    out["h264_trimmed_source"] = media["h264_bframes"]
    return out


def _pyav(path):
    """(picture types, luma planes, pts) of every frame FFmpeg outputs, in output order."""
    types, lumas, pts = [], [], []
    with av.open(str(path)) as container:
        for f in container.decode(video=0):
            types.append(" IPB"[int(f.pict_type)] if int(f.pict_type) in (1, 2, 3) else "?")
            lumas.append(luma(f))
            pts.append(f.pts)
    return "".join(types), lumas, pts


def _read(path, **options):
    reader = codecprim.open(path, **options)
    return reader, list(reader)


def _untimed_packets(path):
    """Packets without a pts as the ffprobe CLI demuxes them (without libavformat's generated pts)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts",
                          "-of", "csv=p=0", str(path)], check=True, capture_output=True, text=True).stdout
    return sum(line.strip() == "N/A" for line in out.splitlines() if line.strip())


def _packets(path):
    with av.open(str(path)) as container:
        return [p for p in container.demux(video=0) if p.size > 0]


def _hidden(path):
    """Pictures the container marks for the decoder to drop (before an MP4 edit list's start)."""
    with av.open(str(path)) as container:
        return sum(p.is_discard for p in container.demux(video=0) if p.size > 0)


def _assert_agrees_with_ffmpeg(path):
    """Frame count, order, luma, types and timestamps as FFmpeg decodes the stream; returns (reader, frames)."""
    types, lumas, _ = _pyav(path)
    reader, frames = _read(path)
    assert len(frames) == len(lumas) == len(reader)
    # The hidden pictures are decoded too (the next ones predict from them), and not returned.
    assert reader.stats.frames_decoded == len(frames) + _hidden(path)
    assert "B" in types
    assert "".join(f.pict_type for f in frames) == types == reader.pict_types
    for frame, luma in zip(frames, lumas):
        np.testing.assert_array_equal(frame.luma.numpy(), luma, err_msg=f"frame {frame.index}")
    assert [f.index for f in frames] == list(range(len(frames)))
    times = np.array([f.pts_seconds for f in frames])
    assert np.all(np.diff(times) > 0)
    # The index, read without decoding, gives the times the frames carry, also where the container has none.
    np.testing.assert_array_equal(codecprim.open(path).pts_seconds.numpy(), times)
    assert reader.stats.frames_reordered == 0
    # GOPs as the types spell them: one starts at every I-frame, GOP 0 also at a leading non-I frame.
    starts = [g.first_frame for g in reader.gops]
    assert starts == sorted({0} | {i for i, t in enumerate(types) if t == "I"})
    assert reader.gops[0].starts_with_iframe == (types[0] == "I")
    assert [g.pts_seconds for g in reader.gops] == [times[g.first_frame] for g in reader.gops]
    assert [f.gop_index for f in frames] == [g.index for g in reader.gops for _ in g.frame_range]
    return reader, frames


def _assert_random_access_is_sequential(path, frames):
    n = len(frames)
    wanted = [n - 1, 3, n // 2, 1, n // 2 + 1, 0, 3]
    with codecprim.open(path) as reader:
        for got, i in zip(reader.frames_at(wanted), wanted):
            assert_same_frame(got, frames[i])
        assert_same_frame(reader[-2], frames[n - 2])


@pytest.mark.parametrize("name", ["h264_mp4", "hevc_mp4", "m2v_mp4"])
def test_raw_stream_remuxed_into_mp4(clips, name):
    path = clips[name]
    with av.open(str(path)) as container:  # what makes the file awkward: decode times stored as pts
        packets = [p for p in container.demux(video=0) if p.size > 0]
    assert all(p.pts == p.dts for p in packets)
    _, _, ffmpeg_pts = _pyav(path)
    assert ffmpeg_pts != sorted(ffmpeg_pts)  # FFmpeg's frames carry them, out of display order

    reader, frames = _assert_agrees_with_ffmpeg(path)
    assert reader.stats.frames_retimed == 0
    if name == "h264_mp4":  # the edit list hides the I- and P-picture decoded first; FFmpeg outputs the rest
        assert len(frames) == len(packets) - 2 == len(packets) - _hidden(path)
        assert reader.pict_types.startswith("BBB")
    # Display order gets the container's times, sorted: here the frame rate's grid from 0.
    times = [f.pts_seconds for f in frames]
    np.testing.assert_allclose(times, [t * reader.info.time_base for t in sorted(ffmpeg_pts)], atol=1e-12)
    np.testing.assert_allclose(times, np.arange(len(frames)) / 25, atol=1e-9)
    np.testing.assert_allclose(reader.pts_seconds.numpy(), times, atol=1e-12)
    assert [g.pts_seconds for g in reader.gops] == pytest.approx([times[g.first_frame] for g in reader.gops])
    assert reader.stats.frames_pts_synthesized == len(frames)
    _assert_random_access_is_sequential(path, frames)

    @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(index_sets(len(frames)))
    def any_index_set(indices):
        check_indices(path, indices)

    any_index_set()
    with codecprim.open(path, residuals=False) as sparse:  # the last GOP is reached by seeking, not decoding all
        sparse.frames_at([len(frames) - 1])
        assert sparse.stats.frames_decoded <= reader.gops[-1].num_frames + 2
        assert sparse.stats.frames == sparse.stats.frames_pts_synthesized == 1


@pytest.mark.parametrize("name", ["h264", "h264_pyramid", "hevc", "m2v", "m4v", "m4v_xvid"])
def test_raw_elementary_stream(clips, name):
    reader, frames = _assert_agrees_with_ffmpeg(clips[name])
    _, _, ffmpeg_pts = _pyav(clips[name])
    times = [f.pts_seconds for f in frames]
    if all(t is None for t in ffmpeg_pts):  # raw H.264/HEVC: no times at all; the frame rate's grid
        np.testing.assert_allclose(times, np.arange(len(frames)) / 25, atol=1e-12)
        assert reader.stats.frames_pts_synthesized == len(frames)
    else:  # the MPEG parsers time pictures (from the frame rate, or the VOP times): the same times, sorted
        np.testing.assert_allclose(times, sorted(float(p * reader.info.time_base) for p in ffmpeg_pts), atol=1e-9)
        # Packets the demuxer leaves untimed (the MPEG-2 parser times B-pictures only; PyAV hides this by asking
        # libavformat to generate pts) are counted; Xvid's packets carry decode times, so all its frames are.
        untimed = _untimed_packets(clips[name])
        assert reader.stats.frames_pts_synthesized == (len(frames) if name == "m4v_xvid" else untimed)
        assert name != "m2v" or untimed == reader.pict_types.count("I") + reader.pict_types.count("P")
    _assert_random_access_is_sequential(clips[name], frames)


def test_mp4_cut_inside_a_gop(clips):
    # The pictures before the cut are in the file (the first frames shown need them) but marked for the decoder
    # to drop: the index leaves them out, so len(reader) and the display indices are what FFmpeg outputs.
    path = clips["h264_trimmed_mp4"]
    with av.open(str(path)) as container:
        packets = sum(1 for p in container.demux(video=0) if p.size > 0)
    reader, frames = _assert_agrees_with_ffmpeg(path)
    assert len(frames) == packets - _hidden(path) < packets and not reader.gops[0].starts_with_iframe
    _, _, ffmpeg_pts = _pyav(path)
    np.testing.assert_allclose([f.pts_seconds for f in frames], [p * reader.info.time_base for p in ffmpeg_pts])
    assert reader.stats.frames_pts_synthesized == 0 and reader.stats.frames_retimed == 0
    _assert_random_access_is_sequential(path, frames)
    # The hidden pictures still serve as references: every frame, residual included, is the uncut clip's frame.
    _, uncut = _read(clips["h264_trimmed_source"])
    start = len(uncut) - len(frames)
    _assert_same_pictures(frames, uncut[start:])


def test_raw_h264_that_declares_too_small_a_reorder_depth(clips):
    # The SPS promises one frame of reordering for a B-pyramid that needs two: libavcodec outputs pictures early
    # and drops the ones it then finds out of order. Without timestamps the reader cannot see that happen, so it
    # decodes a raw stream with the depth its index measures from the slice headers' POC: every frame, as the
    # honest twin gives them.
    with av.open(str(clips["h264_lying"])) as container:
        assert len(list(container.decode(video=0))) < 50
    _, expected = _read(clips["h264_pyramid"])
    reader, got = _read(clips["h264_lying"])
    assert len(got) == len(reader) == len(expected) == 50
    for a, b in zip(got, expected):
        assert_same_frame(a, b)
    _assert_random_access_is_sequential(clips["h264_lying"], got)


def test_h264_in_avi_is_timed_on_the_frame_rate_grid(clips):
    # AVI stores decode order and no presentation times; FFmpeg's best-effort times run backwards there.
    path = clips["h264_avi"]
    assert _untimed_packets(path) == len(_packets(path))
    _, _, ffmpeg_pts = _pyav(path)
    assert ffmpeg_pts != sorted(ffmpeg_pts)
    reader, frames = _assert_agrees_with_ffmpeg(path)
    np.testing.assert_allclose([f.pts_seconds for f in frames], np.arange(len(frames)) / 25, atol=1e-12)
    assert reader.stats.frames_pts_synthesized == len(frames)
    _assert_random_access_is_sequential(path, frames)


def test_h264_avi_that_declares_too_small_a_reorder_depth(clips):
    # AVI stores no presentation times either: the same measured depth applies.
    with av.open(str(clips["h264_lying_avi"])) as container:
        assert len(list(container.decode(video=0))) < 50
    _, expected = _read(clips["h264_pyramid"])
    reader, got = _read(clips["h264_lying_avi"])
    assert len(got) == len(reader) == 50 and [f.index for f in got] == list(range(50))
    assert np.all(np.diff([f.pts_seconds for f in got]) > 0)
    _assert_same_pictures(got, expected)
    _assert_random_access_is_sequential(clips["h264_lying_avi"], got)


def test_raw_h264_from_a_fifo_that_declares_too_small_a_reorder_depth(clips, tmp_path):
    # A FIFO is read once, so there is no index to measure the depth: the decoder holds H.264's largest depth.
    fifo = tmp_path / "lying.h264"
    os.mkfifo(fifo)
    data = clips["h264_lying"].read_bytes()

    def writer():
        with open(fifo, "wb") as pipe:
            pipe.write(data)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        with codecprim.open(fifo) as reader:
            got = list(reader)  # len() raises a TypeError too, so list() falls back to iterating
            with pytest.raises(codecprim.UnknownLengthError, match="read once") as error:  # not a second open
                len(reader)
            assert isinstance(error.value, UnsupportedVideoError) and isinstance(error.value, TypeError)
    finally:
        thread.join(timeout=10)
    _, expected = _read(clips["h264_pyramid"])
    assert len(got) == 50 and [f.index for f in got] == list(range(50))
    for a, b in zip(got, expected):
        assert_same_frame(a, b)


def test_pictures_the_edit_list_hides_still_serve_as_references(clips):
    # The remuxed MP4 shows the raw stream's pictures minus the two it hides (display 0, the I-picture, and
    # display 4, the first P-picture): every other frame, residual included, is the raw stream's frame.
    _, remuxed = _read(clips["h264_mp4"])
    _, raw = _read(clips["h264"])
    _assert_same_pictures(remuxed, [raw[i] for i in range(len(raw)) if i not in (0, 4)])


def _assert_same_pictures(got, expected):
    """Type, luma, vectors and residual equal frame by frame (positions and times may differ)."""
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.pict_type == b.pict_type
        np.testing.assert_array_equal(a.luma, b.luma, err_msg=f"frame {a.index}")
        np.testing.assert_array_equal(a.motion_vectors, b.motion_vectors, err_msg=f"frame {a.index}")
        assert (a.residual is None) == (b.residual is None)
        if a.residual is not None:
            np.testing.assert_array_equal(a.residual, b.residual, err_msg=f"frame {a.index}")
