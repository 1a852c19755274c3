"""Training-time reading of a corpus written by :func:`codecprim.data.write_shards`.

:class:`ShardDataset` is a torch ``IterableDataset`` of the typed samples the per-video functions return
(:class:`~codecprim.patches.CodecClip` for the ``"onevision"`` recipe, ``CopeSample`` for ``"cope"``).

Decisions (documented contract):

* Splitting: there are ``G = world_size * num_workers`` slots; slot ``rank * num_workers + worker`` reads
  shards ``order[slot::G]`` of the epoch's shard order. Every sample is read by exactly one slot per epoch
  (a slot with no shard yields nothing: use at least ``G`` shards).
* Order: with ``shuffle_buffer=0`` shards and samples come in corpus order. With ``shuffle_buffer=n > 0`` the
  shard order is a permutation drawn from ``(seed, epoch)`` and each slot shuffles its samples through a
  buffer of ``n`` drawn from ``(seed, epoch, slot)``: the same seed and epoch give the same stream in every slot.
* Resuming mid-epoch: a slot's stream is deterministic, so a position in it is a number of samples.
  :meth:`state_dict` gives ``{epoch, seed, slots, consumed}``, where ``consumed[slot]`` counts the samples
  the training loop has taken from that slot; :meth:`load_state_dict` makes the next iteration skip them
  (reading, not decoding them). In one process (``num_workers=0``) the dataset counts what it yielded. With
  DataLoader workers, the training loop's process never sees the workers' copies, so pass what it consumed:
  ``state_dict(batches=k, batch_size=B, num_workers=W)``; a DataLoader takes batch ``r`` of worker ``w`` in
  round ``r``, worker by worker, skipping exhausted workers, and that rule assigns the ``k`` batches to slots.
  A new DataLoader asks worker 0 first, so the resumed workers serve the slots rotated to where the old loader
  stood: the resumed batches come in the order the uninterrupted run would have given them.
  Resume with the same ``world_size`` and ``num_workers``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..ops._checks import check_positive_int
from .shards import decode_sample, read_tar, shard_index

__all__ = ["ShardDataset"]


def _non_negative_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int; got {value!r}")
    return value


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


class ShardDataset(IterableDataset):
    """The samples of the shards in ``out_dir`` (see the module docstring).

    Args:
        out_dir: folder written by :func:`~codecprim.data.write_shards`.
        shuffle_buffer: 0 for corpus order, else the size of each slot's shuffle buffer.
        seed: seed of the shard order and the shuffle buffers.
        rank, world_size: this process's place among torch.distributed ranks; default: torch.distributed's
            when it is initialised, else 0 of 1.
    """

    def __init__(self, out_dir: str | os.PathLike, *, shuffle_buffer: int = 0, seed: int = 0,
                 rank: int | None = None, world_size: int | None = None) -> None:
        self.out_dir = str(out_dir)
        self.shuffle_buffer = _non_negative_int("shuffle_buffer", shuffle_buffer)
        self.seed = _non_negative_int("seed", seed)
        rows = shard_index(out_dir)  # raises FileNotFoundError for a missing folder
        self.shards = sorted({r.shard for r in rows})
        if not self.shards:
            raise ValueError(f"{out_dir}: no finished shard (write_shards has not completed one)")
        # samples per shard, from the index: what a slot's stream holds before a byte is read
        self.counts = {s: sum(r.shard == s and r.status == "ok" for r in rows) for s in self.shards}
        if (rank is None) != (world_size is None):
            raise ValueError("pass both rank and world_size, or neither")
        self._rank, self._world = rank, world_size
        if world_size is not None:
            check_positive_int("world_size", world_size)
            if not 0 <= _non_negative_int("rank", rank) < world_size:
                raise ValueError(f"rank must be in [0, world_size); got {rank} of {world_size}")
        self.set_epoch(0)

    # --- placement ---------------------------------------------------------------------------------------------

    def _distributed(self) -> tuple[int, int]:
        if self._world is not None:
            return self._rank, self._world
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def _slots(self, num_workers: int) -> int:
        return self._distributed()[1] * num_workers

    def shard_order(self) -> list[str]:
        """The epoch's shard order."""
        if not self.shuffle_buffer:
            return list(self.shards)
        return [self.shards[i] for i in _rng(self.seed, self.epoch).permutation(len(self.shards))]

    def slot_shards(self, slot: int, slots: int) -> list[str]:
        return self.shard_order()[slot::slots]

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch the next iteration reads (its shard order and shuffle); resets resume positions."""
        self.epoch = _non_negative_int("epoch", epoch)
        self._skip, self._yielded = {}, {}
        self._expected_slots: int | None = None
        self._rotation = 0

    # --- iteration ---------------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator:
        rank, _ = self._distributed()
        info = get_worker_info()
        workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        slots = self._slots(workers)
        slot = rank * workers + (worker + self._rotation) % workers
        if self._expected_slots is not None and self._expected_slots != slots:
            raise ValueError(f"the state was saved with {self._expected_slots} slots (ranks x workers), this "
                             f"iteration has {slots}: resume with the same world_size and num_workers")
        skip = self._skip.get(slot, 0)
        self._yielded[slot] = skip
        for position, (_, members) in enumerate(self._stream(slot, slots)):
            if position < skip:
                continue
            sample = decode_sample(members)
            self._yielded[slot] = position + 1
            yield sample

    def _stream(self, slot: int, slots: int) -> Iterator[tuple[str, dict[str, bytes]]]:
        """The slot's (id, members) in order, shuffled through the buffer; nothing decoded yet."""
        items = (item for shard in self.slot_shards(slot, slots) for item in read_tar(Path(self.out_dir) / shard))
        if not self.shuffle_buffer:
            yield from items
            return
        rng = _rng(self.seed, self.epoch, slot)
        buffer: list = []
        for item in items:
            buffer.append(item)
            if len(buffer) >= self.shuffle_buffer:
                yield buffer.pop(int(rng.integers(len(buffer))))
        while buffer:
            yield buffer.pop(int(rng.integers(len(buffer))))

    # --- resume ------------------------------------------------------------------------------------------------

    def slot_lengths(self, slots: int) -> list[int]:
        """Samples each slot yields this epoch."""
        return [sum(self.counts[s] for s in self.slot_shards(g, slots)) for g in range(slots)]

    def state_dict(self, *, batches: int | None = None, batch_size: int | None = None,
                   num_workers: int | None = None) -> dict:
        """Where the epoch stands: counted here (no arguments, ``num_workers=0``) or computed from the ``batches``
        a DataLoader with ``batch_size`` and ``num_workers`` workers has handed out on this rank."""
        rank, world = self._distributed()
        if batches is None:
            if batch_size is not None or num_workers is not None:
                raise ValueError("batch_size and num_workers describe batches=; pass all three or none")
            return {"epoch": self.epoch, "seed": self.seed, "slots": world, "consumed": dict(self._yielded),
                    "rotation": 0}
        _non_negative_int("batches", batches)
        check_positive_int("batch_size", batch_size)
        workers = max(1, _non_negative_int("num_workers", num_workers))
        slots = world * workers
        lengths = self.slot_lengths(slots)
        mine = [rank * workers + w for w in range(workers)]
        taken = [0] * workers  # batches handed out by each of this rank's workers
        alive = lambda w: taken[w] * batch_size < lengths[mine[w]]  # noqa: E731
        turn = 0  # the worker the DataLoader asks next
        for _ in range(batches):
            for _ in range(workers):
                if alive(turn):
                    break
                turn = (turn + 1) % workers
            else:
                raise ValueError(f"{batches} batches is more than this rank's epoch holds")
            taken[turn] += 1
            turn = (turn + 1) % workers
        consumed = {mine[w]: min(taken[w] * batch_size, lengths[mine[w]]) for w in range(workers)}
        # A new DataLoader starts asking at worker 0: worker w then serves slot (w + rotation), so the batches
        # come in the order the interrupted loader would have handed them out.
        return {"epoch": self.epoch, "seed": self.seed, "slots": slots, "consumed": consumed, "rotation": turn}

    def load_state_dict(self, state: dict) -> None:
        """Continue the epoch of ``state`` where it stopped (the next iteration skips what was consumed)."""
        if state.get("seed") != self.seed:
            raise ValueError(f"state was saved with seed {state.get('seed')}, this dataset has seed {self.seed}")
        self.set_epoch(state["epoch"])
        self._skip = {int(g): int(n) for g, n in state["consumed"].items()}
        self._yielded = dict(self._skip)
        self._expected_slots = int(state["slots"])
        self._rotation = int(state.get("rotation", 0))
