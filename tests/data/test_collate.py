"""Packed and padded batches of codec clips, with failures listed and dropped."""

from __future__ import annotations

import math

import pytest
import torch

from codecprim import codec_patches
from codecprim.data import Failure, PackedBatch, PaddedBatch, collate_packed, collate_padded


@pytest.fixture(scope="module")
def clips(media):
    a = codec_patches(media["h264_bframes"], num_frames=6, size=56, budget=40)
    b = codec_patches(media["mpeg4_native_bframes"], num_frames=4, size=42, patch=14, budget=20)
    return a, b


def test_packed_batch_concatenates_clips_and_lists_failures(clips):
    a, b = clips
    failure = Failure("/x/broken.mp4", "moov atom not found", "InvalidVideoError")
    batch = collate_packed([a, failure, b])
    assert isinstance(batch, PackedBatch) and len(batch) == 2
    assert batch.failures == [("/x/broken.mp4", "moov atom not found")]
    assert batch.paths == [a.path, b.path]
    assert batch.cu_seqlens.dtype == torch.int32 and batch.cu_seqlens.tolist() == [0, 40, 60]
    assert batch.max_seqlen == 40
    assert torch.equal(batch.pixels, torch.cat([a.pixels, b.pixels]))
    assert torch.equal(batch.positions, torch.cat([a.positions, b.positions]))
    assert batch.seq_index.tolist() == [0] * 40 + [1] * 20
    assert batch.grids.tolist() == [list(a.grid), list(b.grid)]
    assert batch.frame_mask.sum(1).tolist() == [6, 4]
    assert batch.frame_indices[1, 4:].eq(-1).all() and torch.equal(batch.frame_indices[0], a.frame_indices)
    assert all(math.isnan(v) for v in batch.pts_seconds[1, 4:].tolist())
    assert batch.truncated.tolist() == [False, False] and batch.modes == ["codec", "codec"]
    assert "pixels=(60, 3, 14, 14)" in repr(batch)


def test_padded_batch_masks_the_padding(clips):
    a, b = clips
    batch = collate_padded([b, a])
    assert isinstance(batch, PaddedBatch) and batch.pixels.shape == (2, 40, 3, 14, 14)
    assert batch.valid.sum(1).tolist() == [20, 40]
    assert torch.equal(batch.pixels[0, :20], b.pixels) and batch.pixels[0, 20:].eq(0).all()
    assert torch.equal(batch.positions[1], a.positions) and batch.tier[0, 20:].eq(-1).all()
    packed = collate_packed([b, a])
    assert torch.equal(batch.pixels[batch.valid], packed.pixels)  # the same tokens, in the same order


@pytest.mark.parametrize("collate", [collate_packed, collate_padded])
def test_a_batch_of_failures_is_empty_not_an_error(collate):
    batch = collate([Failure("/a.mp4", "garbage", "InvalidVideoError"), Failure("/b.mp4", "gone", "VideoNotFoundError")])
    assert len(batch) == 0 and batch.pixels.numel() == 0 and batch.positions.shape[-1] == 3
    assert batch.failures == [("/a.mp4", "garbage"), ("/b.mp4", "gone")]


def test_failure_rebuilds_its_typed_error():
    from codecprim.errors import VideoNotFoundError

    error = Failure("/b.mp4", "no such file", "VideoNotFoundError").error()
    assert type(error) is VideoNotFoundError and (error.path, error.cause) == ("/b.mp4", "no such file")
