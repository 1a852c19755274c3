"""Motion vectors equal FFmpeg's own export (export_mvs side data), row for row, for every codec that exports them."""

import numpy as np
import pytest

import codecprim
from pyav_oracle import decode, require_same_libavcodec

EXPORTING = [
    "h264_no_bframes", "h264_bframes", "h264_scenecut", "h264_odd_size",
    "mpeg4_native_gop2", "mpeg4_xvid", "mpeg4_native_bframes",
    "mpeg2", "mpeg1", "h263", "h263p",
]


def _assert_same_vectors(path):
    require_same_libavcodec()
    oracle = decode(path)
    with codecprim.open(path) as reader:
        frames = list(reader)
    assert len(frames) == len(oracle)
    for ours, theirs in zip(frames, oracle):
        assert ours.motion_vectors.dtype == codecprim.reader.torch.int32
        assert ours.motion_vectors.shape[1] == 10
        np.testing.assert_array_equal(ours.motion_vectors.numpy(), theirs.motion_vectors, err_msg=f"frame {ours.index}")
    return frames


@pytest.mark.parametrize("name", EXPORTING)
def test_vectors_equal_ffmpeg_export(media, name):
    frames = _assert_same_vectors(media[name])
    assert sum(len(f.motion_vectors) for f in frames) > 0
    if name in ("h264_bframes", "mpeg4_native_bframes", "mpeg2"):
        # B-frames carry both directions.
        sources = np.concatenate([f.motion_vectors[:, 0].numpy() for f in frames if f.pict_type == "B"])
        assert set(sources.tolist()) == {-1, 1}


def test_vectors_equal_ffmpeg_export_on_real_footage(real_clips):
    for name in ("bikes", "carphone_pristine"):
        _assert_same_vectors(real_clips[name])


def test_layout_follows_avmotionvector(media):
    with codecprim.open(media["h264_no_bframes"]) as reader:
        frame = next(f for f in reader if f.pict_type == "P")
    mv = frame.motion_vectors.numpy()
    source, w, h, src_x, src_y, dst_x, dst_y, motion_x, motion_y, scale = mv.T
    assert codecprim.MOTION_VECTOR_COLUMNS[7] == "motion_x"
    assert set(np.unique(scale)) == {4}  # H.264 vectors are quarter-pel
    assert set(np.unique(w)) <= {8, 16} and set(np.unique(h)) <= {8, 16}
    # FFmpeg's convention: src = dst + motion / scale, truncated toward zero.
    np.testing.assert_array_equal(src_x, dst_x + np.trunc(motion_x / scale).astype(int))
    np.testing.assert_array_equal(src_y, dst_y + np.trunc(motion_y / scale).astype(int))
    assert (source == -1).all()


@pytest.mark.parametrize("name", ["hevc", "vp9", "av1"])
def test_codecs_without_exported_vectors_say_so(media, name):
    with codecprim.open(media[name]) as reader:
        assert reader.info.motion_vectors == "none"
        assert reader.info.residual_method == "none"
        frames = list(reader)
    assert len(frames) > 10
    for f in frames:
        assert tuple(f.motion_vectors.shape) == (0, 10) and f.motion_vectors.dtype == codecprim.reader.torch.int32
        assert f.residual is None
        assert f.luma is not None and f.luma.shape == (240, 320)
