"""Type stub of the compiled core (csrc/bindings.cpp). Use it through codecprim.open; these are its internals."""

from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

class Reader:
    def __init__(self, source: Any, name: str, is_path: bool, residuals: bool = ..., threads: int = ...,
                 strict: bool = ..., chroma: bool = ..., stall_seconds: float = ...) -> None:
        """source: a path (is_path), bytes-like data (copied) or a seekable binary file object (read with the GIL
        held by each read); name: what errors call it; threads 0: one per core; stall_seconds 0: never."""
    def info(self) -> Dict[str, Any]: ...
    def next(self) -> Optional[Dict[str, Any]]:
        """The next frame in display order as a dict of numpy arrays and scalars, or None at the end."""
    def index(self) -> Dict[str, Any]:
        """The parser-only frame table: pts, decode_index, packet_size, key_packet, pict_types, gops, pts_valid."""
    def stats(self) -> Dict[str, Any]:
        """Counters (packets, frames, frames_decoded, skipped_packets, corrupt_frames, decode_errors,
        frames_reordered, frames_retimed, frames_pts_synthesized), truncated and its cause (truncation), residual/copy seconds."""
    def seek_to_frame(self, index: int) -> None: ...
    def resumable_from(self) -> int:
        """Display index of the next frame reading on would reach, or -1 when only a seek repositions."""
    def reads_as_iteration(self) -> bool:
        """Whether the decoder was fed what iteration feeds it since it last started (no jump, no skipped picture)."""
    def seeks_by_keyframe(self) -> bool:
        """Whether seek_to_frame jumps to a keyframe (False: it decodes forward from the start)."""
    def rewind(self) -> None: ...
    def request(self, indices: List[int], skip_nonref: bool = True) -> None:
        """next() returns only these display indices (others are not copied or predicted; with skip_nonref,
        non-reference pictures before the last of them are not decoded when none of them is a B-frame; frames the
        decoder returns past the last stay for the next request); an empty list returns every frame again."""
    def close(self) -> None: ...

def predict(ref: np.ndarray, x: int, y: int, mv_x: int, mv_y: int, w: int, h: int, method: str) -> np.ndarray:
    """One block of motion-compensated prediction; method: h264, halfpel, halfpel_no_rounding, bilinear_qpel."""

def block_sad(a: np.ndarray, b: np.ndarray, w: int, h: int) -> int:
    """SAD of the w x h blocks at the top-left of two uint8 planes, by the pixel kernels in use."""

def block_subtract_sad(cur: np.ndarray, pred: np.ndarray, w: int, h: int) -> Tuple[np.ndarray, int]:
    """(cur - pred as int16 (h, w), their SAD) over the top-left blocks: the fused kernel of the reference search."""

def block_average_subtract(cur: np.ndarray, a: np.ndarray, b: np.ndarray, w: int, h: int) -> np.ndarray:
    """cur - ((a + b + 1) >> 1) as int16 (h, w) over the top-left blocks (w <= 16): a bi-predicted residual."""

def me_block_search(cur: np.ndarray, ref: np.ndarray, grid: List[int], centres: np.ndarray, radius: int,
                    extras: np.ndarray, num_extras: int, pred_q: np.ndarray, level: int, limit_q: int,
                    lam: int) -> Tuple[np.ndarray, np.ndarray]:
    """Integer block search of one pyramid level (csrc/block_matching.h); grid = (rows, cols, size, margin).
    Returns vectors (B, 2) and costs (B,), int32."""

def me_subpel(cur: np.ndarray, ref: np.ndarray, grid: List[int], vectors: np.ndarray, base_cost: np.ndarray,
              pred_q: np.ndarray, limit_q: int, lam: int) -> Tuple[np.ndarray, np.ndarray]:
    """Half- then quarter-pel refinement (csrc/block_matching.h); grid = (rows, cols, size).
    Returns quarter-pel vectors (B, 2) and costs (B,), int32."""

def me_residual(cur: np.ndarray, ref: np.ndarray, grid: List[int], vectors_q: np.ndarray,
                zero: np.ndarray) -> np.ndarray:
    """(T, H, W) int16 cur minus block predictions from ref at quarter-pel vectors, 0 on blocks flagged in zero
    (csrc/block_matching.h); grid = (rows, cols, size)."""

def me_downsample(src: np.ndarray) -> np.ndarray:
    """(T, ceil(H/2), ceil(W/2)) uint8 rounded 2x2 means, last row / column replicated (csrc/block_matching.h)."""

def me_structure(cur: np.ndarray, grid: List[int]) -> np.ndarray:
    """(B, 3) int64 per-block sums of gx^2, gy^2, gx gy of forward differences (csrc/block_matching.h)."""

def simd_level() -> str:
    """Instruction set of the pixel kernels: "avx2", "sse2" or "baseline" (CODECPRIM_SIMD lowers it)."""

def ffmpeg_versions() -> Dict[str, str]: ...
def set_ffmpeg_log_level(level: str) -> str:
    """Sets libavutil's process-wide log level by name; returns the previous one. ValueError for unknown names."""
def ffmpeg_log_level() -> str: ...
def transcode_options(recipe: str, overrides: Dict[str, str]) -> Dict[str, str]:
    """A recipe's options after overrides, by name; ValueError for an unknown recipe, option or value."""
def transcode(src: str, dst: str, recipe: str, overrides: Dict[str, str],
              progress: Optional[Callable[[int, int], None]]) -> Dict[str, Any]:
    """Re-encodes src into dst atomically; returns frames_decoded, frames_encoded, packets_skipped, codec, fps."""
