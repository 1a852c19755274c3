"""Samples and batches leaving DataLoader workers: small tensors inline, large ones in shared memory, values intact."""

from __future__ import annotations

import pickle
from dataclasses import fields
from multiprocessing.reduction import ForkingPickler

import pytest
import torch

from codecprim import codec_patches
from codecprim.data import collate_cope, collate_packed, collate_padded, cope_sample, pack_canvases, transport


def _through_queue(obj):
    """What a DataLoader worker's result becomes in the main process."""
    return pickle.loads(ForkingPickler.dumps(obj))


def _assert_same(a, b):
    assert type(a) is type(b)
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, torch.Tensor):
            assert isinstance(y, torch.Tensor) and x.dtype == y.dtype and x.shape == y.shape, f.name
            assert torch.equal(x, y) or (x.is_floating_point() and torch.equal(x.isnan(), y.isnan())
                                         and torch.equal(x.nan_to_num(), y.nan_to_num())), f.name
        else:
            assert x == y, f.name


@pytest.fixture(scope="module")
def clips(media):
    a = codec_patches(media["h264_bframes"], num_frames=6, size=56, budget=40)
    b = codec_patches(media["mpeg4_native_bframes"], num_frames=4, size=42, patch=14, budget=20)
    return a, b


def test_small_tensors_travel_inline_and_large_ones_in_shared_memory(clips, monkeypatch):
    monkeypatch.setattr(transport, "INLINE_BYTES", 4096)  # the 60 patches' pixels (35 KB) count as large here
    batch = collate_packed(list(clips))
    got = _through_queue(batch)
    _assert_same(batch, got)
    assert batch.pixels.is_shared()  # torch moved it to shared memory to send it
    small = [f.name for f in fields(batch) if isinstance(getattr(batch, f.name), torch.Tensor) and f.name != "pixels"]
    assert len(small) >= 10
    for name in small:
        assert not getattr(batch, name).is_shared(), f"{name} went through a shared-memory file"
    got.positions[0, 0] = 123  # received tensors are the process's own, writable
    assert batch.positions[0, 0] != 123


def test_every_transported_type_comes_back_equal(clips, media):
    a, b = clips
    cope = [cope_sample(media["h264_bframes"], max_gops=2, image_size=56, delta_size=56),
            cope_sample(media["mpeg4_native_bframes"], max_gops=2, image_size=56, delta_size=56)]
    objects = [a, collate_packed([a, b]), collate_padded([a, b]), cope[0], collate_cope(cope), pack_canvases(a)]
    assert {type(o) for o in objects} >= set(transport.TRANSPORTED) - {transport.DeltaPair, transport.DeltaPairBatch}
    for obj in objects:
        _assert_same(obj, _through_queue(obj))


def test_every_transported_type_is_registered_with_the_queues_pickler():
    for cls in transport.TRANSPORTED:
        assert ForkingPickler._extra_reducers.get(cls) is transport._reduce, cls.__name__


def test_tensors_numpy_cannot_hold_keep_torchs_path(clips):
    a = clips[0]
    clip = type(a)(**{f.name: getattr(a, f.name) for f in fields(a)})
    clip.saliency = a.saliency.to(torch.bfloat16)
    clip.anchor = a.saliency.to(torch.complex64).conj()  # a lazy conjugate: numpy cannot view it
    clip.tier = a.tier.to_sparse()
    got = _through_queue(clip)
    assert got.saliency.dtype == torch.bfloat16 and torch.equal(got.saliency, clip.saliency)
    assert torch.equal(got.anchor.resolve_conj(), clip.anchor.resolve_conj())
    assert got.tier.is_sparse and torch.equal(got.tier.to_dense(), a.tier)
