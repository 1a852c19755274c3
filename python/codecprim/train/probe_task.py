"""A probe task that is not saturated: the direction of motion, with appearance shared by every class.

Issue 14, part 3. The clips (``bench/evidence_clips.py: direction_clips``) show a textured object crossing a
still textured background in one of four directions; appearance, start point and speed are drawn independently
of the direction, so a single frame, or the set of places that change, says nothing about the class: only how
the patches move over time does.

1. views of every clip through codecprim's data backend (:class:`codecprim.data.CodecClipDataset`):
   ``codec`` (the I-frame whole plus the most salient P-frame patches, ``budget`` in all), ``uniform``
   (``modes="chunks"``: ``budget // P`` whole frames, one from each equal temporal chunk: uniform frame
   sampling at the same budget) and ``dense`` (every patch of every frame, for the token-reduction baselines);
2. a label-free motion teacher: the velocity of the codec saliency's centroid (camera-compensated motion plus
   residual energy, :func:`saliency_velocity`); spherical k-means of the velocities gives ``clusters`` centres
   and each clip its ``topk`` nearest as multi-labels. The direction classes are used by the probe only;
3. the codec ViT's own training (:func:`codecprim.train.codec_vit.train_codec_vit`, multi-label cluster
   discrimination) on the ``train_views`` of the training clips, each under the 8 mirrorings/transpositions of
   the square (:func:`dihedral`: same appearance, another direction, the teacher re-run on each);
4. an attentive probe (:func:`codecprim.train.attentive_probe.fit_attentive_probe`) on the frozen tokens of the
   trained and of the untrained (initial) ViT, for every method at the same token count:

   * ``codec``: the ViT's tokens of the codec view;
   * ``uniform``: the ViT's tokens of the uniform view (``budget // P`` whole frames: as many tokens when P
     divides the budget);
   * ``longvu``: the dense tokens pruned to ``budget`` by :func:`codecprim.ops.prune_redundant_tokens` (the
     first frame whole, then the tokens least cosine-similar to it);
   * ``vqtoken``: ``budget`` k-means codebook tokens of the dense tokens (:func:`codecprim.ops.vq_tokens`);
   * ``dense``: every token (the ceiling, at ``T * P`` tokens).

:func:`probe_task` takes ``(path, class)`` pairs (any H.264 clips with exported vectors and a square model size);
bench/probe_task.py generates the footage, runs seeds and prints the README table. The defaults are that table's run;
``bench/probe_task.py --scale ci`` (``CI_SCALE``) is the smaller run whose lift the default test suite asserts.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Sequence

import torch

from ..clustering import kmeans, nearest_centroids
from ..data import CodecClipDataset, Failure
from ..models.codec_vit import CodecViT, CodecViTConfig
from ..ops._checks import check_positive_int
from ..ops.token_reduction import prune_redundant_tokens, vq_tokens
from ..patches import CodecClip
from .attentive_probe import fit_attentive_probe
from .codec_vit import Clip, RunConfig, train_codec_vit

__all__ = ["METHODS", "ProbeTaskConfig", "dihedral", "probe_task", "saliency_velocity"]

METHODS = ("codec", "uniform", "longvu", "vqtoken", "dense")
_DENSE = {"longvu", "vqtoken", "dense"}  # the methods that start from every patch of every frame


@dataclass
class ProbeTaskConfig:
    """Every knob of one run (defaults: the CPU-scale run of the README table)."""

    size: int = 84                  # frames are size x size: 6 x 6 patches of 14
    num_frames: int = 8
    budget: int = 108               # tokens a clip for every method but dense: 3 whole frames' worth
    # Where each clip's window starts (None: its first frame, the I-frame, kept whole). A window past the I-frame is
    # all salient P-frame patches: no static frame among the tokens, so the CI-scale run learns in fewer steps.
    start_seconds: float | None = None
    test_per_class: int = 8         # the last clips of each class are held out for the probe
    width: int = 96                 # the ViT (tiny preset, narrowed for the CPU)
    depth: int = 2
    num_heads: int = 3
    embed_dim: int | None = 64      # None: the attentive pool's own output (width wide), no output layer
    # RoPE on the values too (CodecViTConfig.rope_values): with RoPE on queries and keys only the tokens carry no
    # position, and even cross-entropy on the teacher's clusters learns the direction several times more slowly
    # (bench/probe_capacity.py)
    rope_values: bool = True
    # Spherical k-means of the 2-D teacher velocities: 4 centres (the velocities have four modes), top-1. With 16 /
    # top-3 a clip's positives are three sectors of its own direction drawn by noise, which no direction feature fits.
    clusters: int = 4
    topk: int = 1
    steps: int = 2000               # seed 0 leaves the loss plateau within 1200 steps, seed 1 needs more
    batch: int = 32
    # Small next to the pooled embedding (norm ~0.06 at init: the pool's output layer is drawn with std 0.02), which
    # the cosine loss sees only by its direction: at 1e-3 AdamW's steps inflate its norm 15-50x, a component shared
    # by every clip grows (mean cosine -> 1.0) and the loss stalls near the plateau of an embedding orthogonal to
    # every centre (detached embedding: 22.5 at 150 steps; lr 1e-3: 19.5, embedding norm x15, mean cosine 0.28 ->
    # 0.55, 56-pixel clips); 4e-4 already drifts there (0.78).
    lr: float = 3e-4
    # The class centres' initial std (RunConfig.centre_std). The CI-scale run (bench/probe_task.py CI_SCALE) takes
    # 1.0 with embed_dim None: slowly turning centres against an embedding of norm ~0.2 (not ~0.04) leave the plateau
    # within 300-500 steps at lr 1e-3; either change alone stays on it for 600 steps (56-pixel clips, seed 0).
    centre_std: float = 0.01
    weight_decay: float = 0.05
    keep_min: float = 0.8
    augment: bool = True            # train on all 8 mirrorings/transpositions of each clip (teacher re-run on each)
    # The inputs the ViT is trained on. Codec views only: the uniform view's frames (0, 3, 6 of 8) lie 3 patches of
    # motion apart on the 6-patch torus, where +3 and -3 are the same picture, so they carry the axis, not the sign.
    train_views: tuple[str, ...] = ("codec",)
    probe_steps: int = 150
    methods: tuple[str, ...] = METHODS
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("size", "num_frames", "budget", "test_per_class", "width", "depth", "num_heads", "clusters",
                     "topk", "batch", "probe_steps"):
            check_positive_int(name, getattr(self, name))
        if self.embed_dim is not None:
            check_positive_int("embed_dim", self.embed_dim)
        if self.size % 14:
            raise ValueError(f"size must be a multiple of the 14-pixel patch, got {self.size}")
        if self.topk > self.clusters:
            raise ValueError(f"topk ({self.topk}) cannot exceed clusters ({self.clusters})")
        self.train_views = tuple(self.train_views)
        if not self.train_views or not set(self.train_views) <= {"codec", "uniform"}:
            raise ValueError(f"train_views must be drawn from ('codec', 'uniform'), got {list(self.train_views)}")
        self.methods = tuple(self.methods)
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"methods must be drawn from {METHODS}, got {list(self.methods)}")


def saliency_velocity(saliency: torch.Tensor) -> torch.Tensor:
    """``(2,)`` (x, y) velocity in patches a frame of the saliency centroid of a ``(T, Hg, Wg)`` map: the
    least-squares slope, over the frames that have any saliency (zeros with fewer than two), of the centroid
    taken on the circle of each axis (circular mean, unwrapped from frame to frame by the shorter way round), so
    an object that leaves one edge and comes back at the other keeps its velocity."""
    t, h, w = saliency.shape
    s = saliency.double()
    mass = s.sum(dim=(1, 2))  # (T,)
    frames = torch.nonzero(mass > 0).squeeze(1)
    if len(frames) < 2:
        return torch.zeros(2)
    velocity = []
    for profile, n in ((s[frames].sum(dim=1), w), (s[frames].sum(dim=2), h)):  # (F, n): mass per column, per row
        angle = torch.arange(n, dtype=torch.float64) * (2 * torch.pi / n)
        centre = torch.atan2(profile @ angle.sin(), profile @ angle.cos())  # (F,)
        step = torch.remainder(centre.diff() + torch.pi, 2 * torch.pi) - torch.pi  # shorter way round
        track = torch.cat([centre[:1], centre[:1] + step.cumsum(0)]) * (n / (2 * torch.pi))  # (F,) cells
        tf = frames.double() - frames.double().mean()
        velocity.append(float((tf * (track - track.mean())).sum() / (tf**2).sum()))
    return torch.tensor(velocity, dtype=torch.float32)


def dihedral(clip: CodecClip, transform: int) -> CodecClip:
    """``clip`` mirrored and/or transposed (``transform`` in 0..7: bit 0 left-right, bit 1 up-down, bit 2 swap
    rows and columns, applied in that order) -- patches, positions and saliency together, re-sorted so
    ``visible_indices`` stay ascending. The content keeps its appearance and its motion changes direction,
    which is what a motion teacher must be blind to appearance for. Needs a square grid."""
    if not 0 <= transform < 8:
        raise ValueError(f"transform must be in 0..7, got {transform!r}")
    t, h, w = clip.grid
    if h != w:
        raise ValueError(f"dihedral transforms need a square patch grid, got {h} x {w}")
    pixels, sal = clip.pixels, clip.saliency  # (K, 3, p, p), (T, H, W)
    tt, rows, cols = clip.positions.unbind(1)
    if transform & 1:
        pixels, sal, cols = pixels.flip(-1), sal.flip(-1), w - 1 - cols
    if transform & 2:
        pixels, sal, rows = pixels.flip(-2), sal.flip(-2), h - 1 - rows
    if transform & 4:
        pixels, sal, rows, cols = pixels.transpose(-1, -2), sal.transpose(-1, -2), cols, rows
    flat = tt * h * w + rows * w + cols
    order = torch.argsort(flat)
    return replace(clip, pixels=pixels[order].contiguous(), positions=torch.stack([tt, rows, cols], 1)[order],
                   visible_indices=flat[order], tier=clip.tier[order], saliency=sal.contiguous())


def _views(paths: Sequence[str], cfg: ProbeTaskConfig, modes: str, budget: int) -> list:
    data = CodecClipDataset(list(paths), num_frames=cfg.num_frames, size=cfg.size, budget=budget, modes=modes,
                            start_seconds=cfg.start_seconds, seed=cfg.seed, on_error="raise")
    return [data[i] for i in range(len(data))]


@torch.no_grad()
def _embedding_spread(model: CodecViT, clips: Sequence[CodecClip]) -> dict[str, float]:
    """Mean norm of the clip embeddings the loss trains, and their mean pairwise cosine: near 1 when training
    collapsed them onto one direction (the cluster loss then cannot tell the clips apart)."""
    emb = _embeddings(model, clips)
    unit = torch.nn.functional.normalize(emb, dim=1)
    n = len(clips)
    cos = (unit @ unit.T).sum() - n
    return {"norm": round(float(emb.norm(dim=1).mean()), 3), "mean_cos": round(float(cos / max(1, n * (n - 1))), 3)}


@torch.no_grad()
def _embeddings(model: CodecViT, clips: Sequence[CodecClip]) -> torch.Tensor:
    """``(N, embed_dim)`` pooled embeddings of the clips, the vectors the cluster loss scores, in eval mode."""
    model.eval()
    return torch.cat([model.encode(c.pixels, c.positions, cu_seqlens=torch.tensor([0, c.pixels.shape[0]]))
                      for c in clips])


@torch.no_grad()
def _cluster_separation(model: CodecViT, clips: Sequence[CodecClip], labels: torch.Tensor) -> float:
    """Mean cosine of the clip embeddings within a teacher cluster minus across clusters, on views the model
    was trained on: what cluster discrimination pulls apart, measured on the model returned (not the loss log)."""
    unit = torch.nn.functional.normalize(_embeddings(model, clips), dim=1)
    cos = unit @ unit.T
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~torch.eye(len(clips), dtype=torch.bool)
    within, across = cos[same & off_diagonal], cos[~same]
    if not len(within) or not len(across):
        return 0.0
    return round(float(within.mean() - across.mean()), 3)


@torch.no_grad()
def _tokens(model: CodecViT, clip) -> torch.Tensor:
    """``(K, width)`` frozen tokens of one clip's patches."""
    return model(clip.pixels, clip.positions, cu_seqlens=torch.tensor([0, clip.pixels.shape[0]]))


