"""codecprim.data.ShardDataset: round trip to codec_patches, each sample once per epoch over DataLoader workers and
ranks, seeded shuffles per epoch, and mid-epoch resume (in process and from a DataLoader's batch count)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

import codecprim
from codecprim.data import ShardDataset, write_shards

OPTIONS = dict(num_frames=8, size=56, budget=32)
NAMES = ["h264_no_bframes", "h264_bframes", "mpeg4_native_bframes", "mpeg2", "h263p", "h264_odd_size"]


@pytest.fixture(scope="module")
def corpus(media, tmp_path_factory):
    paths = [str(media[n]) for n in NAMES]
    out = tmp_path_factory.mktemp("shards")
    write_shards(paths, out, samples_per_shard=1, **OPTIONS)  # six shards of one sample
    return paths, out


def as_list(batch):
    return batch


def paths_of(samples):
    return [s.path for s in samples]


def test_round_trip_equals_codec_patches(corpus):
    paths, out = corpus
    samples = list(ShardDataset(out))
    assert paths_of(samples) == paths
    for sample, path in zip(samples, paths):
        ref = codecprim.codec_patches(path, **OPTIONS)
        assert isinstance(sample, codecprim.CodecClip)
        for name in ref.__dataclass_fields__:
            a, b = getattr(sample, name), getattr(ref, name)
            assert (torch.equal(a, b) and a.dtype == b.dtype) if isinstance(a, torch.Tensor) else a == b, name


@pytest.mark.parametrize("world, workers", [(1, 2), (2, 1), (2, 2)])
def test_ranks_and_workers_cover_each_sample_once(corpus, world, workers):
    paths, out = corpus
    seen = []
    for rank in range(world):
        dataset = ShardDataset(out, shuffle_buffer=2, seed=3, rank=rank, world_size=world)
        loader = DataLoader(dataset, batch_size=None, num_workers=workers, collate_fn=as_list)
        seen += paths_of(loader)
    assert sorted(seen) == sorted(paths)


def test_shuffle_depends_on_seed_and_epoch_only(corpus):
    _, out = corpus
    dataset = ShardDataset(out, shuffle_buffer=3, seed=1)
    orders = []
    for epoch in (0, 1, 0):
        dataset.set_epoch(epoch)
        orders.append(paths_of(dataset))
    assert orders[0] == orders[2] != orders[1]
    assert sorted(orders[0]) == sorted(orders[1])
    assert paths_of(ShardDataset(out, shuffle_buffer=3, seed=1)) == orders[0]


def test_resume_in_process(corpus):
    _, out = corpus
    dataset = ShardDataset(out, shuffle_buffer=3, seed=5)
    dataset.set_epoch(2)
    whole = paths_of(dataset)
    partial = ShardDataset(out, shuffle_buffer=3, seed=5)
    partial.set_epoch(2)
    taken = []
    for sample in partial:
        taken.append(sample.path)
        if len(taken) == 4:
            break
    state = partial.state_dict()
    resumed = ShardDataset(out, shuffle_buffer=3, seed=5)
    resumed.load_state_dict(state)
    assert resumed.epoch == 2
    assert taken + paths_of(resumed) == whole


@pytest.mark.parametrize("batches", [1, 3, 4])
def test_resume_from_a_dataloader_batch_count(corpus, batches):
    _, out = corpus
    make = lambda: ShardDataset(out, shuffle_buffer=2, seed=9)  # noqa: E731
    loader = lambda d: DataLoader(d, batch_size=2, num_workers=2, collate_fn=as_list)  # noqa: E731
    whole = [paths_of(b) for b in loader(make())]
    state = make().state_dict(batches=batches, batch_size=2, num_workers=2)
    resumed = make()
    resumed.load_state_dict(state)
    assert whole[:batches] + [paths_of(b) for b in loader(resumed)] == whole


def test_resume_refuses_other_worker_counts_and_seeds(corpus):
    _, out = corpus
    state = ShardDataset(out).state_dict(batches=1, batch_size=1, num_workers=2)
    resumed = ShardDataset(out)
    resumed.load_state_dict(state)
    with pytest.raises(ValueError, match="same world_size and num_workers"):
        list(resumed)
    with pytest.raises(ValueError, match="seed"):
        ShardDataset(out, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="more than this rank's epoch"):
        ShardDataset(out).state_dict(batches=7, batch_size=1, num_workers=1)


def test_bad_arguments(corpus, tmp_path):
    _, out = corpus
    with pytest.raises(ValueError, match="shuffle_buffer"):
        ShardDataset(out, shuffle_buffer=-1)
    with pytest.raises(ValueError, match="rank must be in"):
        ShardDataset(out, rank=2, world_size=2)
    with pytest.raises(ValueError, match="both rank and world_size"):
        ShardDataset(out, rank=0)
    with pytest.raises(ValueError, match="no finished shard"):
        ShardDataset(tmp_path)
    with pytest.raises(FileNotFoundError):
        ShardDataset(tmp_path / "missing")
