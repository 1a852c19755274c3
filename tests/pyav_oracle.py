"""FFmpeg's own view of a stream, through PyAV: the oracle for vectors, frame types and timestamps.

PyAV must run on the same libavcodec as codecprim (CI builds it from source against the system FFmpeg);
otherwise version differences in FFmpeg's exporters would be blamed on codecprim. Elsewhere a missing or
mismatched PyAV skips the parity tests; in CI (``CI`` set, as CI services do) it fails them, so the oracle
cannot silently drop out of the run that guards merges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import os

import numpy as np
import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


try:
    import av
except ImportError as error:
    if in_ci():
        raise ImportError("CI must run the PyAV oracle: install it with scripts/setup.sh test") from error
    pytest.skip("PyAV is not installed", allow_module_level=True)

import codecprim  # noqa: E402

FIELDS = ("source", "w", "h", "src_x", "src_y", "dst_x", "dst_y", "motion_x", "motion_y", "motion_scale")


def same_libavcodec() -> bool:
    ours = codecprim.ffmpeg_versions()["libavcodec"].split(".")
    theirs = av.library_versions["libavcodec"]
    return tuple(int(v) for v in ours[:2]) == tuple(theirs[:2])


def require_same_libavcodec():
    if same_libavcodec():
        return
    message = (f"PyAV runs on libavcodec {av.library_versions['libavcodec']}, codecprim on "
               f"{codecprim.ffmpeg_versions()['libavcodec']}; install it with --no-binary av")
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class OracleFrame:
    pict_type: str
    pts_seconds: float
    key_frame: bool
    motion_vectors: np.ndarray


def decode(path) -> List[OracleFrame]:
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        stream.thread_type = "SLICE"
        for frame in container.decode(stream):
            side = frame.side_data.get("MOTION_VECTORS")
            if side is None:
                mvs = np.zeros((0, 10), np.int32)
            else:
                table = side.to_ndarray()
                mvs = np.stack([table[f] for f in FIELDS], axis=1).astype(np.int32)
            kind = " IPB"[int(frame.pict_type)] if int(frame.pict_type) in (1, 2, 3) else "P"
            frames.append(OracleFrame(kind, float(frame.pts * stream.time_base), frame.key_frame, mvs))
    return frames


def luma(frame) -> np.ndarray:
    """A PyAV frame's 8-bit Y plane (H, W), its row padding cut off."""
    plane = frame.planes[0]
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]


def packet_sizes(path) -> List[int]:
    """Packet sizes in display (pts) order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [(p.pts, p.size) for p in container.demux(stream) if p.size > 0]
    return [size for _, size in sorted(packets)]


def decoded_frames(path):
    """Every frame FFmpeg outputs, in output order, skipping packets it rejects (as codecprim does by default)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue
            for frame in frames:
                yield frame, stream.time_base
