"""One call from a video file to the patches a codec-aware ViT sees (OneVision-Encoder style).

:func:`codec_patches` samples frames (:mod:`codecprim.data.sampling`), scores every ``patch x patch`` cell of
the model-size grid by camera-compensated motion plus residual energy (:mod:`codecprim.ops.saliency`), keeps
I-frames whole and the most salient P-frame patches up to ``budget`` (:mod:`codecprim.ops.select`), and resizes
and converts only those patches from YUV to RGB (:func:`codecprim.ops.resize.resize_patches`,
:mod:`codecprim.ops.gather`; the pixels equal those cut from whole frames resized to the model size, which is
what estimated motion, the whole-frame modes and CUDA devices do). It is the per-video function of :class:`codecprim.data.CodecClipDataset`.

Decisions (documented contract):

* ``budget`` is the TOTAL number of patches returned, I-frame patches included: with the defaults
  (64 frames, GOP 32, 224 px, 14 px patches) two whole I-frames take 512 of the 2048 and the
  P-frames share 1536 -- 12.5 % of the 16384 patches of the clip. So
  ``len(pixels) == len(positions) == len(visible_indices) == min(budget, T * Hg * Wg)``.
* Model size: ``size x size`` (aspect ratio not kept; ``size`` a multiple of ``patch``), or, when
  ``max_pixels`` or ``min_pixels`` is given, the video's aspect ratio under that pixel budget with both
  sides multiples of ``patch`` (:func:`codecprim.data.resolution.fit_pixels`; ``size`` is then unused).
  The grid is ``(T, h // patch, w // patch)`` and positions live on it.
* Frames: ``sampling`` ``"consecutive"`` / ``"uniform"`` / ``"fps"`` with ``start_seconds``,
  ``video_start``, ``video_end``, ``fps``, ``max_frames`` as in :mod:`codecprim.data.sampling`. The
  consecutive window starts at frame 0 unless ``start_seconds`` or ``seed`` is given (``seed`` draws a
  random window). Each frame keeps its own vectors and residual (relative to its own reference frame).
* A video with fewer than ``num_frames`` frames gives a SHORTER clip (``T = n``), never padded
  with repeated frames; ``positions[:, 0] < T`` and ``saliency.shape[0] == T``.
* ``modes``: ``"codec"`` (the above), ``"chunks"`` (the sampled frames cut into
  ``max(1, budget // (Hg * Wg))`` equal temporal chunks, one frame of each kept whole: the middle one,
  or a random one with ``seed``) or ``"image"`` (the first sampled frame, whole, at ``t = 0``). A mapping
  ``{"codec": 0.5, "chunks": 0.375, "image": 0.125}`` draws the mode with ``seed``. All three give a
  :class:`CodecClip`; in the whole-frame modes ``saliency`` is 0, every patch is an anchor (tier 2), and
  ``motion_source`` is ``"none"`` (no motion was used); one whole frame is kept even when it exceeds
  ``budget``.
* Codecs without exported vectors (``reader.info.motion_vectors == "none"``: HEVC, VP9, AV1), and MPEG-4
  Part 2 streams with B-frames (``reader.info.b_frame_vectors_stale``: libavcodec exports no B-VOP vectors):
  vectors are estimated by block matching (:func:`codecprim.ops.motion_estimation.estimate_motion_frames`
  with ``config.estimation``) on the luma already resized to the model size, against the previous
  decoded frame. Each vector's motion counts by its confidence (untrusted vectors as no motion), and
  intra blocks (no match: new content) get no residual; the residual is the luma minus the
  motion-compensated prediction. ``motion_source`` then says ``"estimated"``. ``config.motion =
  "estimated"`` estimates for every codec (to compare with the codec's own vectors).
* A file that cannot be opened or yields no frame in the asked range raises a codecprim error
  (:mod:`codecprim.errors`) naming it.
* Torch runs with one intra-op thread inside the call (:mod:`codecprim._intra_op`: at the default count a busy
  machine made it 4-40x slower); the caller's ``torch.get_num_threads()`` is restored on return.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import torch

from ._intra_op import intra_op_threads
from .data.resolution import model_size
from .data.sampling import plan_frames, read_frames, sample_frames
from .errors import InvalidVideoError
from .reader import MV
from .reader import open as open_video
from .ops._checks import check_choice, check_positive_int
from .ops.camera import CAMERA_MODELS
from .ops.motion_estimation import MotionEstimationConfig, estimate_motion_frames
from .ops.gather import gather_rgb_patches
from .ops.resize import resize_patches, resize_yuv
from .ops.saliency import (SaliencyConfig, combine_saliency, motion_energy_grid, residual_cell_sums,
                           residual_energy_grid, residual_rms)
from .ops.select import select_patches

__all__ = ["MODES", "MOTIONS", "SELECTION_ESTIMATION", "CodecClip", "CodecPatchesConfig", "codec_patches"]

MODES = ("codec", "chunks", "image")
MOTIONS = ("auto", "estimated")
# Selection needs where things move, not the best prediction: integer-pel vectors at model size
# (16 x 16 blocks, 8 x 8 partitions where they pay, which keeps object borders sharp); sub-pel
# refinement costs more than the whole integer search and changes no selection
# (bench/motion_estimation.py).
SELECTION_ESTIMATION = MotionEstimationConfig(subpel=False)


@dataclass(frozen=True)
class CodecPatchesConfig:
    """Knobs beyond the call's arguments (defaults follow OneVision-Encoder's codec patching)."""

    saliency: SaliencyConfig = field(default_factory=SaliencyConfig)
    floor: float = 0.5                 # fused saliency below this is noise (stratified fallback)
    ratio: float | None = None         # per-frame share instead of a clip budget (pass budget=None)
    matrix: str = "bt601"              # YUV -> RGB of the gathered patches
    color_range: str = "limited"
    threads: int = 1                   # decoder threads
    motion: str = "auto"               # "auto": codec vectors where exported; "estimated": always block matching
    estimation: MotionEstimationConfig = SELECTION_ESTIMATION  # block matching where vectors are estimated
    # Selection on codec vectors needs no pixels, so the decoded planes can wait at their coded size and only the
    # chosen patches be resized; above this many bytes of planes for the clip (64 frames of 1080p: 199 MB; of 4K:
    # 796 MB, per loader worker) every frame is resized as it is decoded instead. The result is the same.
    max_held_bytes: int = 256 << 20

    def __post_init__(self) -> None:
        check_choice("motion", self.motion, MOTIONS)
        if isinstance(self.max_held_bytes, bool) or not isinstance(self.max_held_bytes, int) or self.max_held_bytes < 0:
            raise ValueError(f"max_held_bytes must be a non-negative int, got {self.max_held_bytes!r}")


@dataclass(repr=False)
class CodecClip:
    """The patches of one clip and where they sit on the ``(T, Hg, Wg)`` virtual grid."""

    pixels: torch.Tensor           # (K, 3, patch, patch) uint8 RGB
    positions: torch.Tensor        # (K, 3) int64: t, row, col
    visible_indices: torch.Tensor  # (K,) int64 flat t * Hg * Wg + row * Wg + col, ascending
    saliency: torch.Tensor         # (T, Hg, Wg) float32, 0 on I-frames
    frame_indices: torch.Tensor    # (T,) int64 display index of each sampled frame
    is_iframe: torch.Tensor        # (T,) bool
    anchor: torch.Tensor           # (T,) bool frames kept whole
    tier: torch.Tensor             # (K,) int8: 2 anchor, 1 salient, 0 stratified fallback
    pts_seconds: torch.Tensor      # (T,) float64
    camera_fallback: torch.Tensor  # (T,) bool: a P-frame's camera model fell back to the median
    grid: tuple[int, int, int]     # (T, Hg, Wg)
    patch: int
    motion_source: str             # "exported" (codec vectors), "estimated" (block matching), "none" (whole frames)
    path: str
    pict_types: str = ""           # frame type of each sampled frame, "I" / "P" / "B"
    fps: float = 0.0               # frames per second of video time the clip's T frames represent
    truncated: bool = False        # the stream ended before what the container promised
    mode: str = "codec"            # "codec", "chunks" or "image"

    def __repr__(self) -> str:
        return (f"CodecClip(pixels={tuple(self.pixels.shape)}, grid={self.grid}, mode={self.mode!r}, "
                f"frames={self.frame_indices.tolist()[:8]}{'...' if len(self.frame_indices) > 8 else ''}, "
                f"pict_types={self.pict_types[:16]!r}, fps={self.fps:.3f}, motion_source={self.motion_source!r}, "
                f"truncated={self.truncated}, path={self.path!r})")


def _check_arguments(*, num_frames, size, patch, budget, camera, sampling, ratio, config=None, start_seconds,
                     video_start, video_end, fps, max_frames, min_pixels, max_pixels, modes, seed=None) -> dict:
    """Reject bad arguments before a file is opened; returns the sampler's keywords."""
    if config is not None and ratio is None:
        ratio = config.ratio
    patch = check_positive_int("patch", patch)
    model_size(1, 1, size, patch, min_pixels, max_pixels)
    check_choice("camera", camera, CAMERA_MODELS)
    if (budget is None) == (ratio is None):
        raise ValueError("pass exactly one of budget (total patches) or ratio (per-frame share); "
                         "use budget=None together with ratio=")
    if budget is not None:
        check_positive_int("budget", budget)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be a non-negative int or None; got {seed!r}")
    _check_modes(modes)
    window = dict(num_frames=num_frames, sampling=sampling, start_seconds=start_seconds, video_start=video_start,
                  video_end=video_end, fps=fps, max_frames=max_frames)
    plan_frames(torch.zeros(0, dtype=torch.float64), 25.0, **window)  # the sampler's own checks, on no frames
    return window