def _method_tokens(model: CodecViT, views: dict, cfg: ProbeTaskConfig) -> dict[str, list[torch.Tensor]]:
    model.eval()
    out: dict[str, list[torch.Tensor]] = {m: [] for m in METHODS}
    for i, codec in enumerate(views["codec"]):
        out["codec"].append(_tokens(model, codec))
        if "uniform" in cfg.methods:
            out["uniform"].append(_tokens(model, views["uniform"][i]))
        if not _DENSE & set(cfg.methods):
            continue
        dense = views["dense"][i]
        t, h, w = dense.grid
        grid = _tokens(model, dense).reshape(t, h * w, -1)  # (T, P, width): dense positions are row-major
        out["dense"].append(grid.flatten(0, 1))
        budget = min(cfg.budget, t * h * w)
        kept = prune_redundant_tokens(grid, window=t, budget=budget)
        out["longvu"].append(grid.flatten(0, 1)[kept.indices])
        out["vqtoken"].append(vq_tokens(grid, budget, seed=cfg.seed).codebook)
    return out


def probe_task(items: Sequence[tuple[str, int]], cfg: ProbeTaskConfig) -> dict:
    """Run the task on ``(path, class)`` clips; returns per-method probe accuracy and tokens, trained and
    untrained, plus the chance level, the teacher's agreement with the classes and the timings."""
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _probe_task(items, cfg)
    finally:
        torch.set_num_threads(threads)


