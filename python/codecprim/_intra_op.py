"""Torch's intra-op thread count, pinned while a per-video function runs.

Why: a per-video function issues thousands of small tensor ops (one frame's resize, one refit of the camera
model). At torch's default thread count each op is split across OpenMP threads that meet at a barrier; on a
busy machine one of them is descheduled and the others spin-wait for a time slice. Measured on a shared
2-core box (load ~10): ``codec_patches`` of a 2 s 320x240 clip took 14.9-18.3 s at torch's default 2 threads,
0.9-1.2 s at 1 thread, and 1.16 s at 2 threads with ``OMP_WAIT_POLICY=PASSIVE`` (so the spin-wait, not the work,
is the cost). Splitting such small ops gains nothing even on an idle machine, and DataLoader workers already
run at one thread; this gives the main process (``num_workers=0``) the same.

The count is process-wide (torch has no per-thread setting): while one of these functions runs, other Python
threads' torch ops also see it. Nested uses keep the outermost setting; the caller's count is restored when
the outermost one exits, also on an exception.
"""

from __future__ import annotations

import contextlib
import threading

import torch

from .ops._checks import check_positive_int

__all__ = ["intra_op_threads"]

_lock = threading.Lock()
_depth = 0
_saved = 0


class intra_op_threads(contextlib.ContextDecorator):  # noqa: N801 - used like a function: @intra_op_threads(1)
    """Context manager and decorator: torch runs with ``threads`` intra-op threads inside, the caller's count
    (``torch.get_num_threads()``) is restored after."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = check_positive_int("threads", threads)

    def __enter__(self) -> intra_op_threads:
        global _depth, _saved
        with _lock:
            if _depth == 0:
                _saved = torch.get_num_threads()
                if _saved != self.threads:
                    torch.set_num_threads(self.threads)
            _depth += 1
        return self

    def __exit__(self, *exc_info) -> None:
        global _depth
        with _lock:
            _depth -= 1
            if _depth == 0 and torch.get_num_threads() != _saved:
                torch.set_num_threads(_saved)