def _check_modes(modes: str | Mapping[str, float]) -> None:
    if isinstance(modes, str):
        check_choice("modes", modes, MODES)
        return
    if not isinstance(modes, Mapping) or not modes:
        raise ValueError(f"modes must be one of {MODES} or a mapping of them to weights; got {modes!r}")
    for name, weight in modes.items():
        check_choice("modes key", name, MODES)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise ValueError(f"modes[{name!r}] must be a non-negative weight; got {weight!r}")
    if float(sum(modes.values())) <= 0:
        raise ValueError(f"modes weights must not all be 0; got {modes!r}")


def _choose_mode(modes: str | Mapping[str, float], generator: torch.Generator | None) -> str:
    if isinstance(modes, str):
        return modes
    if generator is None:
        raise ValueError("mixing modes draws one per clip: pass seed= (CodecClipDataset does)")
    draw = float(torch.rand((), dtype=torch.float64, generator=generator)) * float(sum(modes.values()))
    for name, weight in modes.items():
        draw -= weight
        if draw < 0:
            return name
    return next(name for name, weight in reversed(list(modes.items())) if weight > 0)


def _one_per_chunk(indices: tuple[int, ...], chunks: int, generator: torch.Generator | None) -> list[int]:
    """One of ``indices`` from each of ``chunks`` equal runs: the middle one, or a random one with a generator."""
    n = len(indices)
    chunks = max(1, min(chunks, n))
    out = []
    for j in range(chunks):
        lo, hi = j * n // chunks, (j + 1) * n // chunks
        offset = int(torch.randint(hi - lo, (), generator=generator)) if generator is not None else (hi - lo) // 2
        out.append(indices[lo + offset])
    return out


