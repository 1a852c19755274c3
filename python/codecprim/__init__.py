"""codecprim: codec primitives (motion vectors, residuals, GOP structure) from compressed video, as torch tensors."""

from .errors import (
    CodecprimError,
    InvalidVideoError,
    UnsupportedVideoError,
    UnknownLengthError,
    VideoIOError,
    VideoNotFoundError,
    VideoStallError,
)
from .reader import MOTION_VECTOR_COLUMNS, MV, Frame, Gop, Reader, ReaderStats, VideoInfo, open
# data before patches: data.clips wraps patches.codec_patches, which reads through data.sampling; importing
# the package first lets patches find data.sampling while data/__init__ is still running.
from . import data
from .patches import CodecClip, CodecPatchesConfig, codec_patches
from .transcode import transcode

__version__ = "0.1.0"


def ffmpeg_versions() -> dict:
    """Versions of the FFmpeg libraries codecprim is running on (libavcodec, libavformat, libavutil)."""
    from .reader import _load_core

    return dict(_load_core().ffmpeg_versions())


def set_ffmpeg_log_level(level: str) -> str:
    """Set how much FFmpeg itself prints to stderr and return the previous level.

    ``level`` is one of "quiet", "panic", "fatal", "error", "warning", "info", "verbose", "debug", "trace".
    FFmpeg's default, "info", prints decoder banners (libdav1d announces itself on every open) and messages
    about damaged streams; a data loader over many files usually wants "error" or "quiet". Damage is reported
    either way through ``reader.stats`` (or an exception with ``strict=True``). The level is process-wide
    libavutil state, shared with PyAV or torchvision in the same process, so codecprim never changes it itself.
    Once PyAV is imported, its own log callback receives FFmpeg's messages and its settings decide what appears.
    """
    from .reader import _load_core

    return _load_core().set_ffmpeg_log_level(level)


def ffmpeg_log_level() -> str:
    """FFmpeg's current process-wide log level, by name (see set_ffmpeg_log_level)."""
    from .reader import _load_core

    return _load_core().ffmpeg_log_level()


__all__ = [
    "open",
    "Reader",
    "Frame",
    "Gop",
    "VideoInfo",
    "ReaderStats",
    "MOTION_VECTOR_COLUMNS",
    "MV",
    "CodecprimError",
    "VideoNotFoundError",
    "InvalidVideoError",
    "UnsupportedVideoError",
    "UnknownLengthError",
    "VideoIOError",
    "VideoStallError",
    "ffmpeg_versions",
    "set_ffmpeg_log_level",
    "ffmpeg_log_level",
    "codec_patches",
    "CodecClip",
    "CodecPatchesConfig",
    "data",
    "transcode",
]
