"""The intra-op thread pin around the per-video functions: the caller's count comes back, results do not change."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import codecprim.patches as patches
from codecprim._intra_op import intra_op_threads
from codecprim.errors import CodecprimError
from clip_checks import assert_same_clip


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
    seen = []
    select = patches.select_patches

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return select(*args, **kwargs)

    monkeypatch.setattr(patches, "select_patches", spy)
    at_three = patches.codec_patches(path, num_frames=16, budget=300, seed=5)
    assert seen == [1] and torch.get_num_threads() == 3
    torch.set_num_threads(1)
    assert_same_clip(patches.codec_patches(path, num_frames=16, budget=300, seed=5), at_three)
    torch.set_num_threads(3)
    with pytest.raises(CodecprimError):
        patches.codec_patches(Path(path).with_name("missing.mp4"))
    assert torch.get_num_threads() == 3
