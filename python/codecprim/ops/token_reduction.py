"""Token-reduction baselines that codec-patch selection is compared with (issue 14, part 3).

Both work on a clip's image tokens ``(T, P, D)`` (T frames, P patches a frame, row-major), not on codec
primitives; they are what a video LM does without a codec.

* :func:`prune_redundant_tokens` -- LongVU-style spatio-temporal compression (Shen et al., 2024, Sec. 3.2):
  frames are cut into windows of ``window`` frames; the first frame of a window keeps every token, and a later
  frame's token is pruned when it is cosine-similar to the token at the same position of the window's first
  frame (``threshold``, LongVU's 0.8), or, at a fixed ``budget``, the least similar tokens are kept.
* :func:`vq_tokens` -- VQToken-style codebook tokens (Zhang et al., 2025): k-means over all of the clip's tokens;
  the clip becomes ``k`` codebook vectors (each the mean of its tokens) plus the map from every (t, p) to its code.

They are baselines, not codecprim's method: at the same token budget, ``bench/probe_task.py`` compares them with
codec-patch selection and uniform frame sampling on a motion-centric probe (README, "A probe task that is not
saturated"). Both need every patch of every frame encoded first (the dense tokens); codec-patch selection decides
before the encoder runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from ..clustering import kmeans

__all__ = ["TokenSubset", "VQTokens", "prune_redundant_tokens", "vq_tokens"]


@dataclass
class TokenSubset:
    """Tokens kept from a (T, P, D) clip."""

    indices: torch.Tensor    # (K,) int64, flat t * P + p, ascending
    positions: torch.Tensor  # (K, 2) int64, (t, p) of each kept token
    similarity: torch.Tensor  # (T, P) float32, cosine to the window's first frame (1 on first frames)

    def __repr__(self) -> str:
        return f"TokenSubset(indices={tuple(self.indices.shape)}, similarity={tuple(self.similarity.shape)})"


@dataclass
class VQTokens:
    """A clip as k codebook tokens."""

    codebook: torch.Tensor  # (k, D) float32, mean of the tokens of each code
    codes: torch.Tensor     # (T, P) int64, code of every token

    def __repr__(self) -> str:
        return f"VQTokens(codebook={tuple(self.codebook.shape)}, codes={tuple(self.codes.shape)})"

    def decode(self) -> torch.Tensor:
        """(T, P, D): every token replaced by its code's vector."""
        return self.codebook[self.codes]


def _check_tokens(tokens: torch.Tensor) -> None:
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 3 or not tokens.is_floating_point():
        raise ValueError(f"tokens must be a floating (T, P, D) tensor, got "
                         f"{tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__}")


def prune_redundant_tokens(tokens: torch.Tensor, *, window: int = 8, threshold: Optional[float] = 0.8,
                           budget: Optional[int] = None) -> TokenSubset:
    """LongVU-style pruning of tokens similar to the window's first frame.

    Args:
        tokens: (T, P, D) image tokens of a clip.
        window: frames per window; each window's first frame is kept whole.
        threshold: prune later-frame tokens with cosine similarity > threshold (ignored when ``budget`` is set).
        budget: keep exactly this many tokens: the first frames whole (all of them, even if they exceed it),
            then the later-frame tokens least similar to their window's first frame.
    """
    _check_tokens(tokens)
    if isinstance(window, bool) or not isinstance(window, int) or window <= 0:
        raise ValueError(f"window must be a positive int, got {window!r}")
    if budget is None and (threshold is None or not -1.0 <= threshold <= 1.0):
        raise ValueError(f"threshold must be in [-1, 1] when no budget is given, got {threshold!r}")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0):
        raise ValueError(f"budget must be a positive int, got {budget!r}")
    t, p, _ = tokens.shape
    first = (torch.arange(t, device=tokens.device) // window) * window  # (T,) each frame's window start
    similarity = F.cosine_similarity(tokens.float(), tokens[first].float(), dim=-1)  # (T, P)
    anchor = (torch.arange(t, device=tokens.device) == first)[:, None].expand(t, p)  # (T, P)
    similarity = torch.where(anchor, torch.ones_like(similarity), similarity)
    if budget is None:
        keep = anchor | (similarity <= threshold)
    else:
        keep = anchor.clone()
        spare = max(0, min(budget, t * p) - int(anchor.sum()))
        if spare:
            # ties broken by position, so the choice is deterministic
            score = torch.where(anchor, torch.full_like(similarity, float("inf")), similarity).flatten()
            order = torch.argsort(score, stable=True)[:spare]
            keep.view(-1)[order] = True
    indices = torch.nonzero(keep.flatten()).squeeze(1)  # (K,)
    positions = torch.stack([indices // p, indices % p], dim=1)  # (K, 2)
    return TokenSubset(indices=indices, positions=positions, similarity=similarity)


def vq_tokens(tokens: torch.Tensor, k: int, *, iters: int = 20, seed: int = 0) -> VQTokens:
    """VQToken-style reduction: k-means (:func:`codecprim.clustering.kmeans`, Euclidean) over the clip's T*P tokens."""
    _check_tokens(tokens)
    t, p, d = tokens.shape
    if isinstance(k, bool) or not isinstance(k, int) or not 0 < k <= t * p:
        raise ValueError(f"k must be an int in [1, {t * p}] (the clip's tokens), got {k!r}")
    flat = tokens.reshape(t * p, d).float().cpu()  # (T*P, D)
    result = kmeans(flat, k, iters=iters, spherical=False, seed=seed, backend="torch")
    codes = result.assignments  # (T*P,) nearest final centre
    # k-means may stop (tol, iters) one assignment after its last centre update: make each code the mean of the
    # tokens it now stands for, as VQToken's codebook is (a code left without tokens keeps its centre).
    sums = torch.zeros(k, d).index_add_(0, codes, flat)  # (k, D)
    counts = torch.bincount(codes, minlength=k)  # (k,)
    codebook = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], result.centroids)
    return VQTokens(codebook=codebook.to(tokens.device), codes=codes.reshape(t, p).to(tokens.device))
