"""Forked DataLoader workers must not inherit decoders that will be freed in them.

A decoder object left in a reference cycle in the parent (PyAV's ``CodecContext`` is the common case: users and
oracles decode with PyAV before starting workers) is copied into every forked worker. The worker's garbage
collector later frees it, ``avcodec_close`` joins the decoder's slice threads, and those threads were not copied by
``fork``: the worker waits forever and the epoch stalls until the DataLoader's timeout, if it has one. Collecting
cycles in the parent just before a fork frees such decoders where their threads exist.
"""

from __future__ import annotations

import gc
import os
import time

__all__ = ["collect_before_fork"]

_registered = False
_last_collection = float("-inf")
# A DataLoader forks its workers back to back; one collection serves the whole burst, so a large training
# process pays one full collection per epoch's start rather than one per worker.
_BURST_SECONDS = 1.0


def _collect() -> None:
    global _last_collection
    now = time.monotonic()
    if now - _last_collection >= _BURST_SECONDS:
        gc.collect()
        _last_collection = time.monotonic()


def collect_before_fork() -> None:
    """Run the garbage collector in the parent before ``os.fork`` (idempotent; registered on import of
    :mod:`codecprim.data`), once per burst of forks within a second."""
    global _registered
    if not _registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_collect)
        _registered = True
