"""``open(..., residuals=False, pixels=True)``: the full decode's pictures without the residual pass.

Consumers that warp pictures themselves (the CoPE recipe) need every picture exact but not the codec-residual;
PyAV decoding the same libavcodec is the oracle for the pictures, and the default path for everything else.
"""

from __future__ import annotations

import numpy as np
import pytest

import codecprim

from pyav_oracle import decoded_frames, luma


def pyav_luma(path) -> list[np.ndarray]:
    return [luma(frame) for frame, _ in decoded_frames(path)]


# h264_odd_size is cropped to odd sizes: the residual pass writes the full path's luma, unaligned rows included.
@pytest.mark.parametrize("name", ["h264_bframes", "h264_odd_size", "mpeg4_native_bframes", "mpeg2", "hevc"])
def test_pictures_equal_the_full_path_and_pyav(media, name):
    path = media[name]
    with codecprim.open(path, residuals=False, pixels=True, chroma=True) as reader:
        light = list(reader)
        light_seconds = reader.stats.residual_seconds  # the timer's own reads only
    with codecprim.open(path, chroma=True) as reader:
        full = list(reader)
        if reader.info.residual_method != "none":
            assert light_seconds < 0.2 * reader.stats.residual_seconds
    oracle = pyav_luma(path)
    assert len(light) == len(full) == len(oracle)
    for a, b, want in zip(light, full, oracle):
        assert a.residual is None
        assert np.array_equal(a.luma.numpy(), want) and np.array_equal(a.luma.numpy(), b.luma.numpy())
        assert np.array_equal(a.chroma.numpy(), b.chroma.numpy())
        assert np.array_equal(a.motion_vectors.numpy(), b.motion_vectors.numpy())
        assert (a.pict_type, a.pts_seconds) == (b.pict_type, b.pts_seconds)


def test_sparse_requests_return_the_same_pictures(media):
    path = media["h264_bframes"]
    with codecprim.open(path, residuals=False, pixels=True) as reader:
        picks = reader.frames_at([17, 3, 40, 3])
        assert [f.index for f in picks] == [17, 3, 40, 3]
    oracle = pyav_luma(path)
    assert all(np.array_equal(f.luma.numpy(), oracle[f.index]) for f in picks)


def test_the_fast_path_stays_pictureless_and_bad_combinations_raise(media):
    path = media["h264_bframes"]
    with codecprim.open(path, residuals=False) as reader:
        assert next(iter(reader)).luma is None
    with pytest.raises(ValueError, match="residuals need the pictures"):
        codecprim.open(path, residuals=True, pixels=False)
