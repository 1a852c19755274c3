"""Can the codec ViT learn the motion direction at all? The probe task's capacity check (issue 14, part 3; README
"Evidence").

Not the probe task's loss: plain cross-entropy on the label-free teacher's 4 clusters (the velocity of the codec
saliency's centroid, spherical k-means, top-1; the direction classes are never used), so a failure here is the
model's, not the cluster loss's or memorisation's. Every training clip is seen under the 8 mirrorings /
transpositions (the teacher re-run on each); the held-out clips' views measure whether what is learned transfers.

``--position rope`` is the codec ViT as shipped (3-D RoPE only: positions reach the tokens through attention
weights alone, never through the values). Two variants, for this check only, let positions reach the values:
``learned`` adds a learned absolute table per axis to the patch embeddings (every token also carries where and
when it is); ``values`` is ``CodecViTConfig(rope_values=True)``: the values are rotated by their key's position and the
attention output back by the query's, so each output carries the relative positions of what it attended to.

    PYTHONPATH=python:bench python3 bench/probe_capacity.py --per-class 80 --test-per-class 16 --steps 400
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from evidence_clips import direction_clips

from codecprim.clustering import kmeans, nearest_centroids
from codecprim.data import CodecClipDataset, collate_packed
from codecprim.models.codec_vit import CodecViT, CodecViTConfig
from codecprim.train.probe_task import dihedral, saliency_velocity


class _Encoder(nn.Module):
    """The codec ViT's clip embedding (``CodecViT.encode``), with learned absolute (t, row, col) tables added to the
    patch embeddings before the blocks for ``learned``."""

    def __init__(self, cfg: CodecViTConfig, position: str) -> None:
        super().__init__()
        self.vit = CodecViT(replace(cfg, rope_values=position == "values"))
        learned = position == "learned"
        self.tables = nn.ModuleList(nn.Embedding(64, cfg.width) for _ in range(3)) if learned else None
        if learned:
            for table in self.tables:
                nn.init.normal_(table.weight, std=0.5)  # the scale of the patch embeddings

    def forward(self, pixels: torch.Tensor, positions: torch.Tensor, cu_seqlens: torch.Tensor) -> torch.Tensor:
        vit = self.vit
        x = vit._embed(pixels)  # (N_total, width)
        if self.tables is not None:
            x = x + sum(table(positions[:, axis]) for axis, table in enumerate(self.tables))
        rope = vit.rope(positions, dtype=x.dtype)
        for block in vit.blocks:
            x = block(x, rope, cu_seqlens=cu_seqlens)
        return vit.pool(vit.norm(x), cu_seqlens=cu_seqlens)  # (B, embed_dim)


def _agreement(encoder: nn.Module, head: nn.Module, views: list, targets: torch.Tensor) -> float:
    encoder.eval()
    with torch.no_grad():
        hits = 0
        for lo in range(0, len(views), 64):
            b = collate_packed(views[lo : lo + 64])
            hits += int((head(encoder(b.pixels, b.positions, b.cu_seqlens)).argmax(1) == targets[lo : lo + 64]).sum())
    encoder.train()
    return hits / len(views)


def run(args: argparse.Namespace, views: list, test_views: list, y: torch.Tensor, y_test: torch.Tensor,
        position: str) -> dict:
    torch.manual_seed(args.seed)
    cfg = CodecViTConfig.preset("tiny", width=96, depth=2, num_heads=3, embed_dim=64, varlen="loop")
    encoder, head = _Encoder(cfg, position), nn.Linear(64, 4)
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05)
    gen = torch.Generator().manual_seed(args.seed)
    order: list[int] = []
    losses = []
    for step in range(args.steps):
        scale = min(1.0, (step + 1) / max(1, args.steps // 10)) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group in opt.param_groups:
            group["lr"] = args.lr * scale
        if len(order) < args.batch:
            order += torch.randperm(len(views), generator=gen).tolist()
        idx, order = order[: args.batch], order[args.batch :]
        b = collate_packed([views[i] for i in idx])
        loss = F.cross_entropy(head(encoder(b.pixels, b.positions, b.cu_seqlens)), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
    window = max(1, min(20, len(losses) // 5))
    return {"loss_first": sum(losses[:window]) / window, "loss_last": sum(losses[-window:]) / window,
            "train": _agreement(encoder, head, views, y), "held_out": _agreement(encoder, head, test_views, y_test)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-class", type=int, default=80, help="clips of each direction (train + held out)")
    parser.add_argument("--test-per-class", type=int, default=16)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--position", nargs="+", default=["rope", "learned", "values"], choices=["rope", "learned", "values"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "codecprim_probe_task"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    items = direction_clips(args.workdir, args.per_class, size=84, frames=8, speed=(14, 14), side=28, seed=args.seed)
    data = CodecClipDataset([p for p, _ in items], num_frames=8, size=84, budget=108, seed=args.seed, on_error="raise")
    clips = [data[i] for i in range(len(data))]
    held = len(items) - 4 * args.test_per_class  # classes interleave: the last clips hold every class out alike
    views = [dihedral(c, k) for k in range(8) for c in clips[:held]]
    test_views = [dihedral(c, k) for k in range(8) for c in clips[held:]]
    km = kmeans(torch.stack([saliency_velocity(v.saliency) for v in views]), 4, seed=args.seed)
    y = km.assignments
    y_test = nearest_centroids(torch.stack([saliency_velocity(v.saliency) for v in test_views]), km.centroids,
                               topk=1)[:, 0]
    labels = torch.tensor([c for _, c in items])[:held]
    first = y[:held]  # the untransformed views
    purity = sum(int((labels[first == k] == torch.mode(labels[first == k]).values).sum()) for k in first.unique())
    print(f"{held} training clips ({len(views)} views), {len(items) - held} held out ({len(test_views)} views); "
          f"teacher purity {purity / held:.3f}; footage {time.perf_counter() - t0:.0f} s")
    print()
    print("| position | loss first → last (ln 4 = 1.386) | teacher agreement, training views | held-out views | "
          "seconds |")
    print("|---|---|---|---|---|")
    for position in args.position:
        t1 = time.perf_counter()
        r = run(args, views, test_views, y, y_test, position)
        print(f"| {position} | {r['loss_first']:.3f} → {r['loss_last']:.3f} | {r['train']:.3f} | {r['held_out']:.3f} | "
              f"{time.perf_counter() - t1:.0f} |", flush=True)
    print()
    print(f"torch {torch.__version__}, {args.threads} thread(s); command: PYTHONPATH=python:bench python3 "
          + " ".join(sys.argv))


if __name__ == "__main__":
    main()
