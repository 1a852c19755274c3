"""The motion-direction probe task over seeds: method x probe accuracy x tokens (issue 14, part 3; README "Evidence").

Each seed draws its own clips (bench/evidence_clips.py: direction_clips), trains the codec ViT with its own seed
(codecprim.train.probe_task) and probes every method on the trained and on the untrained ViT at the same token
budget. Prints one row per seed and method, then the table of means and spreads, and the command that made it.

    PYTHONPATH=python:bench python3 bench/probe_task.py --per-class 64 --test-per-class 8 --seeds 0 1 2

``--scale ci`` is the run tests/models/test_probe_task.py makes in the default suite (:data:`CI_SCALE`, about 70 s
a seed on one idle core; the codec method only unless ``--methods`` says otherwise), here over seeds:

    PYTHONPATH=python:bench python3 bench/probe_task.py --scale ci --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

from evidence_clips import FPS, direction_clips

from codecprim.train.probe_task import METHODS, ProbeTaskConfig, probe_task

#: The CI-scale run (``--scale ci``; tests/models/test_probe_task.py): 56-pixel frames (4 x 4 patches), a 14-pixel
#: object moving one patch a frame, windows of 6 frames that start one frame past the I-frame (16 tokens, all salient
#: P-frame patches), a 2-block 64-wide ViT whose embedding is the attentive pool's own output, class centres drawn
#: at std 1.0, lr 1e-3 for 1200 steps (seed 2's loss leaves its plateau only after step 500; at 900 steps it stays).
CI_SCALE = dict(per_class=64, test_per_class=8, size=56, frames=6, start_frame=1, speed=[14, 14], side=14, budget=16,
                width=64, depth=2, heads=2, embed_dim=0, centre_std=1.0, lr=1e-3, steps=1200, batch=32, probe_steps=150,
                weight_decay=0.05, clusters=4, topk=1, methods=["codec"], threads=1)

LABELS = {"codec": "codec-patch selection", "uniform": "uniform frame sampling", "longvu": "LongVU-style pruning",
          "vqtoken": "VQToken-style codebook", "dense": "every patch (ceiling)"}


def run(args: argparse.Namespace, seed: int) -> dict:
    """One seed of the task as the options say: the parsed command line, or ``Namespace(**CI_SCALE, workdir=...)``."""
    items = direction_clips(args.workdir, args.per_class, size=args.size, frames=args.frames + args.start_frame,
                            speed=args.speed, side=args.side, seed=seed)
    cfg = ProbeTaskConfig(size=args.size, num_frames=args.frames, start_seconds=args.start_frame / FPS or None,
                          budget=args.budget, test_per_class=args.test_per_class, width=args.width, depth=args.depth,
                          num_heads=args.heads, embed_dim=args.embed_dim or None, centre_std=args.centre_std,
                          weight_decay=args.weight_decay, steps=args.steps, batch=args.batch,
                          probe_steps=args.probe_steps, lr=args.lr,
                          clusters=args.clusters, topk=args.topk, methods=tuple(args.methods), seed=seed,
                          threads=args.threads)
    return probe_task(items, cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=["full", "ci"], default="full",
                        help="ci: the defaults of CI_SCALE (the test's run); other options still override them")
    parser.add_argument("--per-class", type=int, default=64, help="clips of each direction (train + held out)")
    parser.add_argument("--test-per-class", type=int, default=8)
    parser.add_argument("--size", type=int, default=84)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--speed", type=int, nargs=2, default=[14, 14], help="pixels a frame, lowest and highest")
    parser.add_argument("--side", type=int, default=28, help="object side, pixels")
    parser.add_argument("--start-frame", type=int, default=0,
                        help="windows start this many frames in (past the I-frame: every token a salient P-patch)")
    parser.add_argument("--budget", type=int, default=108)
    parser.add_argument("--width", type=int, default=ProbeTaskConfig.width)
    parser.add_argument("--depth", type=int, default=ProbeTaskConfig.depth)
    parser.add_argument("--heads", type=int, default=ProbeTaskConfig.num_heads)
    parser.add_argument("--embed-dim", type=int, default=ProbeTaskConfig.embed_dim,
                        help="0: the attentive pool's own output, no output layer")
    parser.add_argument("--centre-std", type=float, default=ProbeTaskConfig.centre_std)
    parser.add_argument("--weight-decay", type=float, default=ProbeTaskConfig.weight_decay)
    parser.add_argument("--steps", type=int, default=ProbeTaskConfig.steps)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=ProbeTaskConfig.lr)
    parser.add_argument("--clusters", type=int, default=ProbeTaskConfig.clusters)
    parser.add_argument("--topk", type=int, default=ProbeTaskConfig.topk)
    parser.add_argument("--probe-steps", type=int, default=150)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "codecprim_probe_task"))
    if parser.parse_known_args()[0].scale == "ci":
        parser.set_defaults(**CI_SCALE)
    args = parser.parse_args()

    rows = []
    print("| seed | method | tokens | trained | untrained | teacher purity | loss first → last | "
          "embedding cos (trained) | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        t0 = time.perf_counter()
        report = run(args, seed)
        seconds = time.perf_counter() - t0
        for method, row in report["methods"].items():
            rows.append((seed, method, row))
            print(f"| {seed} | {method} | {row['tokens']:g} | {row['trained']:.3f} | {row['untrained']:.3f} | "
                  f"{report['teacher_purity']:.3f} | {report['loss_first']:.2f} → {report['loss_last']:.2f} | "
                  f"{report['embedding']['trained']['mean_cos']:.3f} | {seconds:.0f} |", flush=True)
    print()
    print(f"{len(args.seeds)} seeds ({' '.join(map(str, args.seeds))}), {report['clips']['train']} training and "
          f"{report['clips']['test']} held-out clips a seed, chance {report['chance']:.3f}; mean ± std over seeds:")
    print()
    print("| method | tokens / clip | probe accuracy, trained ViT | untrained ViT | gain |")
    print("|---|---|---|---|---|")
    for method in args.methods:
        got = [r for _, m, r in rows if m == method]

        def spread(key: str) -> str:
            values = [r[key] for r in got]
            return f"{statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f}"

        gains = [r["trained"] - r["untrained"] for r in got]
        print(f"| {LABELS[method]} | {got[0]['tokens']:g} | {spread('trained')} | {spread('untrained')} | "
              f"{statistics.mean(gains):+.3f} ± {statistics.pstdev(gains):.3f} |")
    print()
    print(f"torch {torch.__version__}, {args.threads} thread(s); command: PYTHONPATH=python:bench python3 "
          + " ".join(sys.argv))


if __name__ == "__main__":
    main()