@intra_op_threads(1)
def codec_patches(path, *, num_frames: int = 64, size: int = 224, patch: int = 14, budget: int | None = 2048,
                  camera: str = "similarity", sampling: str = "consecutive", device: str | torch.device = "cpu",
                  ratio: float | None = None, config: CodecPatchesConfig | None = None,
                  start_seconds: float | None = None, video_start: float | None = None,
                  video_end: float | None = None, fps: float | None = None, max_frames: int | None = None,
                  min_pixels: int | None = None, max_pixels: int | None = None,
                  modes: str | Mapping[str, float] = "codec", seed: int | None = None) -> CodecClip:
    """Decode a clip and return its selected patches (see the module docstring for the contract).

    Args:
        path: video file.
        num_frames: T, frames of the clip (fewer if the video is shorter).
        size: frames are resized to ``size x size``; a multiple of ``patch`` (unused with a pixel bound).
        patch: patch side in pixels.
        budget: total patches K returned, I-frames included (``None`` with ``ratio``).
        camera: camera-motion model removed before scoring, one of ``CAMERA_MODELS``.
        sampling: ``"consecutive"``, ``"uniform"`` or ``"fps"`` (:mod:`codecprim.data.sampling`).
        device: where saliency, selection and gathering run (decoding is on the CPU).
        ratio: OneVision's per-frame share ``floor(ratio * P0)`` of each P-frame (needs budget=None).
        config: further knobs, :class:`CodecPatchesConfig`.
        start_seconds: where a consecutive window starts (seconds from the first frame).
        video_start, video_end: the part of the video sampled from, in seconds.
        fps, max_frames: target rate and frame cap of ``sampling="fps"``.
        min_pixels, max_pixels: keep the aspect ratio with ``h * w`` within these bounds.
        modes: ``"codec"``, ``"chunks"``, ``"image"``, or a mapping of them to weights drawn with ``seed``.
        seed: random choices of this clip (window start, mode, chunk frames); None = none are random.
    """
    config = config or CodecPatchesConfig()
    ratio = config.ratio if ratio is None else ratio
    window = _check_arguments(num_frames=num_frames, size=size, patch=patch, budget=budget, camera=camera,
                              sampling=sampling, ratio=ratio, start_seconds=start_seconds, video_start=video_start,
                              video_end=video_end, fps=fps, max_frames=max_frames, min_pixels=min_pixels,
                              max_pixels=max_pixels, modes=modes, seed=seed)
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        # Say why instead of letting torch fail deep inside an op (and never fall back to the CPU silently).
        raise RuntimeError(f"codec_patches(device={str(device)!r}) needs a CUDA GPU, and torch sees none "
                           "(torch.cuda.is_available() is False); use device='cpu'")
    check_choice("device type", device.type, ("cpu", "cuda"))
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    mode = _choose_mode(modes, generator)
    sal_config = replace(config.saliency, camera=replace(config.saliency.camera, model=camera))

    # Only codec-mode selection on the codec's own vectors reads the residual; whole frames and block matching
    # need the pictures alone.
    residuals = mode == "codec" and config.motion != "estimated"
    reader = open_video(path, residuals=residuals, pixels=True, chroma=True, threads=config.threads)
    if residuals and reader.info.b_frame_vectors_stale:
        # Motion will be estimated (B-frame vectors are stale): skip the residual pass and its second decoder.
        reader.close()
        reader = open_video(path, residuals=False, pixels=True, chroma=True, threads=config.threads)
    with reader:
        info = reader.info
        height, width = model_size(info.height, info.width, size, patch, min_pixels, max_pixels)
        grid = (height // patch, width // patch)
        sample = sample_frames(reader, generator=generator, **window)
        if not len(sample):
            raise InvalidVideoError(path, "no frame to sample: the video has no frames in the asked range")
        if mode == "codec":
            wanted = list(sample.indices)
        elif mode == "chunks":
            per_clip = budget // (grid[0] * grid[1]) if budget is not None else math.ceil(ratio * len(sample))
            wanted = _one_per_chunk(sample.indices, int(per_clip), generator)
        else:
            wanted = [sample.indices[0]]
        estimated = mode == "codec" and (info.motion_vectors == "none" or info.b_frame_vectors_stale
                                         or config.motion == "estimated")
        # Selection needs no pixels when the codec exports vectors: the frames stay at their coded size and only
        # the chosen patches are resized (resize_patches, equal to cutting them from whole resized frames). The
        # price is memory: the clip's decoded planes are held until selection (64 x 1.4 MB at 720p).
        held = len(wanted) * info.width * info.height * 3 // 2
        cut_late = (mode == "codec" and not estimated and device.type == "cpu" and patch % 2 == 0
                    and held <= config.max_held_bytes)
        if mode == "codec" and not estimated and grid[0] <= info.height and grid[1] <= info.width:
            # Selection reads only the residual's energy per cell: summed inside the core's residual pass, the
            # residual itself is never written out (1.8 MB a frame at 720p).
            reader.sum_residual_cells(grid)
        frames = _decode(reader, wanted, (height, width), grid, estimated, mode == "codec", device,
                         resize=not cut_late)
        truncated = reader.stats.truncated

    t = len(frames["index"])
    is_iframe = torch.tensor(frames["iframe"], dtype=torch.bool, device=device)
    if not cut_late:
        luma = torch.stack(frames["luma"])        # (T, h, w)
        chroma = torch.stack(frames["chroma"])    # (T, 2, h/2, w/2)
    common = dict(
        frame_indices=torch.tensor(frames["index"], dtype=torch.int64, device=device), is_iframe=is_iframe,
        pts_seconds=torch.tensor(frames["pts"], dtype=torch.float64, device=device), grid=(t, *grid), patch=patch,
        path=str(path), pict_types="".join(frames["type"]), fps=sample.fps * t / len(sample), truncated=truncated,
        mode=mode)
    if mode != "codec":
        return _whole_frames(luma, chroma, config, common)
    confidence = None
    if estimated:
        vectors, confidence, residual = _estimated_primitives(luma, torch.stack(frames["ref"]), is_iframe, grid,
                                                              config.estimation)
        frame_size = (height, width)
    else:
        vectors = [v.to(device) for v in frames["vectors"]]
        residual = frames["residual"][0]  # (T, Hg, Wg)
        frame_size = (info.height, info.width)
    motion, fallback = motion_energy_grid(vectors, frame_size, grid, (height, width), camera=sal_config.camera,
                                          confidence=confidence)
    saliency = combine_saliency(motion, residual, is_iframe, sal_config)
    selection = select_patches(saliency, is_iframe, budget=budget, ratio=ratio if budget is None else None,
                               floor=config.floor)
    if cut_late:
        pixels = _patch_pixels(frames["luma"], frames["chroma"], selection.positions, (height, width), patch, config)
    else:
        pixels = gather_rgb_patches(luma, chroma, selection.positions, patch, matrix=config.matrix,
                                    color_range=config.color_range)
    return CodecClip(
        pixels=pixels, positions=selection.positions, visible_indices=selection.visible_indices,
        saliency=saliency, anchor=selection.anchor, tier=selection.tier, camera_fallback=fallback & ~is_iframe,
        motion_source="estimated" if estimated else "exported", **common)


def _whole_frames(luma: torch.Tensor, chroma: torch.Tensor, config: CodecPatchesConfig, common: dict) -> CodecClip:
    """Every patch of every frame (the chunks and image modes)."""
    t, hg, wg = common["grid"]
    device = luma.device
    cells = torch.arange(t * hg * wg, dtype=torch.int64, device=device)
    positions = torch.stack([cells // (hg * wg), cells // wg % hg, cells % wg], dim=1)  # (T*Hg*Wg, 3)
    pixels = gather_rgb_patches(luma, chroma, positions, common["patch"], matrix=config.matrix,
                                color_range=config.color_range)
    return CodecClip(
        pixels=pixels, positions=positions, visible_indices=cells,
        saliency=torch.zeros((t, hg, wg), dtype=torch.float32, device=device),
        anchor=torch.ones(t, dtype=torch.bool, device=device),
        tier=torch.full((t * hg * wg,), 2, dtype=torch.int8, device=device),
        camera_fallback=torch.zeros(t, dtype=torch.bool, device=device), motion_source="none", **common)


def _patch_pixels(luma: list[torch.Tensor], chroma: list[torch.Tensor], positions: torch.Tensor,
                  size: tuple[int, int], patch: int, config: CodecPatchesConfig) -> torch.Tensor:
    """RGB ``(K, 3, patch, patch)`` of the cells at ``positions`` from frames at their coded size: each patch's
    luma and chroma resized alone, then converted as K one-patch frames."""
    half = patch // 2
    luma_cells = resize_patches(luma, size, positions, patch)                          # (K, p, p)
    chroma_cells = resize_patches(chroma, (size[0] // 2, size[1] // 2), positions, half)  # (K, 2, p/2, p/2)
    own = torch.zeros_like(positions)
    own[:, 0] = torch.arange(positions.shape[0])
    return gather_rgb_patches(luma_cells, chroma_cells, own, patch, matrix=config.matrix,
                              color_range=config.color_range)


def _decode(reader, wanted: list[int], size: tuple[int, int], grid: tuple[int, int], estimated: bool,
            primitives: bool, device: torch.device, *, resize: bool = True) -> dict[str, list]:
    """Read the wanted frames (and, for estimated motion, each one's predecessor) GOP by GOP, keeping per
    frame only what the clip needs: planes at model size, or with ``resize=False`` at their coded size. With
    ``primitives``, ``"residual"`` holds one (T, Hg, Wg) tensor, the residual energy of the whole clip."""
    keep = set(wanted)
    needed = sorted(keep | ({i - 1 for i in wanted if i > 0} if estimated else set()))
    out: dict[str, list] = {k: [] for k in ("index", "iframe", "type", "pts", "vectors", "residual", "luma",
                                            "chroma", "ref")}
    previous, previous_index = None, -2  # resized luma of the last frame read (reference for estimated motion)
    residual_size = None
    for frame in read_frames(reader, needed):
        planes = frame.chroma
        if planes is None:  # a grey-only stream: neutral chroma
            planes = torch.full((2, -(-frame.luma.shape[0] // 2), -(-frame.luma.shape[1] // 2)), 128, dtype=torch.uint8)
        if resize:
            luma, chroma = resize_yuv(frame.luma[None].to(device), planes[None].to(device), size)
        else:
            luma, chroma = frame.luma[None], planes[None]
        if frame.index in keep:
            out["index"].append(frame.index)
            out["iframe"].append(frame.pict_type == "I")
            out["type"].append(frame.pict_type)
            out["pts"].append(frame.pts_seconds)
            out["luma"].append(luma[0])
            out["chroma"].append(chroma[0])
            if estimated:
                out["ref"].append(previous if previous_index == frame.index - 1 else luma[0])
            elif primitives:
                out["vectors"].append(frame.motion_vectors)
                # exact per-cell sums now (the frame's residual is not kept), their RMS for the clip at once
                res, sums = frame.residual, frame.residual_cell_sums
                if sums is not None:
                    residual_size = tuple(frame.luma.shape)
                    out["residual"].append(sums.to(device))
                elif res is not None:
                    residual_size = tuple(res.shape)
                    out["residual"].append(residual_cell_sums(res.to(device), grid))
                else:
                    out["residual"].append(torch.zeros(grid, dtype=torch.int64, device=device))
        previous, previous_index = luma[0], frame.index
    if out["residual"]:  # frames without a residual summed to 0: any cell area gives them RMS 0
        out["residual"] = [residual_rms(torch.stack(out["residual"]), residual_size or grid, grid)]
    return out


def _estimated_primitives(luma: torch.Tensor, ref: torch.Tensor, is_iframe: torch.Tensor, grid: tuple[int, int],
                          estimation: MotionEstimationConfig,
                          ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """Block-matched vectors, their confidences and residual energy at model size for codecs that
    export no vectors (I-frames: no rows, no residual)."""
    t = luma.shape[0]
    p_frames = [i for i in range(t) if not bool(is_iframe[i])]
    empty = torch.zeros(0, MV.ncols, dtype=torch.int32, device=luma.device)
    vectors = [empty] * t
    confidence = [torch.zeros(0, dtype=torch.float32, device=luma.device)] * t
    residual = torch.zeros((t, *grid), dtype=torch.float32, device=luma.device)
    if p_frames:
        index = torch.tensor(p_frames, device=luma.device)
        est = estimate_motion_frames(luma[index], ref[index], config=estimation)
        for j, i in enumerate(p_frames):
            vectors[i], confidence[i] = est.vectors[j], est.confidence[j]
        residual[index] = residual_energy_grid(est.residual, grid)
    return vectors, confidence, residual
