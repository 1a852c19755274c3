"""Bad input never crashes the reader: every failure is a typed codecprim error that names the file and the
cause, catchable as the builtin it derives from; damaged streams give the frames that decode and count the damage.
"""

from __future__ import annotations

import pickle
import random
import re
import sys
import subprocess
from pathlib import Path

import pytest

import codecprim
from codecprim import CodecprimError, InvalidVideoError, VideoIOError, VideoNotFoundError
from media import ffmpeg_available

pytestmark = pytest.mark.skipif(not ffmpeg_available(), reason="the ffmpeg CLI makes the test inputs")

# A small clip with B-frames and motion: 2 s, 50 frames, GOP 12.
_SOURCE = "testsrc2=s=160x120:r=25:d=2"
_ENCODERS = {
    "mp4": ["-c:v", "libx264", "-bf", "2", "-g", "12"],  # moov atom at the end (no +faststart)
    "mkv": ["-c:v", "libx264", "-bf", "2", "-g", "12"],
    "ts": ["-c:v", "libx264", "-bf", "2", "-g", "12"],
    "avi": ["-c:v", "mpeg4", "-bf", "2", "-g", "12", "-q:v", "4"],
    "mpg": ["-c:v", "mpeg2video", "-bf", "2", "-g", "12", "-q:v", "4"],
}
_FRAMES = 50
# Causes the core gives for files that are not a readable video.
_NOT_A_VIDEO = (
    r"(not a recognised media file|cannot read stream information|has no video stream|"
    r"no picture size|is a still image or text)"
)


def _ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-threads", "1", *map(str, args)], check=True, capture_output=True)


def _matches(path, cause: str) -> str:
    """A pytest.raises pattern: the message names the file, then the cause."""
    return re.escape(str(path)) + r": .*" + cause


