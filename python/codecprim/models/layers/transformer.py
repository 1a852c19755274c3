"""Pre-norm transformer encoder blocks with fused attention.

Shared by the Δ-encoder, its pre-training heads and any other model that needs a plain
bidirectional (or causal) transformer over a token sequence: width, heads, MLP ratio and the
normalisation are all parameters. Attention is the one :class:`.attention.MultiHeadAttention` every
model shares (SDPA, with the written-out reference path kept for parity tests).
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
from torch import nn

from .attention import MultiHeadAttention
from .rmsnorm import RMSNorm

__all__ = ["NORM_KINDS", "Mlp", "Transformer", "TransformerBlock", "make_norm"]

NormKind = Literal["layernorm", "rmsnorm"]
NORM_KINDS = ("layernorm", "rmsnorm")


def make_norm(kind: str, width: int, eps: float = 1e-6) -> nn.Module:
    """Build the normalisation layer named ``kind`` ("layernorm" or "rmsnorm")."""
    if kind == "layernorm":
        return nn.LayerNorm(width, eps=eps)
    if kind == "rmsnorm":
        return RMSNorm(width, eps=eps)
    raise ValueError(f"norm must be one of {NORM_KINDS}, got {kind!r}")


class Mlp(nn.Module):
    """Two-layer GELU feed-forward network."""

    def __init__(self, width: int, hidden: int, out: Optional[int] = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out if out is not None else width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.act(self.fc1(x))))


class TransformerBlock(nn.Module):
    """``x + attn(norm(x))`` then ``x + mlp(norm(x))`` (pre-norm, as in ViT)."""

    def __init__(
        self,
        width: int,
        heads: int,
        mlp_ratio: float = 4.0,
        norm: NormKind = "layernorm",
        qkv_bias: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be > 0, got {mlp_ratio}")
        self.norm1 = make_norm(norm, width)
        self.attn = MultiHeadAttention(width, heads, qkv_bias=qkv_bias, dropout=dropout)
        self.norm2 = make_norm(norm, width)
        self.mlp = Mlp(width, int(round(width * mlp_ratio)), dropout=dropout)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: Optional[torch.Tensor] = None,
        is_causal: bool = False,
        reference: bool = False,
    ) -> torch.Tensor:
        impl = "reference" if reference else None
        x = x + self.attn(self.norm1(x), attn_mask=attn_mask, is_causal=is_causal, impl=impl)
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    """A stack of ``depth`` pre-norm blocks followed by a final norm.

    Args:
        width: token width; ``heads`` must divide it.
        depth: number of blocks.
        heads: attention heads.
        mlp_ratio: hidden width of each MLP as a multiple of ``width``.
        norm: "layernorm" or "rmsnorm".
        final_norm: apply a norm after the last block (pre-norm stacks need one so that the
            output scale does not grow with depth).
    """

    def __init__(
        self,
        width: int,
        depth: int,
        heads: int,
        mlp_ratio: float = 4.0,
        norm: NormKind = "layernorm",
        qkv_bias: bool = True,
        dropout: float = 0.0,
        final_norm: bool = True,
    ) -> None:
        super().__init__()
        if depth <= 0:
            raise ValueError(f"depth must be a positive integer, got {depth}")
        self.width = width
        self.blocks = nn.ModuleList(
            TransformerBlock(width, heads, mlp_ratio=mlp_ratio, norm=norm, qkv_bias=qkv_bias, dropout=dropout)
            for _ in range(depth)
        )
        self.norm = make_norm(norm, width) if final_norm else nn.Identity()
        self.apply(_init_weights)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: Optional[torch.Tensor] = None,
        is_causal: bool = False,
        reference: bool = False,
    ) -> torch.Tensor:
        """(B, N, width) -> (B, N, width). ``reference=True`` uses the explicit softmax path."""
        if x.dim() != 3 or x.shape[-1] != self.width:
            raise ValueError(f"expected tokens of shape (B, N, {self.width}), got {tuple(x.shape)}")
        for block in self.blocks:
            x = block(x, attn_mask=attn_mask, is_causal=is_causal, reference=reference)
        return self.norm(x)


def _init_weights(module: nn.Module) -> None:
    # Truncated-normal linear weights (ViT/timm convention) keep early activations well scaled.
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
