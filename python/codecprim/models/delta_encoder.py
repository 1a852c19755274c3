"""Δ-encoder: P-frame motion field + residual -> N = K_τ + K_δ compact Δ-tokens.

CoPE-VideoLM (Sarkar et al., 2026), Sec. 3.2 and Supp. D. Two branches:

* **Motion branch.** The dense (H, W, 2) motion field of a P-frame is min-max normalised to
  [-1, 1] (per sample, per component), cut into 16x16 patches flattened to 16*16*2 vectors,
  lifted by a shared two-layer MLP to the inner width, and pooled with K_τ = 4 learned queries
  by a 4-layer, 9-head pre-norm transformer; the queries' outputs are the motion tokens.
* **Residual branch.** The residual goes through a truncated ResNet-18 (all conv stages, no
  pooling or classifier). Its stride-32 features are put on the motion branch's stride-16
  patch grid and pooled by an identical transformer with its own K_δ = 4 queries.

**Grid alignment.** ``residual_align="upsample"`` (default): the trunk runs at its standard
stride 32 and its 512-channel map is bilinearly resized to exactly the (ceil(H/16),
ceil(W/16)) patch grid, so both branches share one grid and one position embedding at the
cost of a cheap interpolation. ``"dilate"`` instead runs the last stage at stride 1 with
dilation 2 (output stride 16): a true stride-16 map, same parameters, about 4x the cost of
``layer4``. Frames whose sides are not multiples of 16 are zero-padded at the bottom/right
(the motion field after normalisation, where 0 is mid-range).

**Presets.** The paper states "< 15M parameters" but also d = 1152 (SigLIP's width) and
4-layer transformers of width d; taken literally that is ~141M parameters (two 64M
transformers plus the 11M trunk). Both readings ship:

* ``paper``   -- inner width = d = 1152: 141,216,064 parameters.
* ``compact`` -- inner width 144 (9 heads x 16), each branch's queries projected to d = 1152
  at the end: 13,680,304 parameters, within the 15M budget. The ResNet-18 trunk alone is
  11.17M, leaving ~3.8M for both transformers; the next 9-head width, 180 (head dim 20),
  would already reach 14,935,804.

Inputs are tensors only; turning codec block rows into dense fields is the ops layer's job.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..patchify import patchify
from .layers.query_pool import QueryPool
from .layers.transformer import NORM_KINDS, Mlp
from .resnet_trunk import ResNet18Trunk

__all__ = ["DeltaEncoder", "DeltaEncoderConfig", "DeltaTokens", "minmax_normalize"]

_ALIGNS = ("upsample", "dilate")
_MOTION_NORMS = ("minmax", "scale")
_PRESETS = ("paper", "compact")


def check_transformer_fields(config, positive: tuple) -> None:
    """Shared validation of transformer configs: positive sizes, heads dividing the width, a width usable by
    2-D sine-cosine positions (a multiple of 4), and a known norm. Raises ValueError naming the field."""
    for name in positive:
        if getattr(config, name) <= 0:
            raise ValueError(f"{name} must be a positive integer, got {getattr(config, name)}")
    if config.width % config.heads:
        raise ValueError(f"heads must divide width: width={config.width}, heads={config.heads}")
    if config.width % 4:
        raise ValueError(f"width must be a multiple of 4 (2-D sine-cosine positions), got {config.width}")
    if config.norm not in NORM_KINDS:
        raise ValueError(f"norm must be one of {NORM_KINDS}, got {config.norm!r}")


@dataclass(frozen=True)
class DeltaEncoderConfig:
    """Δ-encoder hyper-parameters; the defaults are the paper's, as written (``paper`` preset)."""

    # Output: N = motion_queries + residual_queries tokens of width out_dim per P-frame.
    out_dim: int = 1152            # d, SigLIP-so400m width, so Δ-tokens sit beside image tokens
    # Inner transformer shape, shared by both branches.
    width: int = 1152              # paper: = d; "compact": 144, projected to d at the end
    depth: int = 4
    heads: int = 9                 # must divide width
    mlp_ratio: float = 4.0
    norm: str = "layernorm"
    # Motion branch.
    patch_size: int = 16           # 16x16 patches -> 16*16*2 input vectors
    # "minmax" (the paper): per sample and component to [-1, 1], which erases the magnitude and maps a uniform
    # field (a camera pan) to 0; "scale": pixels times motion_scale, so speed and direction survive.
    motion_norm: str = "minmax"
    motion_scale: float = 1.0 / 8.0  # "scale": an 8-pixel displacement -> 1
    motion_queries: int = 4        # K_τ
    # Residual branch.
    residual_queries: int = 4      # K_δ
    residual_channels: int = 1     # 1 = luma residual
    residual_scale: float = 1.0 / 255.0   # int16 residuals span [-255, 255]; bring them to ~[-1, 1]
    trunk_base_width: int = 64     # ResNet-18; smaller only for quick experiments
    residual_align: str = "upsample"

    def __post_init__(self) -> None:
        check_transformer_fields(self, ("out_dim", "width", "depth", "heads", "patch_size", "motion_queries",
                                        "residual_queries", "residual_channels", "trunk_base_width", "motion_scale"))
        if self.motion_norm not in _MOTION_NORMS:
            raise ValueError(f"motion_norm must be one of {_MOTION_NORMS}, got {self.motion_norm!r}")
        if self.residual_align not in _ALIGNS:
            raise ValueError(f"residual_align must be one of {_ALIGNS}, got {self.residual_align!r}")

    @property
    def num_tokens(self) -> int:
        """N, Δ-tokens per P-frame."""
        return self.motion_queries + self.residual_queries

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "DeltaEncoderConfig":
        """``"paper"`` (width = d = 1152, ~141M) or ``"compact"`` (width 144 -> d, < 15M)."""
        if name == "paper":
            base: dict[str, Any] = {}
        elif name == "compact":
            base = {"width": 144}
        else:
            raise ValueError(f"preset must be one of {_PRESETS}, got {name!r}")
        base.update(overrides)
        return cls(**base)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "DeltaEncoderConfig":
        return cls(**json.loads(text))


