"""Real DataLoaders (0 and 2 workers, fork and spawn) over generated and real clips, a truncated file, a
non-video and a missing file: every good sample equals the per-video function's output for its seed, every
unreadable file appears once in ``failures``, and the samples do not depend on the worker count."""

from __future__ import annotations

import pytest
from torch.utils.data import DataLoader

from codecprim import codec_patches
from codecprim.data import CodecClipDataset, Failure, collate_packed, collate_padded

from clip_checks import assert_same_clip
from media import make_damaged, make_not_video, make_truncated

OPTIONS = dict(num_frames=4, size=56, budget=24, modes={"codec": 0.5, "chunks": 0.375, "image": 0.125})


@pytest.fixture(scope="module")
def paths(media, real_clips, tmp_path_factory):
    folder = tmp_path_factory.mktemp("loader")
    return [str(p) for p in (
        media["h264_bframes"], make_not_video(folder), media["mpeg4_native_bframes"], real_clips["carphone_pristine"],
        make_truncated(folder), folder / "missing.mp4", media["h264_no_bframes"], make_damaged(folder),
    )]


def _expected(paths, epoch):
    dataset = CodecClipDataset(paths, seed=3, **OPTIONS)
    dataset.set_epoch(epoch)
    out = []
    for i, path in enumerate(paths):
        try:
            out.append(codec_patches(path, seed=dataset.sample_seed(i), **OPTIONS))
        except Exception as error:  # noqa: BLE001 - what the per-video function raises is the oracle here
            out.append(error)
    return out


@pytest.mark.parametrize("workers, context, epoch", [(0, None, 0), (2, "fork", 1), (2, "spawn", 0)])
def test_loader_equals_the_per_video_function(paths, workers, context, epoch):
    expected = _expected(paths, epoch)
    unreadable = [p for p, e in zip(paths, expected) if isinstance(e, Exception)]
    assert set(unreadable) >= {paths[1], paths[5]}  # the text file and the missing file at least
    dataset = CodecClipDataset(paths, seed=3, **OPTIONS)
    dataset.set_epoch(epoch)
    # timeout: a worker stuck on a damaged file fails the test instead of hanging it
    loader = DataLoader(dataset, batch_size=3, num_workers=workers, multiprocessing_context=context,
                        collate_fn=collate_packed, timeout=120 if workers else 0)
    got, failures = {}, []
    for batch in loader:
        failures += batch.failures
        for b, path in enumerate(batch.paths):
            lo, hi = batch.cu_seqlens[b], batch.cu_seqlens[b + 1]
            got[path] = (batch.pixels[lo:hi], batch.positions[lo:hi], batch.modes[b], bool(batch.truncated[b]))
    assert sorted(p for p, _ in failures) == sorted(unreadable)  # each once
    for path, want in zip(paths, expected):
        if isinstance(want, Exception):
            assert (path, want.cause) in failures
            continue
        pixels, positions, mode, truncated = got[path]
        assert pixels.equal(want.pixels) and positions.equal(want.positions)
        assert (mode, truncated) == (want.mode, want.truncated)


def test_items_in_workers_are_whole_clips(paths):
    """Beyond the batch's fields: an item made in a spawned worker is the same CodecClip, field for field."""
    dataset = CodecClipDataset(paths[:1] + paths[2:4], seed=3, **OPTIONS)
    loader = DataLoader(dataset, batch_size=None, num_workers=1, multiprocessing_context="fork")
    for i, clip in enumerate(loader):
        assert_same_clip(clip, codec_patches(dataset.paths[i], seed=dataset.sample_seed(i), **OPTIONS))


def test_padded_collate_with_workers_lists_failures(paths):
    dataset = CodecClipDataset(paths[:2], seed=0, **OPTIONS)
    (batch,) = list(DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate_padded))
    assert len(batch) == 1 and [p for p, _ in batch.failures] == [paths[1]]
    assert isinstance(dataset[1], Failure)


def test_truncated_file_sample_says_so(media, tmp_path):
    cut = codec_patches(make_truncated(tmp_path), num_frames=4, size=56, budget=24)  # frames 0-3 decode
    assert cut.truncated is True
    assert codec_patches(media["h264_no_bframes"], num_frames=4, size=56, budget=24).truncated is False
