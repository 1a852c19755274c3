"""Timestamps strictly increase in display order, and agree with FFmpeg's, on the streams that used to break
that: packed MPEG-4 B-frames in AVI (the last frame repeated its predecessor's pts) and H.264 whose first IDR
is damaged. The oracle is PyAV on the same libavcodec."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import codecprim
from pyav_oracle import decoded_frames
from media import make_damaged_idr, make_packed_bframes, make_unpacked_bframes



def _read(path, **options):
    with codecprim.open(path, **options) as reader:
        return list(reader), reader.stats


def _ffmpeg_times(path):
    """FFmpeg's presentation times, in output order."""
    return [None if f.pts is None else float(f.pts * tb) for f, tb in decoded_frames(path)]


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
    # The frame table gives the same times without decoding: the container times the packets' slots, which the
    # VOPs fill in decode order as mpeg4_unpack_bframes puts them back (timed by the packet that carried them, the
    # table ran one frame early: 0.08 s against 0.12 for frame 0). The unpacked twin's table agrees.
    index_times = codecprim.open(clips["packed"]).pts_seconds.numpy()
    assert np.all(np.diff(index_times) > 0)
    np.testing.assert_allclose(index_times, [f.pts_seconds for f in frames], atol=1e-9)
    np.testing.assert_allclose(index_times, codecprim.open(clips["unpacked"]).pts_seconds.numpy(), atol=1e-9)


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


def test_stream_that_declares_too_small_a_reorder_depth(tmp_path):
    # An SPS promising one frame of reordering for a B-pyramid (which needs two): libavcodec then outputs some
    # pictures early and drops those it finds out of order (PyAV gets 39 of 50 frames). The reader notices the
    # frame the index lists but the decoder passed over, and decodes again with the depth the index measures.
    import subprocess
    import av
    from h264_sps import declare_reorder_depth

    honest = tmp_path / "honest.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=2", "-pix_fmt",
                    "yuv420p", "-c:v", "libx264", "-bf", "3", "-x264-params", "b-pyramid=normal", "-g", "25",
                    str(honest)], check=True, capture_output=True)
    data, declared = declare_reorder_depth(honest.read_bytes(), 1)
    assert declared == 2
    lying = tmp_path / "too_small_reorder_depth.mkv"
    lying.write_bytes(data)
    with av.open(str(lying)) as container:
        assert len(list(container.decode(video=0))) < 50  # the decoder really drops frames on this stream

    (expected, _), (got, stats) = _read(honest), _read(lying)
    assert [f.index for f in got] == list(range(50)) == [f.index for f in expected]
    assert _strictly_increasing(got) and stats.frames == 50
    for a, b in zip(got, expected):
        assert a.pts_seconds == pytest.approx(b.pts_seconds) and a.pict_type == b.pict_type
        assert torch.equal(a.luma, b.luma) and torch.equal(a.motion_vectors, b.motion_vectors)
        assert (a.residual is None) == (b.residual is None)
        if a.residual is not None:
            assert torch.equal(a.residual, b.residual)
    with codecprim.open(lying) as reader:  # sparse access restarts the same way
        assert [f.index for f in reader.frames_at([7, 2, 30])] == [7, 2, 30]
        np.testing.assert_array_equal(reader[13].luma.numpy(), expected[13].luma.numpy())


def test_xvid_mkv_whose_bframes_carry_decode_times_reads_the_same_times_every_way(tmp_path):
    # Xvid with B-frames muxed into Matroska: the container gives each B-picture its decode time as pts, so
    # FFmpeg's frames come out with times 0, 0.16, 0.20, 0.12, ... (the P-picture shown after two B-pictures has
    # an earlier pts than they do). The frame table gives the pictures the container's times in the order they
    # are shown; plain iteration used to keep FFmpeg's times made increasing instead (0.16 for frame 1 against
    # the table's 0.12), so a reader gave other times depending on whether len() had been called.
    import subprocess

    path = tmp_path / "xvid_bframes.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=176x144:r=25:d=2", "-c:v",
                    "libxvid", "-bf", "2", "-g", "25", str(path)], check=True, capture_output=True)
    ffmpeg = _ffmpeg_times(path)
    assert any(b < a for a, b in zip(ffmpeg, ffmpeg[1:])), "the container no longer stores decode times"

    with codecprim.open(path, residuals=False) as reader:
        iterated = [f for f in reader]  # (list(reader) would ask len() first, which builds the frame table)
        stats = reader.stats
    with codecprim.open(path, residuals=False) as reader:
        table = reader.pts_seconds.tolist()
        after_len = [f.pts_seconds for f in reader]
        sampled = [f.pts_seconds for f in reader.frames_at([5, 1, 30])]
    times = [f.pts_seconds for f in iterated]
    assert times == pytest.approx(table) and after_len == pytest.approx(table)
    assert sampled == pytest.approx([table[5], table[1], table[30]])
    assert _strictly_increasing(iterated) and stats.frames_retimed == 0
    assert times == pytest.approx(sorted(ffmpeg))  # the container's times, in display order
