"""The intra-op thread pin around the per-video functions: the caller's count comes back, results do not change."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import codecprim.patches as patches
from codecprim._intra_op import intra_op_threads
from codecprim.errors import CodecprimError
from clip_checks import assert_same_clip


def spy_threads(monkeypatch, module, name: str) -> list[int]:
    """Replace ``module.name`` by a wrapper recording torch's thread count at each call; returns the record."""
    seen = []
    original = getattr(module, name)

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return seen


@pytest.fixture
def three_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield 3
    torch.set_num_threads(before)


def test_context_and_decorator_restore_the_callers_count(three_threads):
    @intra_op_threads(1)
    def inside():
        return torch.get_num_threads()

    assert inside() == 1 and torch.get_num_threads() == 3
    with intra_op_threads(2):
        assert torch.get_num_threads() == 2
        with intra_op_threads(1):  # nested: the outermost setting holds
            assert inside() == 2
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 3
    with pytest.raises(KeyError):
        with intra_op_threads(1):
            raise KeyError("boom")
    assert torch.get_num_threads() == 3
    with pytest.raises(ValueError, match="positive int"):
        intra_op_threads(0)


def test_codec_patches_runs_at_one_thread_and_gives_the_same_clip(media, three_threads, monkeypatch):
    path = media["h264_bframes"]
    seen = spy_threads(monkeypatch, patches, "select_patches")
    at_three = patches.codec_patches(path, num_frames=16, budget=300, seed=5)
    assert seen == [1] and torch.get_num_threads() == 3
    torch.set_num_threads(1)
    assert_same_clip(patches.codec_patches(path, num_frames=16, budget=300, seed=5), at_three)
    torch.set_num_threads(3)
    with pytest.raises(CodecprimError):
        patches.codec_patches(Path(path).with_name("missing.mp4"))
    assert torch.get_num_threads() == 3


def test_cope_sample_runs_at_one_thread_and_restores_the_count(media, three_threads, monkeypatch):
    import codecprim.data.cope as cope

    seen = spy_threads(monkeypatch, cope, "fuse_fields")
    at_three = cope.cope_sample(media["h264_no_bframes"], max_gops=2, fuse=4)
    assert seen and set(seen) == {1} and torch.get_num_threads() == 3
    torch.set_num_threads(1)
    at_one = cope.cope_sample(media["h264_no_bframes"], max_gops=2, fuse=4)
    torch.set_num_threads(3)
    assert torch.equal(at_three.motion, at_one.motion) and torch.equal(at_three.residual, at_one.residual)
    assert torch.equal(at_three.keyframes, at_one.keyframes)