def _read_all(path, **kw):
    with codecprim.open(path, **kw) as reader:
        frames = [(f.index, f.pict_type, tuple(f.motion_vectors.shape)) for f in reader]
        return frames, reader.stats


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Clean clips by container extension."""
    folder = tmp_path_factory.mktemp("bad_input_clips")
    out = {}
    for ext, enc in _ENCODERS.items():
        out[ext] = folder / f"clean.{ext}"
        _ffmpeg("-f", "lavfi", "-i", _SOURCE, "-pix_fmt", "yuv420p", *enc, out[ext])
    return out


@pytest.fixture(scope="module")
def stills(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_input_stills")
    out = {}
    for ext in ("png", "jpg"):
        out[ext] = folder / f"image.{ext}"
        _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=64x48", "-frames:v", "1", out[ext])
        # The same image under a video file name: detection is by content, not by name.
        out[f"{ext}_as_mp4"] = folder / f"{ext}_image.mp4"
        out[f"{ext}_as_mp4"].write_bytes(out[ext].read_bytes())
    return out


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_input_audio")
    out = {}
    for ext in ("wav", "m4a", "mp3"):
        out[ext] = folder / f"sine.{ext}"
        _ffmpeg("-f", "lavfi", "-i", "sine=d=0.5", out[ext])
    return out


# -- missing, empty, text, garbage, images, audio, directories ---------------------------------------------------


@pytest.mark.parametrize("catch", [VideoNotFoundError, FileNotFoundError, CodecprimError])
def test_missing_file(tmp_path, catch):
    path = tmp_path / "no_such_video.mp4"
    with pytest.raises(catch, match=_matches(path, "no such file")) as info:
        codecprim.open(path)
    assert isinstance(info.value, VideoNotFoundError)
    assert info.value.path == str(path) and info.value.cause == "no such file"


@pytest.mark.parametrize("catch", [VideoNotFoundError, FileNotFoundError])
def test_missing_file_under_a_file(tmp_path, catch):
    parent = tmp_path / "not_a_folder.mp4"
    parent.write_bytes(b"x")
    path = parent / "clip.mp4"  # ENOTDIR
    with pytest.raises(catch, match=_matches(path, "no such file")):
        codecprim.open(path)


@pytest.mark.parametrize("name", ["empty.mp4", "empty.mkv", "empty"])
@pytest.mark.parametrize("catch", [InvalidVideoError, ValueError])
def test_empty_file(tmp_path, name, catch):
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(catch, match=_matches(path, "the file is empty")) as info:
        codecprim.open(path)
    assert info.value.cause == "the file is empty"


@pytest.mark.parametrize(
    "name, cause",
    [
        ("notes.mp4", "not a recognised media file"),
        # Long text named .txt may be claimed by FFmpeg's tty (ANSI art) demuxer: refused as text then.
        ("notes.txt", "(not a recognised media file|is a still image or text)"),
        ("notes", "not a recognised media file"),
        ("page.html", "not a recognised media file"),
        # FFmpeg's tty demuxer claims .nfo text "art": the core refuses it as text.
        ("readme.nfo", r"is a still image or text \(tty\)"),
    ],
)
@pytest.mark.parametrize("catch", [InvalidVideoError, ValueError])
def test_text_file(tmp_path, name, cause, catch):
    path = tmp_path / name
    path.write_text("This is not a video.\nJust some text, line after line.\n" * 20)
    with pytest.raises(catch, match=_matches(path, cause)):
        codecprim.open(path)


@pytest.mark.parametrize("name", ["noise.mp4", "noise.mkv", "noise.avi", "noise.ts", "noise.mpg", "noise.h264",
                                  "noise.m4v", "noise.bin", "noise"])
@pytest.mark.parametrize("catch", [InvalidVideoError, ValueError])
def test_random_bytes(tmp_path, name, catch):
    path = tmp_path / name
    path.write_bytes(random.Random(name).randbytes(50_000))
    with pytest.raises(catch, match=_matches(path, _NOT_A_VIDEO)):
        codecprim.open(path)


@pytest.mark.parametrize("which", ["png", "jpg", "png_as_mp4", "jpg_as_mp4"])
@pytest.mark.parametrize("catch", [InvalidVideoError, ValueError])
def test_still_image(stills, which, catch):
    path = stills[which]
    with pytest.raises(catch, match=_matches(path, r"is a still image or text \(.+\), not a video")):
        codecprim.open(path)


@pytest.mark.parametrize("which", ["wav", "m4a", "mp3"])
@pytest.mark.parametrize("catch", [InvalidVideoError, ValueError])
def test_audio_only(audio, which, catch):
    path = audio[which]
    with pytest.raises(catch, match=_matches(path, r"has no video stream \(audio-only")):
        codecprim.open(path)


@pytest.mark.parametrize("name", ["folder", "looks_like.mp4"])
@pytest.mark.parametrize("catch", [VideoIOError, OSError])
def test_directory(tmp_path, name, catch):
    path = tmp_path / name
    path.mkdir()
    with pytest.raises(catch, match=_matches(path, "is a directory")):
        codecprim.open(path)


def test_file_name_with_spaces_and_unicode(tmp_path):
    path = tmp_path / "my vidéo – 1.mp4"
    path.write_bytes(b"")
    with pytest.raises(InvalidVideoError, match=_matches(path, "the file is empty")):
        codecprim.open(path)


def test_errors_pickle_with_path_and_cause(tmp_path):
    # Errors cross DataLoader worker processes.
    path = tmp_path / "missing.mp4"
    with pytest.raises(VideoNotFoundError) as info:
        codecprim.open(path)
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is VideoNotFoundError and isinstance(again, FileNotFoundError)
    assert (again.path, again.cause, str(again)) == (info.value.path, info.value.cause, str(info.value))
    length = codecprim.UnknownLengthError(str(path), "is read once")
    again = pickle.loads(pickle.dumps(length))
    assert type(again) is codecprim.UnknownLengthError and isinstance(again, TypeError)
    assert (again.path, again.cause) == (str(path), "is read once")


# -- truncated videos -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0.5, 0.9, 10])
@pytest.mark.parametrize("catch", [InvalidVideoError, ValueError])
def test_mp4_cut_before_moov(clips, tmp_path, keep, catch):
    data = clips["mp4"].read_bytes()
    assert data.rfind(b"moov") > data.find(b"mdat"), "the moov atom must come last for this test"
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    with pytest.raises(catch, match=_matches(path, "not a recognised media file")):
        codecprim.open(path)


def test_mp4_faststart_cut_mid_stream(tmp_path):
    full = tmp_path / "faststart.mp4"
    _ffmpeg("-f", "lavfi", "-i", _SOURCE, "-pix_fmt", "yuv420p", *_ENCODERS["mp4"], "-movflags", "+faststart", full)
    data = full.read_bytes()
    path = tmp_path / "faststart_cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    frames, stats = _read_all(path)
    assert 5 < len(frames) < _FRAMES
    assert [f[0] for f in frames] == list(range(len(frames)))


@pytest.mark.parametrize("ext", ["mkv", "avi", "ts", "mpg"])
@pytest.mark.parametrize("residuals", [True, False])
def test_cut_mid_stream_gives_the_frames_that_decode(clips, tmp_path, ext, residuals):
    data = clips[ext].read_bytes()
    path = tmp_path / f"cut.{ext}"
    path.write_bytes(data[: len(data) // 2])
    frames, stats = _read_all(path, residuals=residuals)
    assert 5 < len(frames) < _FRAMES, len(frames)
    assert [f[0] for f in frames] == list(range(len(frames))), "display indices stay contiguous"
    assert frames[0][1] == "I"
    assert stats.frames == len(frames)
    with codecprim.open(path, residuals=residuals) as reader:
        assert len(reader) >= len(frames) - 2  # the parser pass sees (about) the same packets
        gops = reader.gops
        assert gops and sum(g.num_frames for g in gops) == len(reader)


# -- bit flips in the payload -----------------------------------------------------------------------------------


def _packets(path):
    """(pos, size, flags) of the video packets, from ffprobe."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pos,size,flags",
         "-of", "csv=p=0", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout
    rows = []
    for line in out.split():
        pos, size, flags = line.split(",")[:3]
        if pos.isdigit() and size.isdigit():
            rows.append((int(pos), int(size), flags))
    return rows


