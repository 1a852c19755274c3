"""What a dataset item is when its video could not be read and the dataset skips bad files."""

from __future__ import annotations

from dataclasses import dataclass

from .. import errors
from ..errors import CodecprimError

__all__ = ["Failure"]


@dataclass(frozen=True)
class Failure:
    """A video that could not be read: collate functions drop it and list ``(path, cause)`` in ``failures``."""

    path: str
    cause: str
    error_type: str  # name of the codecprim error class, e.g. "InvalidVideoError"

    @classmethod
    def from_error(cls, path: str, error: CodecprimError) -> "Failure":
        # The error's own path names the file the reader saw; the dataset's path is what the user listed.
        return cls(path=str(path), cause=error.cause, error_type=type(error).__name__)

    def error(self) -> CodecprimError:
        """The typed error this failure stands for (to raise it later)."""
        kind = getattr(errors, self.error_type, None)
        if not (isinstance(kind, type) and issubclass(kind, CodecprimError)):
            kind = CodecprimError
        return kind(self.path, self.cause)
