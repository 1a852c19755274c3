"""Truncated files say so: stats.truncated when the file holds less than its container promises (MP4 with its
index first, Matroska, AVI, FLV, cut with `head -c`), InvalidVideoError naming the file and the cause under
strict=True, and frames_at on frames the index lists but the decoder cannot deliver raises a clear
InvalidVideoError instead of returning garbage. Whole files are never flagged."""

from __future__ import annotations

import re

import pytest

import codecprim
from codecprim.errors import InvalidVideoError
from media import make_cut, make_packed_bframes, make_remuxed, make_truncated


@pytest.fixture(scope="module")
def whole(media, tmp_path_factory):
    folder = tmp_path_factory.mktemp("truncation")
    h264 = media["h264_bframes"]
    make_truncated(folder)  # leaves the whole file it cut beside it
    return {
        "mp4_faststart": folder / "h264_faststart_whole.mp4",  # index first
        "mkv": media["h264_odd_size"],
        "webm": media["vp9"],
        "avi": make_packed_bframes(folder),
        "mp4": h264,
        "ts": make_remuxed(h264, ".ts", folder),
        "flv": make_remuxed(h264, ".flv", folder),
    }, folder


def _read(path, **options):
    with codecprim.open(path, **options) as reader:
        frames = list(reader)
        return frames, reader.stats, len(reader)


@pytest.mark.parametrize("kind", ["mp4_faststart", "mkv", "webm", "avi", "mp4", "ts", "flv"])
def test_whole_files_are_not_truncated(whole, kind):
    frames, stats, n = _read(whole[0][kind], residuals=False)
    assert not stats.truncated and stats.truncation == ""
    assert len(frames) == n
    _read(whole[0][kind], strict=True, residuals=False)


@pytest.mark.parametrize("kind", ["mp4_faststart", "mkv", "webm", "avi", "flv"])
@pytest.mark.parametrize("keep", [0.4, 0.8])
def test_cut_files_are_truncated(whole, kind, keep):
    clips, folder = whole
    full, _, n_full = _read(clips[kind], residuals=False)
    cut = make_cut(clips[kind], keep, folder)
    frames, stats, n = _read(cut, residuals=False)
    assert stats.truncated, stats
    assert re.search(r"ends at byte \d+ but the file has \d+ bytes", stats.truncation)
    assert 0 < len(frames) < len(full)
    with pytest.raises(InvalidVideoError, match=re.escape(str(cut)) + ": truncated: .* ends at byte"):
        _read(cut, strict=True)


def test_mp4_with_its_index_at_the_end_cut_is_not_a_video(whole):
    """Cut before the moov box (FFmpeg's default layout), an MP4 has no index at all: not a readable video."""
    clips, folder = whole
    cut = make_cut(clips["mp4"], 0.5, folder)
    with pytest.raises(InvalidVideoError, match=re.escape(str(cut))):
        codecprim.open(cut)


def test_frames_the_decoder_cannot_deliver_raise(whole):
    clips, folder = whole
    cut = make_cut(clips["mp4_faststart"], 0.4, folder)
    with codecprim.open(cut) as reader:
        n = len(reader)
        decodable = [f.index for f in reader]
        assert reader.stats.truncated
        lost = sorted(set(range(n)) - set(decodable))
        assert lost, "the parser lists a frame the decoder cannot finish (its packet was cut)"
        with pytest.raises(InvalidVideoError, match=r"frames \[\d+.*\] are listed by the container but the decoder "
                                                     r"cannot produce them \(the file is truncated: "):
            reader.frames_at([0, lost[0]])
        good = reader.frames_at([decodable[-1], 0])
        assert [f.index for f in good] == [decodable[-1], 0]


def test_truncated_bytes_and_file_objects(whole):
    clips, folder = whole
    data = make_cut(clips["mkv"], 0.5, folder).read_bytes()
    with codecprim.open(data) as reader:
        list(reader)
        assert reader.stats.truncated
    with pytest.raises(InvalidVideoError, match=r"^<bytes>: truncated: the Segment ends at byte"):
        _read(data, strict=True)


@pytest.mark.parametrize("ending", ["without_last_tag_size", "zero_padded"])
def test_flv_endings_that_lose_nothing_are_not_truncated(whole, ending):
    # Some muxers leave out the size that should follow the last tag, and recorders may pad a file with zeros:
    # no tag runs past the end, so nothing is flagged.
    clips, folder = whole
    data = clips["flv"].read_bytes()
    path = folder / f"{ending}.flv"
    path.write_bytes(data[:-4] if ending == "without_last_tag_size" else data + bytes(4096))
    frames, stats, n = _read(path, residuals=False)
    assert not stats.truncated and stats.truncation == ""
    assert len(frames) == n