@dataclass
class DeltaTokens:
    """Δ-encoder output. ``tokens`` = motion tokens followed by residual tokens."""

    tokens: torch.Tensor     # (B, K_τ + K_δ, d)
    motion: torch.Tensor     # (B, K_τ, d)
    residual: torch.Tensor   # (B, K_δ, d)

    def __repr__(self) -> str:
        return (f"DeltaTokens(tokens={tuple(self.tokens.shape)}, motion={tuple(self.motion.shape)}, "
                f"residual={tuple(self.residual.shape)})")


def minmax_normalize(field: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Min-max normalise a (B, H, W, C) field to [-1, 1], per sample and per component.

    A component that is constant over the frame (e.g. a static scene) maps to 0.
    """
    if field.dim() != 4:
        raise ValueError(f"expected a (B, H, W, C) field, got shape {tuple(field.shape)}")
    flat = field.flatten(1, 2)  # (B, H*W, C)
    lo = flat.amin(dim=1, keepdim=True)[:, :, None]  # (B, 1, 1, C)
    hi = flat.amax(dim=1, keepdim=True)[:, :, None]  # (B, 1, 1, C)
    span = hi - lo
    out = 2.0 * (field - lo) / span.clamp_min(eps) - 1.0
    return torch.where(span > eps, out, torch.zeros_like(out))


class DeltaEncoder(nn.Module):
    """Encode one P-frame's motion field and residual into ``config.num_tokens`` Δ-tokens."""

    def __init__(self, config: Optional[DeltaEncoderConfig] = None) -> None:
        super().__init__()
        cfg = config if config is not None else DeltaEncoderConfig()
        self.config = cfg
        p = cfg.patch_size
        pool_kw = dict(depth=cfg.depth, heads=cfg.heads, mlp_ratio=cfg.mlp_ratio, norm=cfg.norm, out_dim=cfg.out_dim)
        # Motion branch.
        self.motion_mlp = Mlp(p * p * 2, cfg.width, out=cfg.width)
        self.motion_pool = QueryPool(cfg.width, num_queries=cfg.motion_queries, **pool_kw)
        # Residual branch.
        stride = 32 if cfg.residual_align == "upsample" else 16
        self.trunk = ResNet18Trunk(cfg.residual_channels, cfg.trunk_base_width, output_stride=stride)
        self.residual_proj = nn.Linear(self.trunk.out_channels, cfg.width)
        self.residual_pool = QueryPool(cfg.width, num_queries=cfg.residual_queries, **pool_kw)

    def forward(self, motion: torch.Tensor, residual: torch.Tensor) -> DeltaTokens:
        """Encode a batch of P-frames.

        Args:
            motion: (B, H, W, 2) dense motion field in pixels (min-max normalised or scaled, ``motion_norm``).
            residual: (B, H, W) or (B, C, H, W) residual, integer or float, same H, W.

        Returns:
            :class:`DeltaTokens` with ``tokens`` of shape (B, K_τ + K_δ, d).
        """
        cfg = self.config
        if motion.dim() != 4 or motion.shape[-1] != 2:
            raise ValueError(f"motion must be (B, H, W, 2), got {tuple(motion.shape)}")
        if residual.dim() == 3:
            residual = residual.unsqueeze(1)  # (B, 1, H, W)
        if residual.dim() != 4 or residual.shape[1] != cfg.residual_channels:
            raise ValueError(f"residual must be (B, H, W) or (B, {cfg.residual_channels}, H, W), "
                             f"got {tuple(residual.shape)}")
        b, h, w, _ = motion.shape
        if residual.shape[0] != b or residual.shape[-2:] != (h, w):
            raise ValueError(f"motion {tuple(motion.shape)} and residual {tuple(residual.shape)} disagree on B, H, W")
        dtype = self.motion_mlp.fc1.weight.dtype
        p = cfg.patch_size
        gh, gw = -(-h // p), -(-w // p)  # patch grid, ceil

        # Normalise before padding so the pad (0 = mid-range) cannot move the min/max.
        m = motion.to(dtype)
        m = minmax_normalize(m) if cfg.motion_norm == "minmax" else m * cfg.motion_scale
        m = F.pad(m, (0, 0, 0, gw * p - w, 0, gh * p - h))  # (B, gh*p, gw*p, 2)
        # motion_mlp reads each patch pixel by pixel, its two components adjacent (the order checkpoints hold)
        m = patchify(m.permute(0, 3, 1, 2), p, cuda_kernel=False).permute(0, 1, 2, 4, 5, 3)  # (B, gh, gw, p, p, 2)
        m_tokens = self.motion_mlp(m.flatten(1, 2).flatten(2))  # (B, gh*gw, width)
        motion_out = self.motion_pool(m_tokens, grid=(gh, gw))  # (B, K_τ, d)

        r = residual.to(dtype) * cfg.residual_scale
        r = F.pad(r, (0, gw * p - w, 0, gh * p - h))  # (B, C, gh*p, gw*p)
        feat = self.trunk(r)  # (B, 512, ~gh/2 or gh, ~gw/2 or gw)
        if feat.shape[-2:] != (gh, gw):
            feat = F.interpolate(feat, size=(gh, gw), mode="bilinear", align_corners=False)  # (B, 512, gh, gw)
        r_tokens = self.residual_proj(feat.flatten(2).transpose(1, 2))  # (B, gh*gw, width)
        residual_out = self.residual_pool(r_tokens, grid=(gh, gw))  # (B, K_δ, d)

        tokens = torch.cat([motion_out, residual_out], dim=1)  # (B, K_τ + K_δ, d)
        return DeltaTokens(tokens=tokens, motion=motion_out, residual=residual_out)