def _flip_payload(src: Path, dst: Path, seed: int) -> int:
    """Inverts a few bytes in the middle of every fourth non-key packet; returns how many bytes changed."""
    data = bytearray(src.read_bytes())
    rng = random.Random(seed)
    packets = [p for p in _packets(src) if "K" not in p[2] and p[1] > 64]
    changed = 0
    for pos, size, _ in packets[1::4]:
        for _ in range(4):
            k = pos + rng.randrange(size // 4, size * 3 // 4)
            data[k] ^= 0xFF
            changed += 1
    dst.write_bytes(bytes(data))
    return changed


@pytest.mark.parametrize("ext", ["mkv", "avi", "ts", "mpg", "mp4"])
def test_bit_flips_decode_count_damage_and_raise_in_strict_mode(clips, tmp_path, ext):
    path = tmp_path / f"flipped.{ext}"
    assert _flip_payload(clips[ext], path, seed=7) > 0
    clean_frames, clean_stats = _read_all(clips[ext])
    assert len(clean_frames) == _FRAMES and clean_stats.skipped == 0 and clean_stats.corrupt_frames == 0

    for residuals in (True, False):
        frames, stats = _read_all(path, residuals=residuals)
        assert len(frames) >= _FRAMES - 5, "damaged packets are skipped, not the rest of the stream"
        # Where the decoder dropped a frame its position stays empty: frame.index is the index's position.
        positions = [f[0] for f in frames]
        assert positions == sorted(set(positions)) and positions[-1] < _FRAMES
        damage = stats.skipped_packets + stats.corrupt_frames + stats.decode_errors
        assert damage > 0, stats
        assert stats.skipped == stats.skipped_packets + stats.decode_errors

    for catch in (InvalidVideoError, ValueError, CodecprimError):
        with pytest.raises(catch, match=_matches(path, r"damaged (frame|packet) \d+")):
            _read_all(path, strict=True)


def test_strict_mode_reads_a_clean_clip(clips):
    frames, stats = _read_all(clips["mkv"], strict=True)
    assert len(frames) == _FRAMES and stats.skipped == 0 and stats.corrupt_frames == 0


# -- invalid arguments and closed readers -----------------------------------------------------------------------


def test_read_gop_out_of_range(clips):
    path = clips["mkv"]
    with codecprim.open(path) as reader:
        n = len(reader.gops)
        assert n >= 2
        for bad in (n, n + 7, -n - 1, 10**9):
            with pytest.raises(IndexError, match=re.escape(str(path)) + r": GOP -?\d+ out of range"):
                reader.read_gop(bad)
        with pytest.raises(TypeError, match="GOP number must be an int"):
            reader.read_gop("0")
        with pytest.raises(TypeError):
            reader.read_gop(1.0)
        assert [f.index for f in reader.read_gop(-1)] == list(reader.gops[-1].frame_range)
        for start, stop in ((-1, 3), (5, 2), (0, _FRAMES + 1)):
            with pytest.raises(IndexError, match=re.escape(str(path)) + r": frame range"):
                reader.read_frames(start, stop)
        assert reader.read_frames(4, 4) == []


@pytest.mark.parametrize("catch", [InvalidVideoError, ValueError, CodecprimError])
def test_closed_reader(clips, catch):
    path = clips["mkv"]
    reader = codecprim.open(path)
    assert len(reader) == _FRAMES
    reader.close()
    reader.close()  # closing twice is harmless
    closed = _matches(path, "the reader is closed")
    for use in (lambda: list(reader), lambda: reader.stats, lambda: reader.read_gop(0),
                lambda: reader.read_frames(0, 2)):
        with pytest.raises(catch, match=closed):
            use()
    with pytest.raises(catch, match=closed), codecprim.open(path) as other:
        other.close()
        next(iter(other))


def test_iterator_resumed_after_close_raises_a_codecprim_error(clips):
    """An iterator started before close() must fail like every other use of a closed reader.

    Core bug: Reader.__iter__ holds the _core.Reader it started with; PyReader::reader() in csrc/bindings.cpp
    throws std::runtime_error("the reader is closed"), which reaches Python as a bare RuntimeError without the
    file's path instead of InvalidVideoError.
    """
    path = clips["mkv"]
    reader = codecprim.open(path)
    frames = iter(reader)
    next(frames)
    reader.close()
    with pytest.raises(InvalidVideoError, match=_matches(path, "the reader is closed")):
        next(frames)


@pytest.mark.parametrize("catch", [InvalidVideoError, ValueError])
def test_damaged_header_is_invalid_data_not_an_io_error(clips, tmp_path, catch):
    """An AVI whose BITMAPINFOHEADER lost its bit count and compression (found by test_fuzz) is damaged data.

    Core bug: the demuxer then announces raw video of 0 bits per pixel, avcodec_open2 fails with AVERROR(EINVAL),
    and throw_av_error (csrc/errors.cpp) maps every code but ENOENT/INVALIDDATA/EOF/*_NOT_FOUND to kIo, so this
    surfaces as VideoIOError (an OSError: "cannot open the rawvideo decoder (Invalid argument)").
    """
    data = bytearray(clips["avi"].read_bytes())
    at = data.find(b"strf") + 8 + 12  # BITMAPINFOHEADER: size, width, height, then planes, bit count, compression
    data[at:at + 8] = bytes(8)
    path = tmp_path / "zeroed_header.avi"
    path.write_bytes(bytes(data))
    with pytest.raises(catch, match=re.escape(str(path)) + ": "):
        codecprim.open(path)


def test_ffmpeg_log_level_decides_what_ffmpeg_prints(clips, tmp_path):
    # A fresh interpreter: PyAV, once imported (the oracle tests do), routes FFmpeg's log through its own callback.
    path = tmp_path / "flipped.mp4"
    assert _flip_payload(clips["mp4"], path, seed=7) > 0
    script = """
import sys, codecprim
assert codecprim.set_ffmpeg_log_level(sys.argv[2]) == "info"
assert codecprim.ffmpeg_log_level() == sys.argv[2]
with codecprim.open(sys.argv[1]) as reader:
    print(len(list(reader)))
"""

    def run(level):
        done = subprocess.run([sys.executable, "-c", script, str(path), level], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return int(done.stdout), done.stderr

    frames_error, stderr_error = run("error")
    frames_quiet, stderr_quiet = run("quiet")
    assert " @ 0x" in stderr_error  # the decoder's own "[h264 @ 0x...] ..." complaints
    assert stderr_quiet == ""
    assert frames_error == frames_quiet  # the level changes what is printed, not what is decoded
    previous = codecprim.ffmpeg_log_level()
    with pytest.raises(ValueError, match="unknown FFmpeg log level 'loud'"):
        codecprim.set_ffmpeg_log_level("loud")
    assert codecprim.ffmpeg_log_level() == previous
