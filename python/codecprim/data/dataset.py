"""The map-style base every codecprim dataset derives from: sources, seeding, epochs and the error policy.

A concrete dataset implements :meth:`VideoDataset.load`, one call of its per-video function. The base holds
only picklable things (paths as strings, numbers), so it crosses into DataLoader workers under fork and spawn,
and each item opens its reader inside the worker.

Reproducibility: item ``i`` draws its randomness from :meth:`VideoDataset.sample_seed`, a function of
``(seed, epoch, i)`` alone, so the same seed and epoch give the same samples whatever the number of workers
or the order they run in. Call :meth:`set_epoch` before each epoch's iterator is created (DataLoader copies
the dataset into its workers then; with ``persistent_workers=True`` the copies keep the epoch they started
with).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import CodecprimError
from ..ops._checks import check_choice
from .failures import Failure

__all__ = ["ON_ERROR", "VideoDataset"]

ON_ERROR = ("skip", "raise")


class VideoDataset(Dataset):
    """Item ``i`` is ``load(i, paths[i])``, or a :class:`Failure` when that raises a codecprim error and
    ``on_error="skip"`` (``"raise"`` lets the typed error through).

    Args:
        paths: video files (``str`` or ``os.PathLike``).
        seed: base seed of every item's random choices.
        on_error: ``"skip"`` or ``"raise"``.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], *, seed: int = 0, on_error: str = "skip") -> None:
        if isinstance(paths, (str, os.PathLike)):
            raise ValueError("paths must be a list of video files, not one path (wrap it in a list)")
        self.paths = [os.fspath(p) for p in paths]
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int; got {seed!r}")
        check_choice("on_error", on_error, ON_ERROR)
        self.seed = seed
        self.on_error = on_error
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose samples the next iteration draws."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int; got {epoch!r}")
        self.epoch = epoch

    def sample_seed(self, index: int) -> int:
        """The seed of item ``index`` in the current epoch (a hash of seed, epoch and index)."""
        state = np.random.SeedSequence([self.seed, self.epoch, int(index)]).generate_state(2, np.uint32)
        return (int(state[0]) << 31) ^ int(state[1])  # < 2**63: fits torch.Generator.manual_seed

    def generator(self, index: int) -> torch.Generator:
        """A fresh CPU generator seeded with :meth:`sample_seed`."""
        return torch.Generator().manual_seed(self.sample_seed(index))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"dataset index must be an int; got {type(index).__name__}")
        index = int(index)
        path = self.paths[index]
        try:
            return self.load(index, path)
        except CodecprimError as error:
            if self.on_error == "raise":
                raise
            return Failure.from_error(path, error)

    def load(self, index: int, path: str):
        """The sample of ``paths[index]``; raise a codecprim error for a video that cannot be used."""
        raise NotImplementedError(f"{type(self).__name__} must implement load(index, path)")