def _probe_task(items: Sequence[tuple[str, int]], cfg: ProbeTaskConfig) -> dict:
    t0 = time.perf_counter()
    paths = [p for p, _ in items]
    labels = torch.tensor([c for _, c in items])
    classes = int(labels.max()) + 1
    grid = (cfg.size // 14) ** 2
    need_uniform = "uniform" in cfg.methods or "uniform" in cfg.train_views
    views = {"codec": _views(paths, cfg, "codec", cfg.budget),
             "uniform": _views(paths, cfg, "chunks", cfg.budget) if need_uniform else [],
             "dense": _views(paths, cfg, "chunks", cfg.num_frames * grid) if _DENSE & set(cfg.methods) else []}
    test = torch.zeros(len(items), dtype=torch.bool)
    for c in range(classes):
        test[torch.nonzero(labels == c).squeeze(1)[-cfg.test_per_class :]] = True
    train_idx, test_idx = torch.nonzero(~test).squeeze(1).tolist(), torch.nonzero(test).squeeze(1).tolist()
    t_data = time.perf_counter()

    # Training views: codec and uniform (both inputs the probe compares, as OneVision mixes codec and chunk-wise
    # views), each under every transform; the teacher runs on each transformed codec view.
    transforms = range(8) if cfg.augment else range(1)
    codec = [dihedral(views["codec"][i], k) for k in transforms for i in train_idx]
    uniform = [dihedral(views["uniform"][i], k) for k in transforms for i in train_idx] if need_uniform else []
    velocity = torch.stack([saliency_velocity(c.saliency) for c in codec])  # (N_views, 2)
    km = kmeans(velocity, cfg.clusters, seed=cfg.seed)
    multi = nearest_centroids(velocity, km.centroids, topk=cfg.topk)  # (N_views, topk)
    # The teacher never sees the classes; how far its clusters follow them on the untransformed clips
    # (majority class of each cluster):
    truth, assigned = labels[train_idx], km.assignments[: len(train_idx)]
    purity = sum(int((truth[assigned == k] == torch.mode(truth[assigned == k]).values).sum())
                 for k in assigned.unique()) / len(train_idx)

    torch.manual_seed(cfg.seed)
    vit = CodecViTConfig.preset("tiny", width=cfg.width, depth=cfg.depth, num_heads=cfg.num_heads,
                                embed_dim=cfg.embed_dim, varlen="loop", rope_values=cfg.rope_values)
    model, initial = CodecViT(vit), CodecViT(vit)
    initial.load_state_dict(model.state_dict())
    run = RunConfig(classes=(), skvideo=False, clusters=cfg.clusters, topk=cfg.topk, steps=cfg.steps,
                    batch=cfg.batch, lr=cfg.lr, keep_min=cfg.keep_min, sample_ratio=1.0, seed=cfg.seed,
                    embed_dim=model.embed_dim, centre_std=cfg.centre_std,
                    weight_decay=cfg.weight_decay)
    chosen = {"codec": codec, "uniform": uniform}
    losses = train_codec_vit(model, [Clip(c, 0) for v in cfg.train_views for c in chosen[v]],
                             multi.repeat(len(cfg.train_views), 1), run)
    t_train = time.perf_counter()

    report = {"classes": classes, "clips": {"train": len(train_idx), "test": len(test_idx)},
              "chance": round(1.0 / classes, 3), "teacher_purity": round(purity, 3),
              "loss_first": round(sum(losses[:10]) / max(1, len(losses[:10])), 3),
              "loss_last": round(sum(losses[-10:]) / max(1, len(losses[-10:])), 3),
              "embedding": {name: _embedding_spread(net, [views["codec"][i] for i in test_idx])
                            for name, net in (("trained", model), ("untrained", initial))},
              # the untransformed training clips' codec views and their teacher clusters (top label)
              "cluster_separation": {name: _cluster_separation(net, codec[: len(train_idx)],
                                                               multi[: len(train_idx), 0])
                                     for name, net in (("trained", model), ("untrained", initial))},
              "methods": {}}
    for name, net in (("trained", model), ("untrained", initial)):
        tokens = _method_tokens(net, views, cfg)
        for method in cfg.methods:
            acc = fit_attentive_probe([tokens[method][i] for i in train_idx], labels[train_idx],
                                      [tokens[method][i] for i in test_idx], labels[test_idx], num_classes=classes,
                                      num_heads=cfg.num_heads, steps=cfg.probe_steps, seed=cfg.seed)
            row = report["methods"].setdefault(method, {"tokens": round(sum(len(x) for x in tokens[method]) /
                                                                         len(items), 1)})
            row[name] = round(acc, 3)
    report["seconds"] = {"data": round(t_data - t0, 1), "train": round(t_train - t_data, 1),
                         "probe": round(time.perf_counter() - t_train, 1)}
    report["config"] = asdict(cfg)
    return report
