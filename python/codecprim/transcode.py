"""Re-encode a video in process with the GOP structure a VideoLM recipe trains on.

:func:`transcode` runs libavcodec from the C++ core (decode, frame rate / size / pixel format through
libavfilter, encode, mux); it never calls the ffmpeg program. The output is written to a temporary file beside
``dst`` and renamed onto it only when complete, so ``dst`` is either absent, the old file, or the whole new one.

Recipes (every option can be overridden by keyword, e.g. ``gop=120`` or ``fps="source"``):

* ``"cope"``: MPEG-4 Part 2 at 30 fps, GOP 240, P-frames only (CoPE-VideoLM's re-encode; fixed quantiser 4).
* ``"onevision"``: HEVC through libx265, keyint 16, no B-frames, one reference (OneVision-Encoder's).
* ``"onevision-h264"``: the same GOP structure in H.264 (libx264), whose motion vectors libavcodec exports.

GOPs are fixed: scene cuts do not start a new one. Output is constant frame rate (the source's average rate
unless ``fps`` is given).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RECIPES", "TranscodeResult", "transcode", "transcode_options"]

RECIPES = ("cope", "onevision", "onevision-h264")


@dataclass(frozen=True)
class TranscodeResult:
    """What :func:`transcode` wrote."""

    path: str
    codec: str            # encoder used, e.g. "mpeg4", "libx265"
    fps: str              # output frame rate as "num/den"
    frames_decoded: int
    frames_encoded: int
    packets_skipped: int  # damaged input packets the decoder rejected
    seconds: float        # wall time of the call


def _text(name: str, value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str, float)):
        raise ValueError(f"transcode option {name} must be an int or a string; got {value!r}")
    return str(value)


def transcode_options(recipe: str, **overrides) -> dict[str, str]:
    """The full option set of ``recipe`` after ``overrides`` (what :func:`transcode` would use), by name.

    Raises ValueError for an unknown recipe, an unknown option, or a bad value.
    """
    from .reader import _load_core

    if not isinstance(recipe, str):
        raise ValueError(f"recipe must be one of {RECIPES}; got {recipe!r}")
    return dict(_load_core().transcode_options(recipe, {k: _text(k, v) for k, v in overrides.items()}))


def transcode(src: str | os.PathLike, dst: str | os.PathLike, *, recipe: str,
              progress: Callable[[int, int], None] | None = None, **overrides) -> TranscodeResult:
    """Re-encode ``src`` into ``dst`` (container from ``dst``'s extension) with ``recipe`` and ``overrides``.

    Args:
        recipe: ``"cope"``, ``"onevision"`` or ``"onevision-h264"`` (see the module docstring).
        progress: called as ``progress(frames_encoded, frames_expected)`` every 16 frames and at the end;
            ``frames_expected`` is -1 when the container does not say.
        overrides: ``codec``, ``fps``, ``gop``, ``bframes``, ``refs``, ``qscale``, ``crf``, ``bit_rate``,
            ``width``, ``height``, ``pix_fmt``, ``preset``, ``threads``.

    Raises ValueError for a bad recipe or option, and a :mod:`codecprim.errors` error naming the file when
    ``src`` cannot be read or ``dst`` cannot be written (``dst`` is then left untouched).
    """
    from .reader import _load_core

    transcode_options(recipe, **overrides)  # bad arguments fail before any file is touched
    if progress is not None and not callable(progress):
        raise ValueError(f"progress must be a callable or None; got {progress!r}")
    start = time.perf_counter()
    done = _load_core().transcode(os.fspath(src), os.fspath(dst), recipe,
                                  {k: _text(k, v) for k, v in overrides.items()}, progress)
    return TranscodeResult(path=os.fspath(dst), seconds=time.perf_counter() - start, **done)
