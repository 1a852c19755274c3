"""Attentive pooling head: learned probe queries cross-attend to a token set.

``x = MHA(probe, tokens)``, then ``x = x + MLP(LayerNorm(x))``, then an optional linear
output layer: the multi-head attention pooling head of SigLIP and the attentive probe of
V-JEPA / OneVision-Encoder evaluations. It turns any number of tokens (a packed pack of
visible codec patches, or a padded batch) into a fixed-size clip embedding. The probe
carries no position: the tokens already have theirs (3-D RoPE inside the backbone).
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import ATTENTION_IMPLS, attend, packed_to_padded
from .transformer import Mlp

__all__ = ["AttentivePool"]


class AttentivePool(nn.Module):
    """Pool tokens of width ``dim`` into ``num_queries`` vectors.

    Args:
        dim: token width; must be divisible by ``num_heads``.
        num_heads: heads of the cross-attention.
        num_queries: learned probe vectors (1 for a clip embedding / classifier).
        mlp_ratio: hidden width of the MLP as a multiple of ``dim``.
        out_dim: width of a final linear layer (e.g. classes of a probe, or the embedding
            width of a loss); ``None`` keeps ``dim`` and adds no layer.
        norm_eps: LayerNorm epsilon.
        impl: ``"sdpa"`` or ``"reference"`` attention kernel.

    ``forward(tokens, *, cu_seqlens=None, valid=None)`` takes packed ``(N_total, dim)``
    tokens with ``cu_seqlens``, or padded ``(B, N, dim)`` ones with an optional ``valid``
    mask, and returns ``(B, out_dim)`` for one query, ``(B, num_queries, out_dim)`` otherwise.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        num_queries: int = 1,
        mlp_ratio: float = 4.0,
        out_dim: int | None = None,
        norm_eps: float = 1e-6,
        impl: str = "sdpa",
    ) -> None:
        super().__init__()
        if num_heads <= 0 or dim <= 0 or dim % num_heads:
            raise ValueError(f"dim ({dim}) must be a positive multiple of num_heads ({num_heads})")
        if num_queries <= 0:
            raise ValueError(f"num_queries must be a positive integer, got {num_queries}")
        if mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be > 0, got {mlp_ratio}")
        if impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention impl must be one of {ATTENTION_IMPLS}, got {impl!r}")
        self.dim, self.num_heads, self.num_queries, self.impl = dim, num_heads, num_queries, impl
        self.probe = nn.Parameter(torch.empty(num_queries, dim))
        nn.init.trunc_normal_(self.probe, std=0.02)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(round(dim * mlp_ratio)))
        self.head = nn.Identity() if out_dim is None else nn.Linear(dim, out_dim)
        self.out_dim = dim if out_dim is None else out_dim

    def forward(
        self, tokens: torch.Tensor, *, cu_seqlens: torch.Tensor | None = None, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        if cu_seqlens is not None:
            if tokens.dim() != 2 or valid is not None:
                raise ValueError("packed pooling takes tokens (N_total, D) with cu_seqlens and no valid mask")
            # Probes differ per sequence, so pad rather than build a (B*Q, N_total) mask.
            tokens, valid = packed_to_padded(tokens, cu_seqlens)  # (B, L_max, D), (B, L_max)
        if tokens.dim() != 3 or tokens.shape[-1] != self.dim:
            raise ValueError(f"expected tokens of shape (B, N, {self.dim}), got {tuple(tokens.shape)}")
        b, n, _ = tokens.shape
        # A mask made from cu_seqlens is valid by construction: checking it would cost a device sync.
        if cu_seqlens is None and valid is not None and (valid.shape != (b, n) or not bool(valid.any(dim=1).all())):
            raise ValueError(f"valid must be a (B, N) = {(b, n)} mask with at least one True per row")
        hd = self.dim // self.num_heads
        q = self.q(self.probe).to(tokens.dtype).reshape(1, self.num_queries, self.num_heads, hd)
        q = q.transpose(1, 2).expand(b, -1, -1, -1)  # (B, H, Q, hd)
        k, v = self.kv(tokens).reshape(b, n, 2, self.num_heads, hd).permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, N, hd)
        mask = None if valid is None else valid[:, None, None, :]  # (B, 1, 1, N)
        x = attend(q, k, v, mask, self.impl).transpose(1, 2).reshape(b, self.num_queries, self.dim)  # (B, Q, D)
        x = self.proj(x)
        x = self.head(x + self.mlp(self.norm(x)))  # (B, Q, out_dim)
        return x[:, 0] if self.num_queries == 1 else x

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.num_heads}, queries={self.num_queries}, out_dim={self.out_dim}"
