"""Type stub of the compiled core (csrc/bindings.cpp). Use it through codecprim.open; these are its internals."""

from typing import Any, Callable, Dict, Optional

import numpy as np

class Reader:
    def __init__(self, path: str, residuals: bool = ..., threads: int = ..., strict: bool = ...,
                 chroma: bool = ...) -> None: ...
    def info(self) -> Dict[str, Any]: ...
    def next(self) -> Optional[Dict[str, Any]]:
        """The next frame in display order as a dict of numpy arrays and scalars, or None at the end."""
    def index(self) -> Dict[str, Any]:
        """The parser-only frame table: pts, decode_index, packet_size, key_packet, pict_types, gops, pts_valid."""
    def stats(self) -> Dict[str, Any]: ...
    def seek_to_frame(self, index: int) -> None: ...
    def rewind(self) -> None: ...
    def close(self) -> None: ...

def predict(ref: np.ndarray, x: int, y: int, mv_x: int, mv_y: int, w: int, h: int, method: str) -> np.ndarray:
    """One block of motion-compensated prediction; method: h264, halfpel, halfpel_no_rounding, bilinear_qpel."""

def ffmpeg_versions() -> Dict[str, str]: ...
def set_ffmpeg_log_level(level: str) -> str:
    """Sets libavutil's process-wide log level by name; returns the previous one. ValueError for unknown names."""
def ffmpeg_log_level() -> str: ...
def transcode_options(recipe: str, overrides: Dict[str, str]) -> Dict[str, str]:
    """A recipe's options after overrides, by name; ValueError for an unknown recipe, option or value."""
def transcode(src: str, dst: str, recipe: str, overrides: Dict[str, str],
              progress: Optional[Callable[[int, int], None]]) -> Dict[str, Any]:
    """Re-encodes src into dst atomically; returns frames_decoded, frames_encoded, packets_skipped, codec, fps."""
