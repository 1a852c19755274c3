"""VideoDataset's seeding, epochs and error policy; CodecClipDataset items equal the per-video function."""

from __future__ import annotations

import pickle

import pytest
import torch

from codecprim import codec_patches
from codecprim.data import CodecClipDataset, Failure, VideoDataset
from codecprim.errors import InvalidVideoError, VideoNotFoundError

from clip_checks import assert_same_clip

OPTIONS = dict(num_frames=4, size=56, budget=24)


def test_sample_seed_depends_on_seed_epoch_and_index_only():
    a, b = VideoDataset(["x"] * 4, seed=1), VideoDataset(["y"] * 4, seed=1)
    assert [a.sample_seed(i) for i in range(4)] == [b.sample_seed(i) for i in range(4)]
    assert len({a.sample_seed(i) for i in range(4)}) == 4
    before = a.sample_seed(0)
    a.set_epoch(1)
    assert a.sample_seed(0) != before and VideoDataset(["x"], seed=2).sample_seed(0) != before
    a.set_epoch(0)
    assert a.sample_seed(0) == before
    assert pickle.loads(pickle.dumps(a)).sample_seed(3) == a.sample_seed(3)


def test_bad_policy_and_arguments_fail_in_the_main_process(media):
    with pytest.raises(ValueError, match="on_error must be one of 'skip', 'raise'"):
        VideoDataset(["x"], on_error="ignore")
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        VideoDataset(["x"], seed=-1)
    with pytest.raises(ValueError, match="a list of video files"):
        VideoDataset("one.mp4")
    with pytest.raises(ValueError, match="size \\(50\\) must be a multiple of patch"):
        CodecClipDataset([media["h264_bframes"]], size=50)
    with pytest.raises(ValueError, match="modes key must be one of"):
        CodecClipDataset([media["h264_bframes"]], modes={"video": 1.0})


def test_items_equal_the_per_video_function_and_move_with_the_epoch(media):
    path = media["h264_no_bframes"]  # 50 frames: many window positions
    dataset = CodecClipDataset([path, path], seed=5, **OPTIONS)
    first = dataset[0]
    assert_same_clip(first, codec_patches(path, seed=dataset.sample_seed(0), **OPTIONS))
    assert_same_clip(first, dataset[0])  # same seed and epoch: the same sample
    starts = {int(dataset[i].frame_indices[0]) for i in range(2)}
    for epoch in range(1, 4):
        dataset.set_epoch(epoch)
        starts |= {int(dataset[i].frame_indices[0]) for i in range(2)}
    assert len(starts) > 3  # random windows, not always frames 0..3


def test_mixed_modes_give_one_item_type(media):
    path = media["h264_no_bframes"]
    # seed 1's first 4 items draw all three modes (the draw's proportions are checked below)
    dataset = CodecClipDataset([path] * 4, seed=1, modes={"codec": 0.5, "chunks": 0.375, "image": 0.125},
                               num_frames=8, size=56, budget=32)
    items = [dataset[i] for i in range(4)]
    assert {c.mode for c in items} == {"codec", "chunks", "image"}
    for i, clip in enumerate(items):
        assert_same_clip(clip, codec_patches(path, seed=dataset.sample_seed(i), num_frames=8, size=56, budget=32,
                                             modes={"codec": 0.5, "chunks": 0.375, "image": 0.125}))
        t, hg, wg = clip.grid
        if clip.mode == "chunks":  # budget 32 holds two whole 4x4 frames: one from each half of the window
            assert t == 2 and clip.pixels.shape[0] == 2 * 16 and (clip.tier == 2).all()
        if clip.mode == "image":
            assert t == 1 and clip.positions[:, 0].eq(0).all() and clip.pixels.shape[0] == 16


def test_skip_returns_a_failure_and_raise_the_typed_error(media, tmp_path):
    missing = tmp_path / "missing.mp4"
    text = tmp_path / "text.mp4"
    text.write_text("not a video\n" * 10)
    skip = CodecClipDataset([missing, text], **OPTIONS)
    assert skip[0] == Failure(str(missing), skip[0].cause, "VideoNotFoundError")
    assert skip[1].error_type == "InvalidVideoError" and skip[1].path == str(text)
    with pytest.raises(VideoNotFoundError):
        CodecClipDataset([missing], on_error="raise", **OPTIONS)[0]
    with pytest.raises(InvalidVideoError, match="text.mp4"):
        CodecClipDataset([text], on_error="raise", **OPTIONS)[0]


def test_mode_draws_follow_the_weights():
    from codecprim.patches import _choose_mode

    weights = {"codec": 0.5, "chunks": 0.375, "image": 0.125}
    dataset = VideoDataset(["x"] * 4000, seed=0)
    drawn = [_choose_mode(weights, dataset.generator(i)) for i in range(4000)]
    for mode, weight in weights.items():
        assert abs(drawn.count(mode) / 4000 - weight) < 0.03  # 4 standard deviations at most
