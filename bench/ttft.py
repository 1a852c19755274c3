"""Time-to-first-token on CPU or GPU: CoPE codec stream versus 64 dense keyframes, same LM.

Both pipelines start from decoded tensors and stop when the first answer token is known:

* dense:  the frozen image encoder on min(frames, 64) uniformly sampled frames, then LM
          prefill of ``[frame tokens..., prompt]``;
* codec:  the same image encoder on the first frame of every GOP only, the Δ-encoder
          (8 Δ-tokens per P-frame, from its dense motion field and luma residual) on every
          other frame, then LM prefill of the interleaved ``[I tokens, Δ, Δ, ..., I tokens,
          ..., prompt]``.

Image encoders (``--image-encoder``), both 196 tokens per 224x224 frame:

* ``efficientnet-lite0``: the project's frozen encoder with its ImageNet weights (stride 16,
  width 112, a few million parameters): the cheapest realistic choice;
* ``siglip-b16``: a ViT with the shape of SigLIP-B/16-224 (patch 16, width 768, 12 layers,
  12 heads, ~86M parameters, random weights), the smallest member of the SigLIP family
  that CoPE-VideoLM's base model uses (it uses SigLIP-so400m: ~5x the parameters, at 384x384).

Inputs are synthetic tensors with the shapes and dtypes of real primitives (RGB uint8
frames, float32 (H, W, 2) motion fields in pixels, int16 residuals): every stage here is
dense, so its cost does not depend on pixel values. Video decoding is excluded from both
sides, unless ``--video FILE`` is given: then both pipelines start from the file and its decoding
is counted (a "decode s" column). Dense: PyAV decodes the file and converts 64 uniformly sampled
frames to RGB at ``--size`` (swscale); codec: :func:`codecprim.data.cope_sample` decodes it once,
extracting the keyframes' RGB and each Δ's fused motion field and residual (one Δ per ``--fuse``
P-frames; default 1, a Δ per P-frame as in the synthetic rows), on the file's own GOPs. Decoding
runs on the CPU (the compiled core), the encoders and LM on ``--device``. The Δ-tokens are produced at the image encoder's width, i.e. in the RGB token space,
and share its projector, as after CoPE's alignment pre-training.

The LM is the built-in SmallLM with random weights in a real small-model shape
(SmolLM2-135M by default): timing does not depend on the weights.

    PYTHONPATH=python python bench/ttft.py                 # 64 frames, GOP 32, SmolLM2-135M shape
    PYTHONPATH=python python bench/ttft.py --gop 16 32 --image-encoder siglip-b16
    PYTHONPATH=python python bench/ttft.py --device cuda --dtype bf16  # on a GPU (every stage synchronised)
    PYTHONPATH=python python bench/ttft.py --video clip.mp4            # from a real file, decoding counted
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import torch
from torch import nn

from codecprim.models.delta_encoder import DeltaEncoder, DeltaEncoderConfig
from codecprim.models.efficientnet_lite import EfficientNetLite0Tokens
from codecprim.models.layers.transformer import Transformer
from codecprim.models.small_lm import SmallLM, SmallLMConfig
from codecprim.models.video_llm import CodecTokens, VideoLLM, VideoLLMConfig
from codecprim.token_budget import CopeBudgetConfig, cope_budget

LM_PRESETS = {
    # HuggingFaceTB/SmolLM2-135M and -360M architectures (Llama-style, GQA, tied embeddings).
    "smollm2-135m": SmallLMConfig(),
    "smollm2-360m": SmallLMConfig(dim=960, n_layers=32, n_heads=15, n_kv_heads=5, hidden_dim=2560),
    # Only for smoke-testing this script.
    "tiny": SmallLMConfig(vocab_size=1024, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=128),
}
DENSE_FRAMES = 64
IMAGE_ENCODERS = ("efficientnet-lite0", "siglip-b16")
ENCODER_BATCH = 16  # frames per encoder call: bounds activation memory, keeps batching benefits
DEVICE = torch.device("cpu")


def _now() -> float:
    # CUDA runs asynchronously: a stage has ended only when the device has finished its work.
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)
    return time.perf_counter()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=64, help="clip length in frames (default 64)")
    p.add_argument("--gop", type=int, nargs="+", default=[32],
                   help="GOP size(s), one keyframe per GOP; several give one codec row each (default 32)")
    p.add_argument("--size", type=int, default=224, help="square frame size in pixels (default 224)")
    p.add_argument("--lm", choices=sorted(LM_PRESETS), default="smollm2-135m")
    p.add_argument("--image-encoder", choices=IMAGE_ENCODERS, default="efficientnet-lite0")
    p.add_argument("--delta-preset", choices=("compact", "paper"), default="compact",
                   help="Δ-encoder size: compact (<15M, the paper's stated budget) or paper (width 1152)")
    p.add_argument("--prompt-tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=1, help="timed runs per pipeline; the median is reported")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda: where the encoders and the LM run")
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="bf16 runs under autocast")
    p.add_argument("--video", default=None,
                   help="a real video file (H.264, MPEG-4, ...): start both pipelines from it, decoding counted")
    p.add_argument("--fuse", type=int, default=1, help="with --video: P-frames per Δ (CoPE's s, default 1)")
    args = p.parse_args(argv)
    if args.fuse <= 0:
        p.error("--fuse must be positive")
    for name in ("frames", "size", "prompt_tokens", "repeats"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if any(g <= 0 for g in args.gop):
        p.error("--gop values must be positive")
    return args


class SiglipShapedViT(nn.Module):
    """Random-weight ViT with SigLIP-B/16's shape: (B, 3, H, W) uint8-range RGB -> (B, h*w, 768)."""

    stride = 16
    dim = 768

    def __init__(self, size: int = 224) -> None:
        super().__init__()
        grid = -(-size // self.stride)
        self.patch = nn.Conv2d(3, self.dim, self.stride, self.stride)
        self.pos = nn.Parameter(torch.randn(1, grid * grid, self.dim) * 0.02)
        self.blocks = Transformer(self.dim, depth=12, heads=12, mlp_ratio=3072 / 768)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        return -(-height // self.stride), -(-width // self.stride)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch(images / 127.5 - 1.0).flatten(2).transpose(1, 2)  # (B, h*w, 768)
        return self.blocks(x + self.pos)


def synthetic_clip(frames: int, size: int, gen: torch.Generator):
    rgb = torch.randint(0, 256, (frames, 3, size, size), dtype=torch.uint8, generator=gen)
    motion = torch.randn(frames, size, size, 2, generator=gen) * 4.0  # pixels
    residual = torch.randint(-64, 65, (frames, size, size), dtype=torch.int16, generator=gen)
    return rgb, motion, residual


def encode_images(encoder, rgb: torch.Tensor) -> torch.Tensor:
    chunks = [encoder(rgb[i : i + ENCODER_BATCH].float()) for i in range(0, rgb.shape[0], ENCODER_BATCH)]
    return torch.cat(chunks)  # (F, 196, D)


def encode_deltas(encoder, motion: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    chunks = [
        encoder(motion[i : i + ENCODER_BATCH], residual[i : i + ENCODER_BATCH]).tokens
        for i in range(0, motion.shape[0], ENCODER_BATCH)
    ]
    return torch.cat(chunks)  # (P, 8, D)


def run_dense(model, image_encoder, rgb, prompt):
    n = rgb.shape[0]
    idx = torch.linspace(0, n - 1, min(n, DENSE_FRAMES)).round().long().unique().tolist()
    t0 = _now()
    tokens = encode_images(image_encoder, rgb[idx])  # (64, 196, D)
    t1 = _now()
    first, _, length = model.prefill(CodecTokens(tokens[None], idx), prompt)
    t2 = _now()
    return dict(keyframes=len(idx), pframes=0, lm_tokens=length, image=t1 - t0, delta=0.0, prefill=t2 - t1,
                ttft=t2 - t0, first=int(first[0]))


def run_codec(model, image_encoder, delta_encoder, rgb, motion, residual, gop, prompt):
    n = rgb.shape[0]
    key_idx = list(range(0, n, gop))
    p_idx = [i for i in range(n) if i % gop]
    t0 = _now()
    key_tokens = encode_images(image_encoder, rgb[key_idx])  # (K, 196, D)
    t1 = _now()
    delta = encode_deltas(delta_encoder, motion[p_idx], residual[p_idx]) if p_idx else None  # (P, 8, D)
    t2 = _now()
    codec = CodecTokens(key_tokens[None], key_idx, None if delta is None else delta[None], p_idx)
    first, _, length = model.prefill(codec, prompt)
    t3 = _now()
    return dict(keyframes=len(key_idx), pframes=len(p_idx), lm_tokens=length, image=t1 - t0, delta=t2 - t1,
                prefill=t3 - t2, ttft=t3 - t0, first=int(first[0]))


def decode_dense(path: str, size: int) -> torch.Tensor:
    """min(frames, 64) uniformly sampled frames of the file as (F, 3, size, size) uint8 RGB (PyAV, swscale)."""
    import av

    with av.open(path) as container:
        frames = [f for f in container.decode(video=0)]  # every frame decodes anyway (inter prediction)
        idx = set(torch.linspace(0, len(frames) - 1, min(len(frames), DENSE_FRAMES)).round().long().tolist())
        rgb = [torch.from_numpy(f.to_ndarray(width=size, height=size, format="rgb24")) for i, f in enumerate(frames)
               if i in idx]
    return torch.stack(rgb).permute(0, 3, 1, 2).contiguous()  # (F, 3, size, size)


def run_dense_file(model, image_encoder, path, size, prompt):
    t0 = _now()
    rgb = decode_dense(path, size).to(DEVICE)
    t1 = _now()
    row = run_dense(model, image_encoder, rgb, prompt)
    return {**row, "decode": t1 - t0, "ttft": row["ttft"] + t1 - t0}


def run_codec_file(model, image_encoder, delta_encoder, path, size, fuse, prompt):
    from codecprim.data import cope_sample

    t0 = _now()
    sample = cope_sample(path, fuse=fuse, image_size=size, delta_size=size)
    keyframes, motion, residual = (t.to(DEVICE) for t in (sample.keyframes, sample.motion, sample.residual))
    t1 = _now()
    key_tokens = encode_images(image_encoder, keyframes)  # (K, 196, D)
    t2 = _now()
    delta = encode_deltas(delta_encoder, motion, residual) if motion.shape[0] else None  # (P, 8, D)
    t3 = _now()
    codec = CodecTokens(key_tokens[None], sample.keyframe_indices.tolist(), None if delta is None else delta[None],
                        sample.delta_indices.tolist())
    first, _, length = model.prefill(codec, prompt)
    t4 = _now()
    return dict(keyframes=len(sample.keyframe_indices), pframes=len(sample.delta_indices), lm_tokens=length,
                decode=t1 - t0, image=t2 - t1, delta=t3 - t2, prefill=t4 - t3, ttft=t4 - t0, first=int(first[0]))


def median_run(fn, repeats):
    runs = [fn() for _ in range(repeats)]
    keys = ("decode", "image", "delta", "prefill", "ttft")
    out = dict(runs[0])
    out.update({k: statistics.median(r.get(k, 0.0) for r in runs) for k in keys})
    return out


def main(argv=None) -> int:
    global DEVICE
    args = parse_args(argv)
    DEVICE = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    if args.image_encoder == "efficientnet-lite0":
        image_encoder = EfficientNetLite0Tokens().eval()
    else:
        image_encoder = SiglipShapedViT(args.size).eval()
    delta_cfg = DeltaEncoderConfig.preset(args.delta_preset, out_dim=image_encoder.dim)
    delta_encoder = DeltaEncoder(delta_cfg).eval()
    lm = SmallLM(LM_PRESETS[args.lm]).eval()
    model = VideoLLM(lm, VideoLLMConfig(visual_dim=image_encoder.dim)).eval()
    rgb, motion, residual = synthetic_clip(args.frames, args.size, gen)
    prompt = torch.randint(0, lm.config.vocab_size, (1, args.prompt_tokens), generator=gen)
    for module in (image_encoder, delta_encoder, model):
        module.to(DEVICE)
    rgb, motion, residual, prompt = (t.to(DEVICE) for t in (rgb, motion, residual, prompt))
    autocast = torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")

    with torch.inference_mode(), autocast:
        # Warm-up on a 2-frame clip so one-time kernel setup is not billed to either side.
        run_dense(model, image_encoder, rgb[:2], prompt)
        run_codec(model, image_encoder, delta_encoder, rgb[:2], motion[:2], residual[:2], 2, prompt)
        if args.video:  # untimed once: imports, the core's first open, file cache
            run_codec_file(model, image_encoder, delta_encoder, args.video, args.size, args.fuse, prompt)
            run_dense_file(model, image_encoder, args.video, args.size, prompt)
            codecs = {"file": median_run(lambda: run_codec_file(model, image_encoder, delta_encoder, args.video,
                                                                 args.size, args.fuse, prompt), args.repeats)}
            dense = median_run(lambda: run_dense_file(model, image_encoder, args.video, args.size, prompt),
                               args.repeats)
        else:
            codecs = {
                gop: median_run(
                    lambda: run_codec(model, image_encoder, delta_encoder, rgb, motion, residual, gop, prompt),
                    args.repeats,
                )
                for gop in args.gop
            }
            dense = median_run(lambda: run_dense(model, image_encoder, rgb, prompt), args.repeats)

    # The streams must hold exactly what the budget calculator predicts (a file's layout is its own).
    grid_h, grid_w = image_encoder.grid(args.size, args.size)
    budget_cfg = CopeBudgetConfig(tokens_per_keyframe=grid_h * grid_w, delta_tokens_per_group=delta_cfg.num_tokens)
    budgets = {} if args.video else {gop: cope_budget(args.frames, gop, budget_cfg) for gop in args.gop}
    for gop, budget in budgets.items():
        if codecs[gop]["lm_tokens"] != budget.codec_tokens + args.prompt_tokens or \
                dense["lm_tokens"] != budget.dense_tokens + args.prompt_tokens:
            lengths = (codecs[gop]["lm_tokens"], dense["lm_tokens"])
            raise RuntimeError(f"stream lengths {lengths} disagree with {budget}")

    n_lm = lm.num_parameters() / 1e6
    n_delta = sum(p.numel() for p in delta_encoder.parameters()) / 1e6
    print("command: " + " ".join([sys.executable.rsplit("/", 1)[-1]] + sys.argv))
    where = torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else platform.processor() or platform.machine()
    print(f"device: {where} ({args.dtype}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads; "
          + (f"file {args.video}, decoded at {args.size}x{args.size} (decoding on the CPU, counted)" if args.video
             else f"synthetic {args.frames}x{args.size}x{args.size} clip"))
    n_img = sum(p.numel() for p in image_encoder.parameters()) / 1e6
    print(f"LM {args.lm} ({n_lm:.1f}M params, random weights); image encoder {args.image_encoder} "
          f"({n_img:.1f}M params, {grid_h * grid_w} tokens/frame of width {image_encoder.dim}); "
          f"Δ-encoder {args.delta_preset} ({n_delta:.1f}M params, "
          f"{delta_cfg.num_tokens} tokens/P-frame); prompt {args.prompt_tokens} tokens; median of {args.repeats}")
    header = ("pipeline", "keyframes", "P-frames", "LM tokens", "visual tokens vs dense", "decode s", "image enc s",
              "Δ-enc s", "prefill s", "TTFT s", "TTFT vs dense")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    rows = [(f"dense {dense['keyframes']} keyframes", dense, None)]
    if args.video:
        rows.append((f"codec, the file's GOPs (1 I/GOP + Δ per {args.fuse} P)", codecs["file"], None))
    else:
        rows += [(f"codec GOP {gop} (1 I/GOP + Δ)", codecs[gop], budgets[gop]) for gop in args.gop]
    for name, r, budget in rows:
        if budget is not None:
            tokens = f"{budget.ratio:.3f} (-{100 * budget.reduction:.1f}%)"
        else:  # the dense row, or a file: from the streams themselves (prompt excluded)
            ratio = (r["lm_tokens"] - args.prompt_tokens) / (dense["lm_tokens"] - args.prompt_tokens)
            tokens = f"{ratio:.3f}"
        print(f"| {name} | {r['keyframes']} | {r['pframes']} | {r['lm_tokens']} | {tokens} | {r['decode']:.2f} | "
              f"{r['image']:.2f} | "
              f"{r['delta']:.2f} | {r['prefill']:.2f} | {r['ttft']:.2f} | {r['ttft'] / dense['ttft']:.3f} |")
    print("goal: TTFT codec/dense <= 0.2 (CoPE-VideoLM reports 0.14)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
