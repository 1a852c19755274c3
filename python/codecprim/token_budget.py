"""Visual-token budgets of codec-based video LMs versus dense frame sampling.

Two recipes are covered:

* **CoPE-VideoLM** (Sarkar et al., 2026): per GOP, ``keyframes_per_gop`` frames go
  through the image encoder at ``tokens_per_keyframe`` (M) tokens each; the remaining
  P-frames are fused ``p_frames_per_group`` (s) at a time and each group becomes
  ``delta_tokens_per_group`` (N) Δ-tokens. The baseline is the usual VideoLM recipe:
  ``dense_frames`` uniformly sampled frames at M tokens each.
* **OneVision-Encoder** codec patchification (Tang et al., 2026): I-frames are kept
  whole (P0 patches each) and only ``p_patch_budget`` (K) patches in total are kept from
  all other frames; the baseline is ``dense_frames`` x P0 patches. This is the paper's accounting (I-frames on
  top of K); :func:`codecprim.codec_patches` instead takes ``budget`` as the total it returns, I-frame patches
  included, so ``codec_patches(budget=K)`` matches ``onevision_budget`` with ``p_patch_budget = K - I * P0``.

All functions are pure integer arithmetic; reductions are ``1 - codec / dense``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

__all__ = [
    "CopeBudgetConfig",
    "OneVisionBudgetConfig",
    "TokenBudget",
    "gop_sizes",
    "dense_tokens",
    "cope_gop_tokens",
    "cope_budget",
    "cope_budget_from_frame_types",
    "onevision_budget",
]


def _positive(name: str, value: int) -> None:
    if int(value) != value or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class CopeBudgetConfig:
    """CoPE-VideoLM token accounting.

    Defaults: LLaVA-Video-7B frames (SigLIP's 27x27 patches bilinearly pooled to 14x14 =
    196, plus one newline token per row = 210 tokens; 13x13 + 13 = 182 with average
    pooling), the Δ-encoder's 8 Δ-tokens per P-frame, no P-frame fusion, one keyframe per
    GOP, 64-frame dense baseline. With these, a 64-frame clip in GOPs of 32 needs
    2 * 210 + 62 * 8 = 916 tokens instead of 13 440: 93 % fewer, the paper's headline.
    """

    tokens_per_keyframe: int = 210
    delta_tokens_per_group: int = 8
    p_frames_per_group: int = 1
    keyframes_per_gop: int = 1
    dense_frames: int = 64

    def __post_init__(self) -> None:
        _positive("tokens_per_keyframe", self.tokens_per_keyframe)
        _positive("p_frames_per_group", self.p_frames_per_group)
        _positive("keyframes_per_gop", self.keyframes_per_gop)
        _positive("dense_frames", self.dense_frames)
        if int(self.delta_tokens_per_group) != self.delta_tokens_per_group or self.delta_tokens_per_group < 0:
            raise ValueError(f"delta_tokens_per_group must be an integer >= 0, got {self.delta_tokens_per_group!r}")


@dataclass(frozen=True)
class OneVisionBudgetConfig:
    """OneVision-Encoder codec patchification accounting.

    Defaults: 224x224 input with 14-pixel patches = 16x16 = 256 patches per frame, and a
    2048-patch budget for the non-I frames (the released "2k patches" codec setting,
    12.5 % of a dense 64-frame clip, inside the paper's 3.1-25 % range).
    """

    patches_per_frame: int = 256
    p_patch_budget: int = 2048
    dense_frames: int = 64

    def __post_init__(self) -> None:
        _positive("patches_per_frame", self.patches_per_frame)
        _positive("dense_frames", self.dense_frames)
        if int(self.p_patch_budget) != self.p_patch_budget or self.p_patch_budget < 0:
            raise ValueError(f"p_patch_budget must be an integer >= 0, got {self.p_patch_budget!r}")


@dataclass(frozen=True)
class TokenBudget:
    """Result of a budget computation."""

    keyframe_tokens: int  # tokens spent on whole frames (I-frames / keyframes)
    delta_tokens: int  # tokens spent on everything else (Δ-tokens / selected patches)
    dense_tokens: int  # baseline

    @property
    def codec_tokens(self) -> int:
        return self.keyframe_tokens + self.delta_tokens

    @property
    def ratio(self) -> float:
        """codec / dense."""
        return self.codec_tokens / self.dense_tokens

    @property
    def reduction(self) -> float:
        """Fraction of dense tokens saved, ``1 - ratio``."""
        return 1.0 - self.ratio


def gop_sizes(num_frames: int, gop_size: int) -> list[int]:
    """Closed GOPs of ``gop_size`` frames; the last one holds the remainder."""
    _positive("num_frames", num_frames)
    _positive("gop_size", gop_size)
    full, rest = divmod(num_frames, gop_size)
    return [gop_size] * full + ([rest] if rest else [])


def dense_tokens(num_frames: int, tokens_per_frame: int, dense_frames: int = 64) -> int:
    """Uniform sampling of ``dense_frames`` frames (all of them if the clip is shorter)."""
    _positive("num_frames", num_frames)
    _positive("tokens_per_frame", tokens_per_frame)
    _positive("dense_frames", dense_frames)
    return min(num_frames, dense_frames) * tokens_per_frame


def _groups(run: int, s: int) -> int:
    return math.ceil(run / s) if run > 0 else 0


def cope_gop_tokens(gop_frames: int, cfg: CopeBudgetConfig = CopeBudgetConfig()) -> tuple[int, int]:
    """``(keyframe_tokens, delta_tokens)`` for one GOP of ``gop_frames`` frames.

    The k = min(keyframes_per_gop, gop_frames) keyframes sit at frames
    ``floor(j * g / k)`` (the first is the I-frame); P-frames between two keyframes are
    fused in groups of s that never straddle a keyframe, so each run of r P-frames
    costs ``ceil(r / s) * N``.
    """
    _positive("gop_frames", gop_frames)
    k = min(cfg.keyframes_per_gop, gop_frames)
    starts = [j * gop_frames // k for j in range(k)] + [gop_frames]
    groups = sum(_groups(starts[j + 1] - starts[j] - 1, cfg.p_frames_per_group) for j in range(k))
    return k * cfg.tokens_per_keyframe, groups * cfg.delta_tokens_per_group


def cope_budget(
    num_frames: int,
    gop_size: int | None = None,
    cfg: CopeBudgetConfig = CopeBudgetConfig(),
    gops: Iterable[int] | None = None,
) -> TokenBudget:
    """CoPE tokens for a clip of ``num_frames`` frames versus the dense baseline.

    GOP lengths come from ``gops`` (e.g. ``[g.num_frames for g in reader.gops]``) or,
    failing that, from a fixed ``gop_size``.
    """
    if gops is None:
        if gop_size is None:
            raise ValueError("pass gop_size or gops")
        sizes = gop_sizes(num_frames, gop_size)
    else:
        sizes = [int(g) for g in gops]
        if sum(sizes) != num_frames:
            raise ValueError(f"GOP sizes sum to {sum(sizes)}, expected num_frames={num_frames}")
    kf = dl = 0
    for g in sizes:
        a, b = cope_gop_tokens(g, cfg)
        kf, dl = kf + a, dl + b
    return TokenBudget(kf, dl, dense_tokens(num_frames, cfg.tokens_per_keyframe, cfg.dense_frames))


def cope_budget_from_frame_types(pict_types: Sequence[str], cfg: CopeBudgetConfig = CopeBudgetConfig()) -> TokenBudget:
    """CoPE tokens from an actual frame-type sequence (``frame.pict_type`` in display order).

    Every I-frame is a keyframe (``keyframes_per_gop`` is not used here); each run of
    predicted frames between I-frames is fused in groups of s. B-frames count as
    predicted frames, like P-frames, since both carry motion vectors and residuals.
    """
    allowed = {"I", "P", "B"}
    types = list(pict_types)
    if not types:
        raise ValueError("pict_types is empty")
    bad = sorted(set(types) - allowed)
    if bad:
        raise ValueError(f"frame types must be among {sorted(allowed)}, got {bad}")
    n_i = groups = run = 0
    for t in types + ["I"]:  # sentinel closes the last run
        if t == "I":
            groups += _groups(run, cfg.p_frames_per_group)
            run = 0
            n_i += 1
        else:
            run += 1
    n_i -= 1  # the sentinel
    return TokenBudget(
        n_i * cfg.tokens_per_keyframe,
        groups * cfg.delta_tokens_per_group,
        dense_tokens(len(types), cfg.tokens_per_keyframe, cfg.dense_frames),
    )


def onevision_budget(
    num_frames: int,
    num_i_frames: int,
    cfg: OneVisionBudgetConfig = OneVisionBudgetConfig(),
) -> TokenBudget:
    """OneVision codec patchification: ``I * P0 + min(K, (F - I) * P0)`` versus
    ``min(F, dense_frames) * P0``."""
    _positive("num_frames", num_frames)
    if int(num_i_frames) != num_i_frames or not 0 <= num_i_frames <= num_frames:
        raise ValueError(f"num_i_frames must be an integer in [0, {num_frames}], got {num_i_frames!r}")
    p0 = cfg.patches_per_frame
    selected = min(cfg.p_patch_budget, (num_frames - num_i_frames) * p0)
    return TokenBudget(num_i_frames * p0, selected, dense_tokens(num_frames, p0, cfg.dense_frames))
