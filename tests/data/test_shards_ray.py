"""codecprim.integrations.ray on a local Ray instance: the same shards, byte for byte, and the same index as the
process-pool path (skipped when Ray Data is not installed; CI installs it through the test extra)."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from codecprim.data import shard_index, write_shards
from codecprim.data.shards import read_tar
from media import make_not_video

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

OPTIONS = dict(num_frames=8, size=56, budget=32)


def sample_digests(out):
    """SHA-256 of every member of every sample, by shard and id."""
    return {(shard.name, key): {name: hashlib.sha256(data).hexdigest() for name, data in members.items()}
            for shard in sorted(out.glob("shard-*.tar")) for key, members in read_tar(shard)}


def test_ray_pipeline_writes_the_process_pool_shards(media, tmp_path):
    from codecprim.integrations.ray import write_shards as ray_write_shards

    paths = [str(media["h264_no_bframes"]), str(make_not_video(tmp_path)), str(media["mpeg4_native_bframes"]),
             str(media["h264_bframes"])]
    pool = write_shards(paths, tmp_path / "pool", samples_per_shard=2, **OPTIONS)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        seen = []
        done = ray_write_shards(paths, tmp_path / "ray", samples_per_shard=2, concurrency=2,
                                progress=seen.append, **OPTIONS)
    finally:
        ray.shutdown()
    assert (done.ok, done.failed) == (pool.ok, pool.failed) == (3, 1) and len(seen) == 4
    digests = sample_digests(tmp_path / "ray")
    assert digests == sample_digests(tmp_path / "pool") and len(digests) == 3
    assert [(tmp_path / "ray" / n).read_bytes() for n in ("shard-000000.tar", "shard-000001.tar")] == \
        [(tmp_path / "pool" / n).read_bytes() for n in ("shard-000000.tar", "shard-000001.tar")]
    strip = lambda rows: [dataclasses.replace(r, seconds=0.0) for r in rows]  # noqa: E731
    assert strip(shard_index(tmp_path / "ray")) == strip(shard_index(tmp_path / "pool"))


def test_bad_concurrency_is_refused_before_ray_starts(tmp_path):
    from codecprim.integrations.ray import write_shards as ray_write_shards

    with pytest.raises(ValueError, match="concurrency must be a positive int"):
        ray_write_shards(["a.mp4"], tmp_path, concurrency=0)
