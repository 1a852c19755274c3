"""The parser pass (len(reader), pict_types, gops) agrees with what the decoder outputs, with PyAV on the same
libavcodec as the oracle, on B-frame streams in every container: MP4/MKV (pts), AVI and raw H.264 (no pts:
display order from POC or from the anchor rule), MPEG-TS, packed MPEG-4 B-frames, and an IDR whose first
slice header is damaged.

Where they cannot agree: an H.264 stream whose only IDR before the next one cannot be decoded at all. The
parser lists its GOP; libavcodec outputs nothing until the next IDR. len(reader) then counts the GOP, and
frames_at on those indices raises InvalidVideoError (tests/core/test_truncation.py)."""

from __future__ import annotations

import numpy as np
import pytest

import codecprim
from media import make_damaged_idr, make_packed_bframes, make_remuxed, make_unpacked_bframes
from pyav_oracle import decoded_frames, require_same_libavcodec

def _pyav_types(path):
    return "".join("?IPB"[int(f.pict_type)] if int(f.pict_type) in (1, 2, 3) else "P" for f, _ in decoded_frames(path))


@pytest.fixture(scope="module")
def clips(media, tmp_path_factory):
    require_same_libavcodec()
    folder = tmp_path_factory.mktemp("agreement")
    h264 = media["h264_bframes"]
    return {
        "h264_mp4": h264,
        "h264_mkv_odd": media["h264_odd_size"],
        "h264_scenecut": media["h264_scenecut"],
        "h264_avi": make_remuxed(h264, ".avi", folder),
        "h264_raw": make_remuxed(h264, ".h264", folder),
        "h264_ts": make_remuxed(h264, ".ts", folder),
        "h264_damaged_idr_slice": make_damaged_idr(folder, 4),
        "mpeg4_mp4": media["mpeg4_native_bframes"],
        "mpeg4_avi": make_remuxed(media["mpeg4_native_bframes"], ".avi", folder),
        "mpeg4_packed_avi": make_packed_bframes(folder),
        "mpeg4_unpacked_avi": make_unpacked_bframes(folder),
        "mpeg2_ps": media["mpeg2"],
        "hevc": media["hevc"],
    }


NAMES = ["h264_mp4", "h264_mkv_odd", "h264_scenecut", "h264_avi", "h264_raw", "h264_ts", "h264_damaged_idr_slice",
         "mpeg4_mp4", "mpeg4_avi", "mpeg4_packed_avi", "mpeg4_unpacked_avi", "mpeg2_ps", "hevc"]


@pytest.mark.parametrize("name", NAMES)
def test_parser_pass_agrees_with_the_decoder(clips, name):
    path = clips[name]
    with codecprim.open(path, residuals=False) as reader:
        decoded = list(reader)
        stats = reader.stats
        types, n, gops = reader.pict_types, len(reader), reader.gops
    decoded_types = "".join(f.pict_type for f in decoded)
    assert "B" in decoded_types
    assert decoded_types == _pyav_types(path), "codecprim's decoder order differs from FFmpeg's"
    assert n == len(decoded) == stats.frames_decoded
    assert types == decoded_types, f"parser {types}\ndecoder {decoded_types}"
    assert gops[0].starts_with_iframe == (decoded[0].pict_type == "I")
    assert [f.gop_index for f in decoded] == [g.index for g in gops for _ in range(g.num_frames)]


@pytest.mark.parametrize("name", ["h264_avi", "h264_raw", "mpeg4_packed_avi"])
def test_random_access_without_container_pts(clips, name):
    """Positions come from counting when the container has no pts; frames_at still returns the right frames."""
    path = clips[name]
    with codecprim.open(path) as reader:
        every = list(reader)
        picked = reader.frames_at([len(every) - 1, 3, len(every) // 2])
    for frame in picked:
        want = every[frame.index]
        assert frame.pict_type == want.pict_type and frame.pts_seconds == want.pts_seconds
        assert (frame.luma == want.luma).all()


def test_no_container_pts_reads_as_the_frame_rate_grid(clips):
    # AVI stores no pts for H.264: the index and the decoded frames both give display index / frame rate, not
    # NaN (which made every relative time NaN) and not FFmpeg's best-effort guesses (which run backwards here).
    with codecprim.open(clips["h264_avi"]) as reader:
        times = reader.pts_seconds.numpy()
        decoded = [f.pts_seconds for f in reader]
        fps = reader.info.fps
    np.testing.assert_allclose(times, np.arange(len(times)) / fps, atol=1e-9)
    np.testing.assert_array_equal(times, decoded)
    assert [g.pts_seconds for g in reader.gops] == [times[g.first_frame] for g in reader.gops]


def test_undecodable_first_idr_is_the_documented_disagreement(media, tmp_path):
    path = make_damaged_idr(tmp_path, 1)
    with codecprim.open(path, residuals=False) as reader:
        decoded = list(reader)
        n, gops = len(reader), reader.gops
    assert gops[0].starts_with_iframe  # it is an IDR, damaged
    assert len(decoded) == n - gops[0].num_frames  # libavcodec starts at the next IDR
    assert decoded[0].index == gops[1].first_frame and decoded[0].pict_type == "I"
