"""The corpus extraction of :func:`codecprim.data.write_shards` as a Ray Data pipeline, for many machines.

Videos -> ``ray.data.from_items`` -> ``map_batches`` with a pool of extractor actors (one CPU each, each
running :func:`codecprim.data.shards.extract_video`) -> the driver's :class:`~codecprim.data.shards.ShardWriter`.
The per-video work and the shard writer are the process-pool path's, so the shards and the index are the same,
byte for byte, and an interrupted run resumes the same way. The driver writes the shards: ``out_dir`` must be
on the driver's disk (a shared file system on a cluster), the videos readable from every node.

On a cluster, connect first (``ray.init(address="auto")`` or ``address=`` here); without a running Ray this
starts a local instance.
"""

from __future__ import annotations

import json
import os
import pickle
import time
from collections.abc import Callable, Iterable

from ..data.shards import IndexRow, ShardWriter, WriteSummary

__all__ = ["write_shards"]


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise RuntimeError("codecprim.integrations.ray needs Ray Data: pip install 'codecprim[ray]' "
                           f"(or 'ray[data]'); importing it failed: {err}") from err
    return ray


class _Extractor:
    """One actor of the pool: extracts the videos of each batch it is given."""

    def __init__(self, recipe: str, options: dict) -> None:
        import torch

        torch.set_num_threads(1)  # one CPU per actor
        self.recipe, self.options = recipe, options

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        from ..data.shards import extract_video

        rows, members = [], []
        for path, vid in zip(batch["path"], batch["id"]):
            row, data = extract_video(str(path), str(vid), self.recipe, self.options)
            rows.append(json.dumps(row))
            members.append(pickle.dumps(data))
        return {"position": batch["position"], "row": np.array(rows, dtype=object),
                "members": np.array(members, dtype=object)}


def write_shards(paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike, *, recipe: str = "onevision",
                 concurrency: int = 2, samples_per_shard: int = 256, name: str = "shard",
                 address: str | None = None, progress: Callable[[IndexRow], None] | None = None,
                 **recipe_options) -> WriteSummary:
    """:func:`codecprim.data.write_shards` through Ray Data: ``concurrency`` extractor actors instead of
    worker processes; every other argument and the output are the same.

    ``address``: the Ray cluster to join (``"auto"``, ``"ray://head:10001"``); None uses the running instance
    or starts a local one.
    """
    ray = _ray()
    start = time.perf_counter()
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency <= 0:
        raise ValueError(f"concurrency must be a positive int; got {concurrency!r}")
    writer = ShardWriter(paths, out_dir, recipe=recipe, samples_per_shard=samples_per_shard, name=name,
                         options=recipe_options)
    jobs = writer.todo()
    if jobs:
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        items = [{"position": position, "path": path, "id": vid} for position, path, vid in jobs]
        results = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _Extractor, fn_constructor_kwargs={"recipe": recipe, "options": writer.options}, batch_size=1,
            concurrency=concurrency, num_cpus=1, batch_format="numpy")
        for result in results.iter_rows():
            done = writer.add(int(result["position"]), json.loads(result["row"]), pickle.loads(result["members"]))
            if progress is not None:
                progress(done)
    return writer.finish(time.perf_counter() - start)
