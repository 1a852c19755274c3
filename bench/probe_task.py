"""The motion-direction probe task over seeds: method x probe accuracy x tokens (issue 14, part 3; README "Evidence").

Each seed draws its own clips (bench/evidence_clips.py: direction_clips), trains the codec ViT with its own seed
(codecprim.train.probe_task) and probes every method on the trained and on the untrained ViT at the same token
budget. Prints one row per seed and method, then the table of means and spreads, and the command that made it.

    PYTHONPATH=python:bench python3 bench/probe_task.py --per-class 64 --test-per-class 8 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

from evidence_clips import direction_clips

from codecprim.train.probe_task import METHODS, ProbeTaskConfig, probe_task

LABELS = {"codec": "codec-patch selection", "uniform": "uniform frame sampling", "longvu": "LongVU-style pruning",
          "vqtoken": "VQToken-style codebook", "dense": "every patch (ceiling)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-class", type=int, default=64, help="clips of each direction (train + held out)")
    parser.add_argument("--test-per-class", type=int, default=8)
    parser.add_argument("--size", type=int, default=84)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--speed", type=int, nargs=2, default=[14, 14], help="pixels a frame, lowest and highest")
    parser.add_argument("--side", type=int, default=28, help="object side, pixels")
    parser.add_argument("--budget", type=int, default=108)
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
    args = parser.parse_args()

    rows = []
    print("| seed | method | tokens | trained | untrained | teacher purity | loss first → last | "
          "embedding cos (trained) | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        t0 = time.perf_counter()
        items = direction_clips(args.workdir, args.per_class, size=args.size, frames=args.frames, speed=args.speed,
                                side=args.side, seed=seed)
        cfg = ProbeTaskConfig(size=args.size, num_frames=args.frames, budget=args.budget,
                              test_per_class=args.test_per_class, steps=args.steps, batch=args.batch, probe_steps=args.probe_steps,
                              lr=args.lr, clusters=args.clusters, topk=args.topk,
                              methods=tuple(args.methods), seed=seed, threads=args.threads)
        report = probe_task(items, cfg)
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
