"""threads=0 lets the library choose (one slice thread per core), with output identical to threads=1; a bad
thread count is a bad argument (ValueError), never a bad video (InvalidVideoError)."""

from __future__ import annotations

import pytest
import torch

import codecprim
from codecprim.errors import CodecprimError

_FIELDS = ("index", "pict_type", "pts_seconds", "gop_index", "key_frame", "decode_index", "packet_size", "corrupt",
           "rounding", "inter_pixels")
_TENSORS = ("motion_vectors", "luma", "residual", "chroma", "qp")


def _read(path, **options):
    with codecprim.open(path, **options) as reader:
        return list(reader)


@pytest.mark.parametrize("name", ["h264_bframes", "mpeg4_native_bframes", "mpeg2"])
@pytest.mark.parametrize("residuals", [True, False])
def test_threads_zero_equals_one_thread(media, name, residuals):
    path = media[name]
    one = _read(path, threads=1, residuals=residuals, chroma=residuals)
    auto = _read(path, threads=0, residuals=residuals, chroma=residuals)
    assert len(one) == len(auto) > 40
    for a, b in zip(one, auto):
        for key in _FIELDS:
            assert getattr(a, key) == getattr(b, key), (a.index, key)
        for key in _TENSORS:
            x, y = getattr(a, key), getattr(b, key)
            assert (x is None) == (y is None), (a.index, key)
            if x is not None:
                assert torch.equal(x, y), (a.index, key)


def test_threads_zero_random_access(media):
    path = media["h264_bframes"]
    with codecprim.open(path, threads=0) as auto, codecprim.open(path, threads=1) as one:
        for a, b in zip(auto.frames_at([30, 2, 17]), one.frames_at([30, 2, 17])):
            assert a.index == b.index and torch.equal(a.luma, b.luma) and torch.equal(a.residual, b.residual)


@pytest.mark.parametrize("threads", [-1, -8, 1.5, 2.0, True, False, "2", None])
def test_bad_thread_count_is_a_value_error_not_a_video_error(media, threads):
    path = media["h264_bframes"]
    with pytest.raises(ValueError, match="threads must be a non-negative int") as caught:
        codecprim.open(path, threads=threads)
    assert not isinstance(caught.value, CodecprimError)
    assert str(path) in str(caught.value)
