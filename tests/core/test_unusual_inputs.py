"""Streams users meet in the wild: raw elementary streams, high bit depth, 4:4:4, interlacing, other codecs."""

import subprocess

import numpy as np
import pytest

import codecprim
from media import ffmpeg_available

pytestmark = pytest.mark.skipif(not ffmpeg_available(), reason="the ffmpeg CLI generates these clips")

SOURCE = ["-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=1.2"]
CASES = {
    "raw.h264": ["-c:v", "libx264", "-bf", "2", "-g", "12", "-f", "h264"],
    "raw.m4v": ["-c:v", "mpeg4", "-bf", "1", "-g", "12", "-f", "m4v"],
    "h264_10bit.mp4": ["-pix_fmt", "yuv420p10le", "-c:v", "libx264"],
    "h264_444.mp4": ["-pix_fmt", "yuv444p", "-c:v", "libx264"],
    "h264_interlaced.mkv": ["-vf", "interlace", "-c:v", "libx264", "-flags", "+ildct+ilme", "-x264-params", "tff=1"],
    "vp8.webm": ["-c:v", "libvpx", "-deadline", "realtime"],
    "mjpeg.avi": ["-c:v", "mjpeg"],
    # Lossless, no bitstream parser; a key frame every 10, and frames between depend on the previous ones' state.
    "ffv1.mkv": ["-c:v", "ffv1", "-g", "10"],
}


@pytest.fixture(scope="module")
def unusual(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unusual")
    paths = {}
    for name, args in CASES.items():
        path = folder / name
        subprocess.run(["ffmpeg", "-v", "error", "-y", *SOURCE, *args, str(path)], check=True, capture_output=True)
        paths[name] = path
    return paths


@pytest.mark.parametrize("name", list(CASES))
def test_reads_every_frame_and_every_gop(unusual, name):
    with codecprim.open(unusual[name], chroma=True) as reader:
        frames = list(reader)
        # 30 frames, except that the interlace filter weaves two frames into one.
        assert len(frames) == len(reader) == (15 if "interlaced" in name else 30)
        assert [f.index for f in frames] == list(range(len(frames)))
        for gop in reader.gops:
            got = reader.read_gop(gop.index)
            assert [f.index for f in got] == list(gop.frame_range)
            for f in got:
                np.testing.assert_array_equal(f.luma, frames[f.index].luma)
        assert reader.stats.skipped == 0
    for f in frames:
        assert tuple(f.luma.shape) == (240, 320) and tuple(f.chroma.shape) == (2, 120, 160)


def test_high_bit_depth_luma_is_scaled_to_8_bits_and_has_no_residual(unusual):
    with codecprim.open(unusual["h264_10bit.mp4"]) as reader:
        assert reader.info.pix_fmt == "yuv420p10le"
        assert reader.info.residual_method.startswith("none")
        frames = list(reader)
    assert sum(len(f.motion_vectors) for f in frames) > 0  # vectors are still exported
    assert all(f.residual is None for f in frames)
    # testsrc2 spans the full range: 10-bit values shifted down still do.
    assert int(frames[0].luma.max()) > 200 and int(frames[0].luma.min()) < 40


def test_444_chroma_is_averaged_to_420(unusual):
    with codecprim.open(unusual["h264_444.mp4"], chroma=True) as reader:
        frame = next(iter(reader))
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(unusual["h264_444.mp4"]), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "yuv444p", "-"], capture_output=True, check=True).stdout
    cb = np.frombuffer(raw, np.uint8)[320 * 240:2 * 320 * 240].reshape(240, 320).astype(int)
    expected = (cb[0::2, 0::2] + cb[0::2, 1::2] + cb[1::2, 0::2] + cb[1::2, 1::2] + 2) >> 2
    np.testing.assert_array_equal(frame.chroma[0].numpy(), expected)


def test_elementary_streams_without_timestamps_still_order_frames(unusual):
    with codecprim.open(unusual["raw.m4v"]) as reader:
        types = reader.pict_types
        decoded = [f.pict_type for f in reader]
    assert "B" in types and types == "".join(decoded)


@pytest.mark.parametrize("name", ["ffv1.mkv", "mjpeg.avi", "vp8.webm"])
def test_frame_types_agree_between_the_index_and_the_decoder(unusual, name):
    # Without a parser the index tells key packets from the others; FFV1's decoder calls every frame I, so the
    # reader applies the index's rule, and a recipe that checks one against the other (cope_sample) reads it.
    with codecprim.open(unusual[name], chroma=True) as reader:
        types = reader.pict_types
        frames = list(reader)
        assert types == "".join(f.pict_type for f in frames)
        assert all((t == "I") == f.key_frame for t, f in zip(types, frames))
        sparse = reader.frames_at([23, 5, 29])  # mid-GOP frames: decoded from their GOP's key frame
        for f in sparse:
            np.testing.assert_array_equal(f.luma, frames[f.index].luma)
    if name == "ffv1.mkv":
        assert types == ("I" + "P" * 9) * 3
    sample = codecprim.data.cope_sample(unusual[name], image_size=32, delta_size=32)
    assert sample.keyframe_indices.tolist() == [i for i, t in enumerate(types) if t == "I"][:len(sample.keyframes)]
