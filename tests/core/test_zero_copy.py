"""Tensors alias the buffers the core filled (no copy on the way to Python) and own them: they outlive the
reader, its close() and its garbage collection, with their contents unchanged.
"""

from __future__ import annotations

import gc

import pytest
import torch

import codecprim

_CLIPS = ["h264_bframes", "mpeg4_native_bframes", "mpeg2"]
_ALIASED = ("luma", "residual", "motion_vectors")


def _snapshot(frames):
    return [{k: getattr(f, k).clone() for k in ("luma", "residual", "motion_vectors", "chroma", "qp")
             if getattr(f, k) is not None} for f in frames]


def _assert_unchanged(frames, expected):
    assert len(frames) == len(expected)
    for f, snap in zip(frames, expected):
        for key, tensor in snap.items():
            assert torch.equal(getattr(f, key), tensor), (f.index, key)


@pytest.mark.parametrize("clip", _CLIPS)
@pytest.mark.parametrize("residuals", [True, False])
def test_tensors_alias_the_core_buffers(media, clip, residuals):
    checked = {k: 0 for k in _ALIASED}
    with codecprim.open(media[clip], residuals=residuals) as reader:
        for frame in reader:
            for key in _ALIASED:
                tensor = getattr(frame, key)
                if tensor is None:
                    assert key != "motion_vectors"
                    assert frame.buffer_addresses[key] == 0, "no buffer was filled"
                    continue
                if tensor.numel() == 0:
                    continue  # a (0, 10) array has no storage to share (numpy gives it its own)
                assert tensor.data_ptr() == frame.buffer_addresses[key], (frame.index, key)
                assert tensor.is_contiguous() and tensor.storage_offset() == 0
                assert tensor.data_ptr() % 64 == 0, "OwnedBuffer allocates 64-byte aligned"
                checked[key] += 1
    assert checked["motion_vectors"] > 10
    if residuals:
        assert checked["luma"] > 10 and checked["residual"] > 10
    else:
        assert checked["luma"] == 0 and checked["residual"] == 0


def test_frames_do_not_share_buffers(media):
    with codecprim.open(media["h264_bframes"], chroma=True) as reader:
        frames = list(reader)
    spans = []
    for f in frames:
        for t in (f.luma, f.residual, f.motion_vectors, f.chroma, f.qp):
            if t is not None and t.numel() > 0:
                spans.append((t.data_ptr(), t.data_ptr() + t.numel() * t.element_size()))
    spans.sort()
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        assert a1 <= b0, "two held tensors overlap"
    # Writing into one frame's tensor leaves the next frame alone.
    before = frames[1].luma.clone()
    frames[0].luma.fill_(7)
    assert torch.equal(frames[1].luma, before)


@pytest.mark.parametrize("clip", _CLIPS)
def test_tensors_outlive_close_and_collection(media, clip):
    reader = codecprim.open(media[clip], chroma=True)
    frames = list(reader)
    expected = _snapshot(frames)
    reader.close()
    gc.collect()
    _assert_unchanged(frames, expected)

    # Garbage-collect the reader too, then churn the allocator so freed memory would be reused.
    del reader
    gc.collect()
    churn = []
    for _ in range(3):
        with codecprim.open(media[clip], chroma=True) as other:
            churn.extend(other)
    churn.append(bytearray(32 << 20))
    _assert_unchanged(frames, expected)


def test_frame_outlives_a_reader_that_was_never_closed(media):
    def first_p_frame():
        reader = codecprim.open(media["h264_bframes"])
        return next(f for f in reader if f.pict_type == "P")  # the reader goes out of scope unclosed

    frame = first_p_frame()
    gc.collect()
    kept = (frame.luma.clone(), frame.residual.clone(), frame.motion_vectors.clone())
    junk = [torch.full((240, 320), 255, dtype=torch.uint8) for _ in range(50)]
    assert torch.equal(frame.luma, kept[0])
    assert torch.equal(frame.residual, kept[1])
    assert torch.equal(frame.motion_vectors, kept[2])
    del junk


def test_dropped_frames_buffers_are_recycled_and_rewritten_whole(media):
    """Frame-sized buffers (the 320x240 residual is 150 KiB) go back to the core's pool when their tensor dies,
    so a streaming consumer gets the same few blocks again instead of fresh pages; a recycled block still
    holding an older frame's samples must not show through: the results equal those of fresh buffers."""
    path = media["h264_bframes"]
    with codecprim.open(path) as reader:
        held = list(reader)  # every buffer alive at once: none can be recycled
    addresses, streamed = set(), 0
    with codecprim.open(path) as reader:
        for frame, fresh in zip(reader, held):
            if frame.residual is None:
                continue
            addresses.add(frame.residual.data_ptr())
            streamed += 1
            assert torch.equal(frame.residual, fresh.residual), frame.index
            assert torch.equal(frame.luma, fresh.luma), frame.index
    assert streamed > 20 and len(addresses) <= streamed // 4
