"""Exceptions raised by codecprim.

Every error is a :class:`CodecprimError` and also derives from the builtin that fits it, so callers can catch
either. Each carries the file's ``path`` and a human-readable ``cause``.

Errors keep their type, path and cause across processes. Pickling goes through ``__reduce__``. A torch
DataLoader worker is harder: torch's ``ExceptionWrapper`` sends only the formatted traceback and re-creates
the exception in the main process as ``type(message)``, one string. So every codecprim error accepts a single
string too, and an error created inside a DataLoader worker carries a note with its path and cause as JSON,
which the traceback text includes and the one-string constructor reads back.
"""

from __future__ import annotations

import json
import re
import sys

__all__ = [
    "CodecprimError",
    "VideoNotFoundError",
    "InvalidVideoError",
    "UnsupportedVideoError",
    "UnknownLengthError",
    "VideoIOError",
    "VideoStallError",
]

_NOTE = "codecprim error details: "
# The last line of a formatted traceback: "codecprim.errors.InvalidVideoError: <path>: <cause>".
_LAST_LINE = re.compile(r"^(?:[\w.]+\.)?\w+: (.*)$")


def _in_dataloader_worker() -> bool:
    # Read without importing torch: errors.py is imported on machines and paths that never load it.
    worker = sys.modules.get("torch.utils.data._utils.worker")
    return worker is not None and worker.get_worker_info() is not None


def _recover(message: str) -> tuple[str, str]:
    """Path and cause from the text torch's ExceptionWrapper hands to the constructor."""
    lines = message.splitlines()
    for line in reversed(lines):
        if line.startswith(_NOTE):
            try:
                details = json.loads(line[len(_NOTE):])
                return str(details["path"]), str(details["cause"])
            except (ValueError, KeyError, TypeError):
                break
    # Raised without the note (e.g. unpickled, then raised in a worker): split the final line; a path with ": "
    # in it is then cut at its first one.
    for line in reversed(lines):
        match = _LAST_LINE.match(line)
        if match and ": " in match.group(1):
            path, cause = match.group(1).split(": ", 1)
            return path, cause
    return "", message


class CodecprimError(Exception):
    """Base class of every codecprim error.

    ``CodecprimError(path, cause)`` is the normal form; ``CodecprimError(message)`` (one string) recovers path
    and cause from a worker's formatted traceback and keeps that whole text as the message.
    """

    def __init__(self, path: str, cause: str | None = None):
        if cause is None:
            message = str(path)
            path, cause = _recover(message)
        else:
            message = f"{path}: {cause}"
        self.path = str(path)
        self.cause = str(cause)
        super().__init__(message)
        if _in_dataloader_worker():
            self.add_note(_NOTE + json.dumps({"path": self.path, "cause": self.cause}))

    def __reduce__(self):  # picklable across processes (multiprocessing queues, spawn)
        return (type(self), (self.path, self.cause))


class VideoNotFoundError(CodecprimError, FileNotFoundError):
    """The path does not exist."""


class InvalidVideoError(CodecprimError, ValueError):
    """The file is not a readable video: empty, text, an image, audio-only, garbage, or damaged in strict mode."""


class UnsupportedVideoError(CodecprimError, ValueError):
    """A video this FFmpeg build cannot decode (no decoder, unsupported pixel format)."""


class UnknownLengthError(UnsupportedVideoError, TypeError):
    """A read-once input (a FIFO or device) has no frame table: ``len(reader)``, ``pict_types`` and ``gops`` would
    need a second pass over it. Also a TypeError, as ``len()`` of an unsized object raises, so ``list(reader)`` and
    other length hints fall back to iterating."""


class VideoIOError(CodecprimError, OSError):
    """The operating system or FFmpeg failed to read the file."""


class VideoStallError(CodecprimError, TimeoutError):
    """Reading made no progress for the reader's ``stall_seconds`` (a source that stopped delivering data, or a
    demuxer looping over a crafted stream); raised through FFmpeg's interrupt callback, not a wall-clock kill."""
