"""Reading codec primitives from a video file: the Python face of the C++ core.

``codecprim.open(source)`` returns a :class:`Reader`, a context manager that streams :class:`Frame` records in
display order; the source is a path, bytes or a binary file object. Tensors share the buffers the core filled
(no copy on the way to Python).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np
import torch

from .errors import InvalidVideoError

__all__ = ["open", "Reader", "Frame", "Gop", "VideoInfo", "ReaderStats", "MOTION_VECTOR_COLUMNS", "MV"]

# Column order of Frame.motion_vectors: FFmpeg's AVMotionVector fields. Mirrors the C++ enum mv::Column in
# csrc/motion_vectors.h (tests/core/test_motion_vector_columns.py holds them equal).
MOTION_VECTOR_COLUMNS = (
    "source", "w", "h", "src_x", "src_y", "dst_x", "dst_y", "motion_x", "motion_y", "motion_scale",
)


_NO_PTS_SECONDS = float("nan")


class MV:
    """Column numbers of a motion-vector row: ``rows[:, MV.dst_x]`` instead of ``rows[:, 5]``.

    ``MV.ncols`` is the row width, for empty tensors: ``torch.zeros(0, MV.ncols, dtype=torch.int32)``.
    """

    source = 0        # -1: predicted from a past reference, +1: from a future one
    w = 1             # block width, pixels
    h = 2             # block height, pixels
    src_x = 3         # block centre in the reference (integer part)
    src_y = 4
    dst_x = 5         # block centre in this picture
    dst_y = 6
    motion_x = 7      # motion in 1/motion_scale pixels: dst - src
    motion_y = 8
    motion_scale = 9
    ncols = len(MOTION_VECTOR_COLUMNS)



@dataclass(frozen=True)
class VideoInfo:
    """Stream properties known when the file is opened.

    ``num_frames`` is the container's count (None when it has none; ``len(reader)`` is exact).
    ``motion_vectors`` is ``"exported"`` when libavcodec exports block vectors for this codec and ``"none"``
    otherwise (HEVC, VP9, AV1, ...: frames then carry an empty (0, MV.ncols) tensor and no residual).
    ``residual_method`` says how residuals are predicted for this codec.
    ``b_frame_vectors_stale`` is True for MPEG-4 Part 2 streams that declare B-frames: libavcodec's decoder never
    stores B-VOP vectors, so the ones it exports (and ``Frame.motion_vectors`` of those B-frames, kept equal to
    FFmpeg's export) repeat an earlier picture's. Their residuals are exact all the same (the decoder's own
    prediction), and :func:`codecprim.codec_patches` estimates motion for such videos.
    ``rotation`` is the container's display rotation (phone videos): degrees clockwise, 0/90/180/270, to turn the
    decoded pictures by to show them upright. Frames, vectors and every recipe's output stay in the coded
    orientation (as PyAV and decord return them); ``width`` and ``height`` are the coded picture's.
    """

    path: str
    codec: str
    width: int
    height: int
    fps: float
    num_frames: Optional[int]
    duration_seconds: Optional[float]
    pix_fmt: str
    container: str
    bit_rate: int
    time_base: float
    motion_vectors: str
    residual_method: str
    rotation: int = 0
    b_frame_vectors_stale: bool = False


@dataclass(frozen=True)
class Gop:
    """A group of pictures: it starts at an I-frame (GOP 0 may instead hold the frames before the first one)."""

    index: int
    first_frame: int
    num_frames: int
    pts_seconds: float
    starts_with_iframe: bool = True

    @property
    def first_frame_index(self) -> int:
        """Display index of the GOP's first frame (the same as ``first_frame``)."""
        return self.first_frame

    @property
    def frame_range(self) -> range:
        """Display indices of the GOP's frames."""
        return range(self.first_frame, self.first_frame + self.num_frames)


@dataclass(frozen=True)
class ReaderStats:
    """Counters of damage met while reading (all zero for a clean stream), and the time spent computing
    residuals and copying planes into tensors (the rest of a read is FFmpeg's demuxing and decoding).

    ``frames_decoded`` counts every picture the decoder produced since the reader was opened, including the
    ones decoded only as references for a requested frame; sparse reads (``frames_at``) prove with it that
    they decode only what they need.

    Timestamps strictly increase in display order. ``frames_reordered`` counts frames an H.264/HEVC decoder
    output ahead of an earlier-presented one (it does when it underestimates the reorder depth, e.g. after a
    damaged IDR); they are put back in pts order within a window of 4 frames. ``frames_retimed`` counts frames
    whose pts was missing or not after the previous frame's (packed MPEG-4 B-frames in AVI give the last frame
    its predecessor's pts); each gets the previous pts plus one frame, as FFmpeg reports it.
    ``frames_pts_synthesized`` counts frames whose time the reader made up because the container has none to
    give: raw elementary streams (display index / frame rate), and streams whose container stores decode times
    as presentation times (pts = dts on a stream with B-frames, as ``ffmpeg -i raw.h264 -c copy out.mp4``
    writes): display order then comes from the bitstream, and the i-th frame shown gets the i-th smallest
    container time.

    ``truncated`` is True when the file holds less than its container promises: an MP4 box, the Matroska
    Segment or an AVI RIFF chunk declares more bytes than there are (seen at open), or reading broke off with an
    error before the end. ``truncation`` says which. With ``strict=True`` that raises InvalidVideoError instead.
    """

    packets: int = 0
    frames: int = 0
    frames_decoded: int = 0
    skipped_packets: int = 0
    corrupt_frames: int = 0
    decode_errors: int = 0
    frames_reordered: int = 0
    frames_retimed: int = 0
    frames_pts_synthesized: int = 0
    truncated: bool = False
    truncation: str = ""
    stream_info_probed: bool = True  # False: an MP4/MKV header and H.264 SPS gave what probing decodes pictures for
    residual_seconds: float = 0.0  # CPU time of the reading thread spent on residuals (prediction + subtraction)
    copy_seconds: float = 0.0  # and on copying vectors, QP and planes into the returned buffers
    reference_searches: int = 0  # H.264 blocks with several candidate references (see residual_method)
    reference_search_exhausted: int = 0  # of those, blocks where the search tried every candidate
    frames_predicted_by_decoder: int = 0  # MPEG-4 B-frames whose residual is the decoder's own (see residual_method)
    bframes_without_prediction: int = 0  # MPEG-4 B-frames returned without residual: no prediction (never stale vectors)
    # inter frames an MPEG-family decoder exported no vectors or quantisers for (the last picture of a stream it
    # decodes with output delay, which libavcodec returns at the end without them): returned without residual
    frames_without_export: int = 0

    @property
    def skipped(self) -> int:
        return self.skipped_packets + self.decode_errors


@dataclass(eq=False)
class Frame:
    """One displayed frame and its codec primitives.

    Attributes:
        index: display-order position, 0-based.
        pict_type: "I", "P" or "B".
        pts_seconds: presentation time.
        gop_index: GOP this frame belongs to.
        motion_vectors: int32 (N, 10), columns :data:`MOTION_VECTOR_COLUMNS`, one row per block and direction.
            ``(dst_x, dst_y)`` is the block centre; its content comes from the reference at
            ``(motion_x / motion_scale, motion_y / motion_scale)`` pixels away; ``source`` -1 past, +1 future.
            As FFmpeg exports them: on B-frames of a video with ``info.b_frame_vectors_stale`` they are stale.
        luma: uint8 (H, W) decoded Y plane (no colour conversion). None on the motion-vector-only path
            (``residuals=False`` without ``pixels=True``), whose skipped decoding steps leave pixels inexact.
        residual: int16 (H, W), luma minus its motion-compensated prediction. None for I-frames, for codecs
            without exported vectors, when ``residuals=False``, for an MPEG-4 B-frame the second decoder gave no
            prediction for (``stats.bframes_without_prediction``), and for the last picture of an MPEG-1/2/4 stream
            decoded with output delay (MPEG-1/2 whose sequence does not declare low delay, MPEG-4 with B-frames):
            libavcodec returns it at the end of the stream without vectors or quantisers (its export, like PyAV's,
            has none), so there is nothing to rebuild it from (``stats.frames_without_export``).
        chroma: uint8 (2, ceil(H/2), ceil(W/2)) Cb and Cr (4:2:0), only when opened with ``chroma=True``.
        qp: int8 (ceil(H/16), ceil(W/16)) quantiser per macroblock where the decoder exports it, else None; in
            FFmpeg's units: H.264's QP; for MPEG-1/2, MPEG-4 Part 2 and H.263 the quantiser_scale, twice the
            coded 5-bit quantiser (``-q:v 4`` reads 8).
        key_frame: the decoder marked it as a key frame.
        decode_index: position of its packet in decode order.
        packet_size: size in bytes of the packet that carried it.
        corrupt: the decoder flagged this frame as damaged (concealed). libavcodec's HEVC decoder flags nothing:
            what it cannot decode of a damaged HEVC picture it leaves unwritten (the reader clears HEVC buffers, so
            such areas read 0), with ``corrupt`` False.
        without_export: an inter frame the decoder exported no vectors or quantisers for (the last picture of an
            MPEG-1/2/4 stream decoded with output delay; ``stats.frames_without_export`` counts them).
        rounding: MPEG-4 / H.263+ rounding-control bit of a P-frame read from the bitstream, else -1.
        inter_pixels: how many pixels a motion vector predicts (the rest are intra-coded).
        buffer_addresses: addresses of the buffers the C++ core filled ("luma", "residual", "motion_vectors"), so
            callers and tests can check that the tensors alias them (no copy on the way to Python).
        residual_cell_sums: int64 (Hg, Wg) sums of the squared residual per cell, in place of ``residual``, after
            :meth:`Reader.sum_residual_cells`; equal to :func:`codecprim.ops.saliency.residual_cell_sums` of it.
    """

    index: int
    pict_type: str
    pts_seconds: float
    gop_index: int
    motion_vectors: torch.Tensor
    luma: Optional[torch.Tensor]
    residual: Optional[torch.Tensor]
    chroma: Optional[torch.Tensor] = None
    qp: Optional[torch.Tensor] = None
    key_frame: bool = False
    decode_index: int = -1
    packet_size: int = -1
    corrupt: bool = False
    rounding: int = -1
    inter_pixels: int = 0
    buffer_addresses: dict = field(default_factory=dict, repr=False)
    residual_cell_sums: Optional[torch.Tensor] = None
    without_export: bool = False

    def __repr__(self) -> str:
        def shape(t):
            return None if t is None else tuple(t.shape)

        return (
            f"Frame(index={self.index}, pict_type={self.pict_type!r}, pts_seconds={self.pts_seconds:.3f}, "
            f"gop_index={self.gop_index}, motion_vectors={shape(self.motion_vectors)}, luma={shape(self.luma)}, "
            f"residual={shape(self.residual)})"
        )


def _load_core():
    """The compiled core, imported on first use: ops and models work on machines where it cannot load (a GPU
    box without FFmpeg's libraries runs the CUDA twins from saved tensors)."""
    try:
        from . import _core
    except ImportError as err:
        raise ImportError(
            f"codecprim's compiled core cannot be loaded ({err}); reading videos needs it and FFmpeg's shared "
            "libraries (libavcodec, libavformat, libavutil). Reinstall with `pip install .` on this machine."
        ) from err
    return _core


def _tensor(array) -> Optional[torch.Tensor]:
    return None if array is None else torch.from_numpy(array)


def _frame_from(raw: dict) -> Frame:
    return Frame(
        index=raw["index"],
        pict_type=raw["pict_type"],
        pts_seconds=raw["pts_seconds"],
        gop_index=raw["gop_index"],
        motion_vectors=torch.from_numpy(raw["motion_vectors"]),
        luma=_tensor(raw["luma"]),
        residual=_tensor(raw["residual"]),
        chroma=_tensor(raw["chroma"]),
        qp=_tensor(raw["qp"]),
        key_frame=raw["key_frame"],
        decode_index=raw["decode_index"],
        packet_size=raw["packet_size"],
        corrupt=raw["corrupt"],
        without_export=raw["without_export"],
        rounding=raw["rounding"],
        inter_pixels=raw["inter_pixels"],
        buffer_addresses=raw["buffer_addresses"],
        residual_cell_sums=_tensor(raw["residual_cell_sums"]),
    )


def _damage_seen(core) -> int:
    """Pictures the decoder concealed plus the data it rejected, so far."""
    stats = ReaderStats(**core.stats())
    return stats.corrupt_frames + stats.skipped


def _source_of(source, name: Optional[str]):
    """(what the core reads, the name errors use, whether it is a path) for a path, bytes or a file object."""
    if name is not None and not isinstance(name, str):
        raise ValueError(f"name must be a str, got {type(name).__name__}")
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        return path, name or path, True
    if isinstance(source, (bytes, bytearray, memoryview)):
        return source, name or "<bytes>", False
    if callable(getattr(source, "read", None)):
        label = name or getattr(source, "name", None)
        label = label if isinstance(label, str) else "<file-like>"
        if isinstance(source, io.TextIOBase):
            raise ValueError(f"{label}: the file object must be opened in binary mode, not text")
        seekable = getattr(source, "seekable", None)
        if not (callable(seekable) and seekable() and callable(getattr(source, "seek", None))):
            return _drain(source, label), label, False  # a pipe or socket: read once, into memory
        return source, label, False
    raise ValueError(
        f"codecprim.open takes a path, bytes, bytearray, memoryview or a binary file object, not {type(source).__name__}"
    )


def _drain(stream, label: str) -> bytes:
    chunks = []
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            return b"".join(chunks)
        if not isinstance(chunk, (bytes, bytearray)):
            raise ValueError(f"{label}: the file object must be opened in binary mode, not text")
        chunks.append(bytes(chunk))


class Reader:
    """Streams a video's frames with their codec primitives. Use through :func:`open`.

    Iterating yields every frame in display order, from the start each time a new iteration begins.
    Only the reference pictures are held, so memory does not grow with the video's length.
    """

    def __init__(self, source, *, residuals: bool = True, threads: int = 1, strict: bool = False,
                 chroma: bool = False, name: Optional[str] = None, stall_seconds: Optional[float] = 60.0,
                 pixels: Optional[bool] = None):
        source, path, is_path = _source_of(source, name)
        if pixels is None:
            pixels = bool(residuals)
        elif residuals and not pixels:
            raise ValueError(f"{path}: residuals need the pictures (pixels=True), got residuals=True, pixels=False")
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
            raise ValueError(f"{path}: threads must be a non-negative int (0: the library chooses), got {threads!r}")
        if stall_seconds is None:
            stall_seconds = 0.0
        elif isinstance(stall_seconds, bool) or not isinstance(stall_seconds, (int, float)) or not stall_seconds > 0:
            raise ValueError(f"{path}: stall_seconds must be a positive number or None, got {stall_seconds!r}")
        self._path = path
        self._core = _load_core().Reader(source, path, is_path, bool(residuals), threads, bool(strict), bool(chroma),
                                         float(stall_seconds), bool(pixels))
        self._info = VideoInfo(**self._core.info())
        self._index: Optional[dict] = None
        self._gops: Optional[List[Gop]] = None
        self._started = False

    # -- context manager -------------------------------------------------------------------------------
    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Releases the decoder and its buffers now (tensors already returned stay valid)."""
        if self._core is not None:
            self._core.close()
            self._core = None

    def _live(self):
        if self._core is None:
            raise InvalidVideoError(self._path, "the reader is closed")
        return self._core

    def sum_residual_cells(self, grid: Optional[Tuple[int, int]]) -> None:
        """From the next frame read on, inter frames carry ``residual_cell_sums`` (int64 ``grid``: the squared
        residual summed over each cell of an Hg x Wg grid of the picture, cell (r, c) covering rows
        [r H / Hg, (r + 1) H / Hg) and columns [c W / Wg, (c + 1) W / Wg)) and ``residual`` None. The sums are taken
        inside the residual pass, so the residual is never stored: what patch scoring reads, at a fraction of the
        memory traffic. ``None`` returns to whole residuals."""
        if grid is None:
            self._live().sum_residual_cells(0, 0)
            return
        hg, wg = grid
        for v, side, name in ((hg, self._info.height, "rows"), (wg, self._info.width, "columns")):
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= side:
                raise ValueError(f"{self._path}: the grid's {name} must be an int from 1 to {side}, got {v!r}")
        self._live().sum_residual_cells(hg, wg)

    # -- metadata --------------------------------------------------------------------------------------
    @property
    def path(self) -> str:
        return self._path

    @property
    def info(self) -> VideoInfo:
        return self._info

    @property
    def stats(self) -> ReaderStats:
        """Damage counters so far: packets the decoder rejected, frames it concealed."""
        return ReaderStats(**self._live().stats())

    def _frame_index(self) -> dict:
        if self._index is None:
            self._index = self._live().index()
        return self._index

    @property
    def gops(self) -> List[Gop]:
        """The GOP table, from a parser-only pass over the file (no decoding)."""
        if self._gops is None:
            idx = self._frame_index()
            seconds = self.pts_seconds
            self._gops = [
                Gop(index=g, first_frame=first, num_frames=n, pts_seconds=float(seconds[first]) if n else _NO_PTS_SECONDS,
                    starts_with_iframe=starts)
                for g, first, n, _pts, starts in idx["gops"]
            ]
        return self._gops

    @property
    def pict_types(self) -> str:
        """Frame types in display order ("IBBP..."), from the parser pass: the same string the decoder's frames
        spell (display order from pts, or from POC / the anchor rule where the container stores none or stores
        decode times; an IDR is "I" even when its first slice header is damaged; packed MPEG-4 B-frames count as
        the decoder outputs them; pictures an MP4 edit list starts after are not output, and not listed)."""
        return self._frame_index()["pict_types"]

    @property
    def pts_seconds(self) -> torch.Tensor:
        """Presentation times of all frames in display order (float64, seconds), read without decoding.
        From the container's pts; where it stores decode times as pts, its times sorted. A frame it stores no pts
        for gets the nearest earlier timed frame's time plus one frame duration per frame between them (MPEG-2
        anchors, AVI with MPEG-4 B-frames), or display index x frame duration where no frame has one (raw H.264 /
        HEVC, H.264 in AVI); packed MPEG-4 B-frames take the times of the packets' slots in decode order, as
        ``mpeg4_unpack_bframes`` would give them. Decoded frames carry the same times. Decoded frames the container
        did not time count in ``ReaderStats.frames_pts_synthesized``."""
        pts = self._frame_index()["presentation_pts"]
        return torch.from_numpy(pts.astype(np.float64) * self._info.time_base)

    @property
    def packet_sizes(self) -> torch.Tensor:
        """Packet size in bytes of every frame, display order (int64)."""
        return torch.from_numpy(self._frame_index()["packet_size"])

    def __len__(self) -> int:
        """Frames in the stream, from the parser pass; equal to the frames decoded, except where the decoder
        cannot decode what the parser lists: a GOP whose IDR is undecodable (libavcodec resumes at the next
        IDR, and frame.index skips the lost positions) or a truncated file (``stats.truncated``)."""
        return len(self._frame_index()["pict_types"])

    # -- frames ----------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Frame]:
        core = self._live()
        if self._started:
            core.rewind()
        self._started = True
        while True:
            raw = core.next()
            if raw is None:
                return
            yield _frame_from(raw)

    def read_gop(self, n: int) -> List[Frame]:
        """All frames of GOP ``n`` in display order, reached by seeking to its keyframe (GOPs before it are
        not decoded). Negative ``n`` counts from the end."""
        gops = self.gops
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(f"GOP number must be an int, got {type(n).__name__}")
        index = n + len(gops) if n < 0 else n
        if not 0 <= index < len(gops):
            raise IndexError(f"{self._path}: GOP {n} out of range (the video has {len(gops)} GOPs)")
        gop = gops[index]
        return self.read_frames(gop.first_frame, gop.first_frame + gop.num_frames)

    def __getitem__(self, i: int) -> Frame:
        """The frame with display index ``i`` (negative counts from the end); IndexError when out of range."""
        return self.frames_at([i])[0]

    def frames_at(self, indices: Iterable[int], *, match_iteration: bool = True) -> List[Frame]:
        """Frames at these display indices, returned in the order asked (duplicates and negative indices
        allowed; IndexError when one is out of range).

        Each GOP that holds a requested frame is decoded once, from its keyframe; GOPs holding none are not.
        Frames between requested ones are decoded only as references (no pixel copy, no residual), and when no
        requested frame is a B-frame, non-reference pictures between them are skipped by the decoder
        (``stats.frames_decoded`` shows it). Where seeking would decode from the start anyway (program/transport
        and raw streams), a later GOP is read on to instead. A call also goes on from where the previous one
        stopped when its frames lie ahead in the same GOP (anywhere, on those streams), so one call per frame
        decodes no more than one call for all of them.

        The frames equal those iteration returns. When the decoder conceals damage on the way (``frame.corrupt``,
        ``stats.corrupt_frames``), that would not hold after a seek or a skipped picture: libavcodec conceals with
        state carried over from the pictures decoded before. The call then reads as iteration does, from the
        start with every picture decoded, which on a damaged file costs a decode up to the last frame asked for.
        ``match_iteration=False`` keeps the sparse read's cost instead (what data loaders making many calls per
        file want): frames the decoder concealed, and those predicted from them, may then differ from iteration.
        With match_iteration, a frame the sparse read does not find (where the decoder dropped data, positions
        found by pts and positions counted can disagree) is also read as iteration reads it before the call gives up
        on it; without, the call raises InvalidVideoError instead of decoding from the start.
        """
        total = len(self)
        wanted: List[int] = []
        for i in indices:
            if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
                raise TypeError(f"frame index must be an int, got {type(i).__name__}")
            j = int(i) + total if i < 0 else int(i)
            if not 0 <= j < total:
                raise IndexError(f"{self._path}: frame {int(i)} out of range (the video has {total} frames)")
            wanted.append(j)
        if not wanted:
            return []
        core = self._live()
        self._started = True
        gop_of = self._gop_of_frame()
        by_gop: Dict[int, List[int]] = {}
        for j in sorted(set(wanted)):
            by_gop.setdefault(gop_of[j], []).append(j)
        got: Dict[int, Frame] = {}
        requested = sorted(set(wanted))
        core.request(requested)
        try:
            if not self._read_requested(core, by_gop, gop_of, total, got, stop_on_damage=match_iteration):
                # The decoder met damage while it was not reading as iteration does. libavcodec conceals with
                # state it carries over from the pictures decoded before: across keyframes (H.264's concealment
                # of a damaged P-slice differs after a flush) and through the non-reference pictures a sparse
                # read skips (a damaged MPEG-4 B-VOP changes what later pictures conceal). The concealed picture,
                # and every picture predicted from it, could then differ from what iteration gives. Read as
                # iteration does instead: from the start, every picture decoded. On a damaged file this costs a
                # decode up to the last frame asked for.
                self._read_as_iteration(core, requested, got)
            elif match_iteration and len(got) < len(requested):
                # Where the decoder dropped data, a sparse read finds positions by pts while iteration counted them,
                # and the two can disagree: a position iteration fills may hold no frame here. Read those as
                # iteration does before calling them lost. (Not with match_iteration=False: on a long damaged file
                # each such call would decode from the start, and a sampler is better served by dropping the clip.)
                self._read_as_iteration(core, sorted(set(requested) - set(got)), got)
        finally:
            core.request([])
        missing = sorted(set(wanted) - set(got))
        if missing:
            stats = self.stats
            why = f"the file is truncated: {stats.truncation}" if stats.truncated else "the stream is damaged there"
            raise InvalidVideoError(self._path, f"frames {missing[:8]} are listed by the container but the decoder "
                                                f"cannot produce them ({why})")
        return [got[j] for j in wanted]

    @staticmethod
    def _read_requested(core, by_gop: Dict[int, List[int]], gop_of: List[int], total: int, got: Dict[int, Frame],
                        stop_on_damage: bool) -> bool:
        """Reads the requested frames GOP by GOP; with stop_on_damage, False (stopping there) when the decoder met
        damage in a GOP while not reading as iteration does (after a jump to a keyframe or a skipped picture, in
        this call or in one it went on from)."""
        jumps = core.seeks_by_keyframe()
        position = core.resumable_from()  # display index reading on reaches next (-1: unknown); a call may go on
        # from where the last one stopped (samplers make one call per run of frames)
        for gop in sorted(by_gop):
            first, last = by_gop[gop][0], by_gop[gop][-1]
            # Reading on is free when the reader already stands inside this GOP (the last one ended at its edge),
            # and cheaper than a seek that decodes forward from the start anyway.
            reads_on = 0 <= position <= first and position < total and (gop_of[position] == gop or not jumps)
            if not reads_on:
                core.seek_to_frame(first)
            damage_before = _damage_seen(core)
            position = Reader._read_through(core, set(by_gop[gop]), last, got)
            if stop_on_damage and _damage_seen(core) > damage_before and not core.reads_as_iteration():
                return False
        return True

    @staticmethod
    def _read_as_iteration(core, frames: List[int], got: Dict[int, Frame]) -> None:
        """Reads the sorted ``frames`` as iteration does: from the start, every picture decoded."""
        core.request(frames, skip_nonref=False)
        core.seek_to_frame(0)
        Reader._read_through(core, set(frames), frames[-1], got)

    @staticmethod
    def _read_through(core, targets: set, last: int, got: Dict[int, Frame]) -> int:
        """Reads on until display index ``last``, keeping the targets; returns the index read next (-1 when
        unknown: the stream ended)."""
        while True:
            raw = core.next()
            if raw is None:
                return -1
            index = raw["index"]
            if index in targets:
                got[index] = _frame_from(raw)
            if index >= last:
                return index + 1

    def _gop_of_frame(self) -> List[int]:
        """GOP number of every display index."""
        owners: List[int] = []
        for g in self.gops:
            owners.extend([g.index] * g.num_frames)
        return owners

    def read_frames(self, start: int, stop: int) -> List[Frame]:
        """Frames with display index in [start, stop), reached by seeking to the keyframe before ``start``. Where
        the decoder conceals damage after that seek, the concealed frames and those predicted from them can differ
        from iteration's; :meth:`frames_at` returns iteration's."""
        return list(self.iter_frames(start, stop))

    def iter_frames(self, start: int, stop: int) -> Iterator[Frame]:
        """:meth:`read_frames` one frame at a time: memory holds the frame being used, not the range (any other
        read on this reader ends the iteration's position)."""
        core = self._live()
        total = len(self)
        if not 0 <= start <= stop <= total:
            raise IndexError(f"{self._path}: frame range [{start}, {stop}) out of range (0..{total})")
        self._started = True
        if start == stop:
            return
        core.seek_to_frame(start)
        while True:
            raw = core.next()
            if raw is None or raw["index"] >= stop:
                return
            yield _frame_from(raw)


def open(source, *, residuals: bool = True, threads: int = 1, strict: bool = False, chroma: bool = False,
         name: Optional[str] = None, stall_seconds: Optional[float] = 60.0, pixels: Optional[bool] = None) -> Reader:
    """Opens a video and returns a :class:`Reader` (a context manager and iterator of :class:`Frame`).

    Args:
        source: the video: a path, its bytes (``bytes``, ``bytearray``, ``memoryview``: copied once), or a binary
            file object (read through FFmpeg's custom I/O without a temporary file; seekable ones are read in
            place, others such as pipes are read into memory first), e.g. a member of a tar shard.
        residuals: True decodes pixels and computes residuals; False is the motion-vector-only fast path
            (skips the loop filter and, where the decoder honours it, the IDCT; vectors are identical).
        pixels: with ``residuals=False``, True still decodes fully and returns the pictures (luma, chroma), only
            without the residual pass: for consumers that warp pictures themselves (the CoPE recipe). None
            (default): the same as ``residuals``.
        threads: decoder slice threads; 0 lets the library choose (one per core, at most 16), the FFmpeg, PyAV
            and torchcodec convention. Results are identical for every value; parallelise across videos in the
            data loader for throughput.
        strict: raise on damage inside the stream instead of skipping it (counted in ``reader.stats``).
        chroma: also return the Cb/Cr planes (4:2:0) in ``frame.chroma``.
        name: what errors and ``reader.path`` call the source (default: the path, the file object's ``name``,
            or ``"<bytes>"``).
        stall_seconds: a read that makes no progress (no packet) for this long ends with
            :class:`~codecprim.errors.VideoStallError` instead of hanging (FFmpeg's interrupt callback; None: never).

    Raises:
        VideoNotFoundError: (a FileNotFoundError) the path does not exist.
        InvalidVideoError: (a ValueError) not a readable video.
        UnsupportedVideoError: (a ValueError) no decoder for it in this FFmpeg build.
        VideoIOError: (an OSError) reading failed.
        VideoStallError: (a TimeoutError) reading made no progress for ``stall_seconds``.
        ValueError: a bad argument (not a video problem).
    """
    return Reader(source, residuals=residuals, threads=threads, strict=strict, chroma=chroma, name=name,
                  stall_seconds=stall_seconds, pixels=pixels)
