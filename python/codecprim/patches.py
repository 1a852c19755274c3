"""One call from a video file to the patches a codec-aware ViT sees (OneVision-Encoder style).

:func:`codec_patches` decodes ``num_frames`` frames, scores every ``patch x patch`` cell of the
frames resized to ``size x size`` by camera-compensated motion plus residual energy
(:mod:`codecprim.ops.saliency`), keeps I-frames whole and the most salient P-frame patches up to
``budget`` (:mod:`codecprim.ops.select`), and converts only those patches from YUV to RGB
(:mod:`codecprim.ops.gather`).

Decisions (documented contract):

* ``budget`` is the TOTAL number of patches returned, I-frame patches included: with the defaults
  (64 frames, GOP 32, 224 px, 14 px patches) two whole I-frames take 512 of the 2048 and the
  P-frames share 1536 -- 12.5 % of the 16384 patches of the clip. So
  ``len(pixels) == len(positions) == len(visible_indices) == min(budget, T * Hg * Wg)``.
* Frames are resized whole to ``size x size`` (aspect ratio not kept); ``size`` must be a multiple
  of ``patch``; the grid is ``(T, size // patch, size // patch)``.
* ``sampling="consecutive"`` takes frames ``0 .. num_frames-1``; ``"uniform"`` takes
  ``floor(i * n / num_frames)`` for ``i < num_frames`` over the video's ``n`` frames. Either way each
  frame keeps its own vectors and residual (relative to its own reference frame).
* A video with fewer than ``num_frames`` frames gives a SHORTER clip (``T = n``), never padded
  with repeated frames; ``positions[:, 0] < T`` and ``saliency.shape[0] == T``.
* Codecs without exported vectors (``reader.info.motion_vectors == "none"``: HEVC, VP9, AV1):
  vectors are estimated by block matching (:func:`codecprim.ops.motion_estimation.estimate_motion_batch`)
  on the luma already resized to the model size, against the previous decoded frame, and the
  residual is the luma minus :func:`codecprim.ops.warp.predict_from_vectors`; ``motion_source`` then
  says ``"estimated"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from .reader import MV
from .reader import open as open_video
from .ops._checks import check_choice
from .ops.camera import CAMERA_MODELS
from .ops.gather import gather_rgb_patches
from .ops.resize import resize_yuv
from .ops.saliency import SaliencyConfig, combine_saliency, motion_energy_grid, residual_energy_grid
from .ops.select import select_patches

__all__ = ["SAMPLING_MODES", "CodecClip", "CodecPatchesConfig", "codec_patches", "sample_frame_indices"]

SAMPLING_MODES = ("consecutive", "uniform")


@dataclass(frozen=True)
class CodecPatchesConfig:
    """Knobs beyond the call's arguments (defaults follow OneVision-Encoder's codec patching)."""

    saliency: SaliencyConfig = field(default_factory=SaliencyConfig)
    floor: float = 0.5                 # fused saliency below this is noise (stratified fallback)
    ratio: float | None = None         # per-frame share instead of a clip budget (pass budget=None)
    matrix: str = "bt601"              # YUV -> RGB of the gathered patches
    color_range: str = "limited"
    threads: int = 1                   # decoder threads


@dataclass
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
    motion_source: str             # "exported" (codec vectors) or "estimated" (block matching)
    path: str


def sample_frame_indices(num_available: int, num_frames: int, sampling: str) -> list[int]:
    """Display indices of the frames a clip uses (see the module docstring)."""
    check_choice("sampling", sampling, SAMPLING_MODES)
    count = min(num_frames, num_available)
    if sampling == "consecutive" or count == num_available:
        return list(range(count))
    return [i * num_available // count for i in range(count)]


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def codec_patches(path, *, num_frames: int = 64, size: int = 224, patch: int = 14, budget: int | None = 2048,
                  camera: str = "similarity", sampling: str = "consecutive", device: str | torch.device = "cpu",
                  ratio: float | None = None, config: CodecPatchesConfig | None = None) -> CodecClip:
    """Decode a clip and return its selected patches (see the module docstring for the contract).

    Args:
        path: video file.
        num_frames: T, frames of the clip (fewer if the video is shorter).
        size: frames are resized to ``size x size``; a multiple of ``patch``.
        patch: patch side in pixels.
        budget: total patches K returned, I-frames included (``None`` with ``ratio``).
        camera: camera-motion model removed before scoring, one of ``CAMERA_MODELS``.
        sampling: ``"consecutive"`` or ``"uniform"``.
        device: where saliency, selection and gathering run (decoding is on the CPU).
        ratio: OneVision's per-frame share ``floor(ratio * P0)`` of each P-frame (needs budget=None).
        config: further knobs, :class:`CodecPatchesConfig`.
    """
    config = config or CodecPatchesConfig()
    num_frames = _positive_int("num_frames", num_frames)
    size = _positive_int("size", size)
    patch = _positive_int("patch", patch)
    if size % patch:
        raise ValueError(f"size ({size}) must be a multiple of patch ({patch})")
    check_choice("camera", camera, CAMERA_MODELS)
    check_choice("sampling", sampling, SAMPLING_MODES)
    ratio = config.ratio if ratio is None else ratio
    if (budget is None) == (ratio is None):
        raise ValueError("pass exactly one of budget (total patches) or ratio (per-frame share); "
                         "use budget=None together with ratio=")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        # Say why instead of letting torch fail deep inside an op (and never fall back to the CPU silently).
        raise RuntimeError(f"codec_patches(device={str(device)!r}) needs a CUDA GPU, and torch sees none "
                           "(torch.cuda.is_available() is False); use device='cpu'")
    check_choice("device type", device.type, ("cpu", "cuda"))
    sal_config = replace(config.saliency, camera=replace(config.saliency.camera, model=camera))
    grid = (size // patch, size // patch)

    with open_video(path, residuals=True, chroma=True, threads=config.threads) as reader:
        info = reader.info
        estimated = info.motion_vectors == "none"
        total = len(reader) if sampling == "uniform" else None
        wanted = sample_frame_indices(total if total is not None else num_frames, num_frames, sampling)
        frames = _decode(reader, wanted, size, grid, estimated, device)
    if not frames["index"]:
        raise ValueError(f"{path}: the video has no decodable frames")

    t = len(frames["index"])
    is_iframe = torch.tensor(frames["iframe"], dtype=torch.bool, device=device)
    luma = torch.stack(frames["luma"])        # (T, size, size)
    chroma = torch.stack(frames["chroma"])    # (T, 2, size/2, size/2)
    if estimated:
        vectors, residual = _estimated_primitives(luma, torch.stack(frames["ref"]), is_iframe, grid)
        frame_size = (size, size)
    else:
        vectors = [v.to(device) for v in frames["vectors"]]
        residual = torch.stack(frames["residual"])  # (T, Hg, Wg)
        frame_size = (info.height, info.width)
    motion, fallback = motion_energy_grid(vectors, frame_size, grid, (size, size), camera=sal_config.camera)
    saliency = combine_saliency(motion, residual, is_iframe, sal_config)
    selection = select_patches(saliency, is_iframe, budget=budget, ratio=ratio if budget is None else None,
                               floor=config.floor)
    pixels = gather_rgb_patches(luma, chroma, selection.positions, patch, matrix=config.matrix,
                                color_range=config.color_range)
    return CodecClip(
        pixels=pixels, positions=selection.positions, visible_indices=selection.visible_indices,
        saliency=saliency, frame_indices=torch.tensor(frames["index"], dtype=torch.int64, device=device),
        is_iframe=is_iframe, anchor=selection.anchor, tier=selection.tier,
        pts_seconds=torch.tensor(frames["pts"], dtype=torch.float64, device=device),
        camera_fallback=fallback & ~is_iframe,
        grid=(t, *grid), patch=patch, motion_source="estimated" if estimated else "exported", path=str(path))


def _decode(reader, wanted: list[int], size: int, grid: tuple[int, int], estimated: bool,
            device: torch.device) -> dict[str, list]:
    """Stream the video once, keeping per wanted frame only what the clip needs at model size."""
    keep = set(wanted)
    last = max(wanted) if wanted else -1
    out: dict[str, list] = {k: [] for k in ("index", "iframe", "pts", "vectors", "residual", "luma", "chroma", "ref")}
    previous = None  # resized luma of the previous decoded frame (reference for estimated motion)
    for frame in reader:
        if frame.index > last:
            break
        if frame.index not in keep and not (estimated and frame.index + 1 in keep):
            continue
        planes = frame.chroma
        if planes is None:  # a grey-only stream: neutral chroma
            planes = torch.full((2, -(-frame.luma.shape[0] // 2), -(-frame.luma.shape[1] // 2)), 128, dtype=torch.uint8)
        luma, chroma = resize_yuv(frame.luma[None].to(device), planes[None].to(device), size)
        if frame.index in keep:
            out["index"].append(frame.index)
            out["iframe"].append(frame.pict_type == "I")
            out["pts"].append(frame.pts_seconds)
            out["luma"].append(luma[0])
            out["chroma"].append(chroma[0])
            if estimated:
                out["ref"].append(previous if previous is not None and frame.index > 0 else luma[0])
            else:
                out["vectors"].append(frame.motion_vectors)
                res = frame.residual
                out["residual"].append(residual_energy_grid(res.to(device), grid) if res is not None
                                       else torch.zeros(grid, dtype=torch.float32, device=device))
        previous = luma[0]
    return out


def _estimated_primitives(luma: torch.Tensor, ref: torch.Tensor, is_iframe: torch.Tensor,
                          grid: tuple[int, int]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Block-matched vectors and residual energy at model size for codecs that export no vectors."""
    from .ops.motion_estimation import estimate_motion_batch
    from .ops.warp import predict_from_vectors

    t = luma.shape[0]
    p_frames = [i for i in range(t) if not bool(is_iframe[i])]
    empty = torch.zeros(0, MV.ncols, dtype=torch.int32, device=luma.device)
    vectors = [empty] * t
    residual = torch.zeros((t, *grid), dtype=torch.float32, device=luma.device)
    if p_frames:
        index = torch.tensor(p_frames, device=luma.device)
        rows = estimate_motion_batch(luma[index], ref[index])
        for i, r in zip(p_frames, rows):
            vectors[i] = r
            pred, _ = predict_from_vectors(ref[i], r)
            res = (luma[i].to(torch.int16) - pred.to(torch.int16))          # (size, size)
            residual[i] = residual_energy_grid(res, grid)
    return vectors, residual
