"""The reader's API as the issue spells it, and the extras users rely on."""

import numpy as np
import pytest
import torch

import codecprim
from residual_oracle import ffmpeg_y_planes


def test_info_and_frame_fields(media):
    path = media["h264_bframes"]
    with codecprim.open(path, residuals=True, threads=1, strict=False) as reader:
        info = reader.info
        assert (info.codec, info.width, info.height) == ("h264", 320, 240)
        assert info.fps == pytest.approx(25.0)
        assert info.num_frames == 50 and len(reader) == 50
        assert info.duration_seconds == pytest.approx(2.0, abs=0.05)
        assert info.motion_vectors == "exported" and info.pix_fmt == "yuv420p"
        frames = list(reader)
    assert [f.index for f in frames] == list(range(50))
    for f in frames:
        assert f.pict_type in ("I", "P", "B")
        assert isinstance(f.pts_seconds, float) and isinstance(f.gop_index, int)
        assert f.motion_vectors.dtype == torch.int32 and f.motion_vectors.shape[1] == 10
        assert f.luma.dtype == torch.uint8 and tuple(f.luma.shape) == (240, 320)
        assert f.packet_size > 0 and f.decode_index >= 0
        if f.pict_type == "I":
            assert f.residual is None and len(f.motion_vectors) == 0
        else:
            assert f.residual.dtype == torch.int16 and tuple(f.residual.shape) == (240, 320)
    assert frames[0].key_frame and frames[0].pict_type == "I"
    assert "motion_vectors=(" in repr(frames[1]) and "tensor" not in repr(frames[1])


@pytest.mark.parametrize("name", ["h264_odd_size", "mpeg4_native_odd_gop2", "mpeg2"])
def test_luma_equals_ffmpeg_decode(media, name):
    path = media[name]
    with codecprim.open(path) as reader:
        w, h = reader.info.width, reader.info.height
        frames = list(reader)
    planes = ffmpeg_y_planes(path, w, h)
    assert len(frames) == len(planes)
    for f in frames:
        np.testing.assert_array_equal(f.luma.numpy(), planes[f.index])


def test_chroma_planes_equal_ffmpeg_decode(media, tmp_path):
    import subprocess

    path = media["h264_odd_size"]  # 330x190: odd chroma rounding
    with codecprim.open(path, chroma=True) as reader:
        frames = list(reader)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
                         capture_output=True, check=True).stdout
    w, h, cw, ch = 330, 190, 165, 95
    planes = np.frombuffer(raw, np.uint8).reshape(len(frames), -1)
    for f in frames:
        assert f.chroma.dtype == torch.uint8 and tuple(f.chroma.shape) == (2, ch, cw)
        cb = planes[f.index, w * h:w * h + cw * ch].reshape(ch, cw)
        cr = planes[f.index, w * h + cw * ch:].reshape(ch, cw)
        np.testing.assert_array_equal(f.chroma[0].numpy(), cb)
        np.testing.assert_array_equal(f.chroma[1].numpy(), cr)


def test_chroma_off_by_default(media):
    with codecprim.open(media["h264_no_bframes"]) as reader:
        assert next(iter(reader)).chroma is None


# MPEG-2 reports its quantiser scale in doubled units (up to 112 with the non-linear scale).
@pytest.mark.parametrize("name, low, high", [("h264_no_bframes", 0, 51), ("mpeg4_xvid", 1, 31), ("mpeg2", 1, 112)])
def test_qp_map_per_macroblock(media, name, low, high):
    with codecprim.open(media[name]) as reader:
        frames = list(reader)
        w, h = reader.info.width, reader.info.height
    for f in frames:
        if f.qp is None:
            # MPEG-1/2 decoders emit their last anchor at flush without any side data (no vectors either).
            assert name == "mpeg2" and f is frames[-1] and len(f.motion_vectors) == 0
            continue
        assert f.qp.dtype == torch.int8
        assert tuple(f.qp.shape) == ((h + 15) // 16, (w + 15) // 16)
        assert low <= int(f.qp.min()) and int(f.qp.max()) <= high


def test_qp_follows_the_encoder_setting(media):
    # -qp 51 fixes P-frames at 51 (x264 gives I-frames 3 less: its default I/P ratio).
    with codecprim.open(media["h264_qp51_oracle"]) as reader:
        frames = list(reader)
    assert all(int(f.qp.min()) == int(f.qp.max()) == 51 for f in frames if f.pict_type == "P")
    assert all(int(f.qp.max()) == 48 for f in frames if f.pict_type == "I")


def test_reader_iterates_from_the_start_each_time(media):
    with codecprim.open(media["mpeg4_xvid"]) as reader:
        first = [f.index for f in reader]
        second = [f.index for f in reader]
    assert first == second == list(range(len(first)))


def test_closed_reader_refuses(media):
    reader = codecprim.open(media["h264_no_bframes"])
    reader.close()
    with pytest.raises(codecprim.InvalidVideoError, match="closed"):
        list(reader)


def test_ffmpeg_versions():
    versions = codecprim.ffmpeg_versions()
    assert set(versions) >= {"libavcodec", "libavformat", "libavutil"}
