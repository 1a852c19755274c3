"""Multi-head self-attention for padded batches and packed variable-length sequences.

Two interchangeable kernels:

* ``"sdpa"``: :func:`torch.nn.functional.scaled_dot_product_attention` (flash /
  memory-efficient kernels where the device has them);
* ``"reference"``: ``softmax(q k^T / sqrt(d)) v`` written out
  (:func:`.transformer.reference_attention`), the oracle of the SDPA parity tests.

Layouts:

* padded: ``x`` is ``(B, N, D)`` with an optional ``valid`` mask ``(B, N)`` (True = real
  token); padded keys are masked out, padded queries produce finite values to be ignored.
* packed (codec mode): the visible patches of several clips are concatenated into
  ``x`` of shape ``(N_total, D)``; ``cu_seqlens`` ``(B + 1,)`` holds the cumulative
  sequence lengths ``[0, n_0, n_0 + n_1, ...]``, as in FlashAttention's varlen API.
  Tokens only attend within their own sequence. ``varlen="mask"`` runs one kernel call
  with a block-diagonal boolean mask: one launch, but O(N_total^2) mask memory, so it
  suits the short packs of CPU training and tests. ``varlen="loop"`` runs the kernel
  once per sequence: O(sum n_i^2) memory and no wasted cross-sequence scores, better for
  long packs. ``varlen="kernel"`` calls a real variable-length kernel:
  ``torch.nn.attention.varlen.varlen_attn`` (FlashAttention over ``cu_seqlens``) for fp16/bf16 on
  CUDA where the installed torch has it, else ``flex_attention`` with a document block mask
  (compiled on CUDA; on the CPU it runs eagerly and has no backward, so it serves inference and
  tests there). ``varlen="auto"`` (the default) picks ``"kernel"`` on CUDA and ``"mask"``
  elsewhere, so CPU training runs exactly as before. All give the same result.

The sequence boundaries of a batch are validated once, on the host, by :class:`PackedSequences`;
models build one per batch and hand it to every layer, so no layer synchronises with the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .rope import apply_rotary
from .transformer import reference_attention

__all__ = [
    "ATTENTION_IMPLS",
    "VARLEN_MODES",
    "MultiHeadAttention",
    "PackedSequences",
    "attend",
    "block_diagonal_mask",
    "check_cu_seqlens",
    "packed_to_padded",
    "padded_to_packed",
    "varlen_attention",
]

ATTENTION_IMPLS = ("sdpa", "reference")
VARLEN_MODES = ("auto", "mask", "loop", "kernel")


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None, impl: str = "sdpa"
) -> torch.Tensor:
    """Dispatch to SDPA or the written-out reference kernel.

    ``q (..., Lq, d)``, ``k/v (..., Lk, d)``; bool ``mask`` broadcastable to ``(..., Lq, Lk)``,
    True = may attend."""
    if impl == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if impl == "reference":
        return reference_attention(q, k, v, attn_mask=mask)
    raise ValueError(f"attention impl must be one of {ATTENTION_IMPLS}, got {impl!r}")


def check_cu_seqlens(cu_seqlens: torch.Tensor, total: int) -> list[int]:
    """Validate cumulative lengths against ``total`` tokens and return them as ints."""
    if cu_seqlens.dim() != 1 or cu_seqlens.numel() < 2 or cu_seqlens.dtype.is_floating_point:
        raise ValueError(f"cu_seqlens must be a 1-D integer tensor [0, n_0, n_0+n_1, ...], got {cu_seqlens}")
    bounds = [int(b) for b in cu_seqlens.tolist()]
    if bounds[0] != 0 or bounds[-1] != total or any(b <= a for a, b in zip(bounds, bounds[1:])):
        raise ValueError(
            f"cu_seqlens must start at 0, increase strictly (no empty sequence) and end at "
            f"the token count {total}; got {bounds}"
        )
    return bounds


def _sequence_ids(bounds: list[int], device: torch.device) -> torch.Tensor:
    lengths = torch.tensor([b - a for a, b in zip(bounds, bounds[1:])], device=device)
    return torch.repeat_interleave(torch.arange(len(lengths), device=device), lengths)  # (N_total,)


@dataclass(frozen=True, eq=False)
class PackedSequences:
    """The sequence boundaries of one packed batch, checked once and shared by every layer.

    ``cu_seqlens`` is the int32 device copy the varlen kernels take; ``bounds`` and ``max_seqlen``
    are the same numbers on the host, read with the one device synchronisation of the batch. The
    derived masks are built on first use and cached, so a 24-layer model builds each once.
    """

    cu_seqlens: torch.Tensor  # (B + 1,) int32
    bounds: tuple[int, ...]
    max_seqlen: int
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, cu_seqlens: "torch.Tensor | PackedSequences", total: int) -> "PackedSequences":
        """Validate ``cu_seqlens`` against ``total`` tokens (once); a PackedSequences passes through."""
        if isinstance(cu_seqlens, PackedSequences):
            if cu_seqlens.bounds[-1] != total:
                raise ValueError(f"packed sequences cover {cu_seqlens.bounds[-1]} tokens, the input has {total}")
            return cu_seqlens
        bounds = tuple(check_cu_seqlens(cu_seqlens, total))
        longest = max(b - a for a, b in zip(bounds, bounds[1:]))
        return cls(cu_seqlens.to(torch.int32), bounds, longest)

    @property
    def lengths(self) -> list[int]:
        return [b - a for a, b in zip(self.bounds, self.bounds[1:])]

    def _cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def sequence_ids(self, device: torch.device) -> torch.Tensor:
        """``(N_total,)`` index of the sequence each token belongs to."""
        return self._cached(("ids", str(device)), lambda: _sequence_ids(list(self.bounds), device))

    def mask(self, device: torch.device) -> torch.Tensor:
        """``(N_total, N_total)`` bool, True where query and key share a sequence."""
        def make():
            ids = self.sequence_ids(device)
            return ids[:, None] == ids[None, :]
        return self._cached(("mask", str(device)), make)

    def block_mask(self, device: torch.device):
        """flex_attention's sparse document mask: only the diagonal blocks are computed."""
        def make():
            from torch.nn.attention.flex_attention import create_block_mask

            ids = self.sequence_ids(device)

            def same_sequence(b, h, q, k):
                return ids[q] == ids[k]

            total = self.bounds[-1]
            return create_block_mask(same_sequence, None, None, total, total, device=device)
        return self._cached(("block_mask", str(device)), make)


def block_diagonal_mask(cu_seqlens: torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    """``(N_total, N_total)`` bool mask, True where query and key share a sequence."""
    packing = PackedSequences.of(cu_seqlens, int(cu_seqlens[-1]))
    return packing.mask(device or cu_seqlens.device)


_FLEX_COMPILED = None


def _flex_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_mask) -> torch.Tensor:
    # Eager flex_attention materialises the scores; only the compiled one is a fused sparse kernel.
    global _FLEX_COMPILED
    from torch.nn.attention.flex_attention import flex_attention

    if q.is_cuda:
        if _FLEX_COMPILED is None:
            _FLEX_COMPILED = torch.compile(flex_attention, dynamic=False)
        return _FLEX_COMPILED(q, k, v, block_mask=block_mask)
    return flex_attention(q, k, v, block_mask=block_mask)


def _has_varlen_attn() -> bool:
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401  (torch >= 2.10)
    except ImportError:
        return False
    return True


def varlen_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, packing: PackedSequences) -> torch.Tensor:
    """Attention within each packed sequence by a variable-length kernel; ``(N_total, H, hd)`` in and out.

    FlashAttention's ``varlen_attn`` where torch has it and the inputs suit it (CUDA, fp16/bf16);
    otherwise ``flex_attention`` over the document block mask. Neither builds an O(N^2) mask.
    """
    if q.is_cuda and q.dtype in (torch.float16, torch.bfloat16) and _has_varlen_attn():
        from torch.nn.attention.varlen import varlen_attn

        cu = packing.cu_seqlens.to(q.device)
        return varlen_attn(q, k, v, cu, cu, packing.max_seqlen, packing.max_seqlen)
    out = _flex_attention(*(t.transpose(0, 1).unsqueeze(0) for t in (q, k, v)), packing.block_mask(q.device))
    return out[0].transpose(0, 1)  # (N_total, H, hd)


def packed_to_padded(x: torch.Tensor, cu_seqlens: "torch.Tensor | PackedSequences") -> tuple[torch.Tensor, torch.Tensor]:
    """``(N_total, ...)`` -> zero-padded ``(B, L_max, ...)`` and its ``valid`` mask ``(B, L_max)``."""
    packing = PackedSequences.of(cu_seqlens, x.shape[0])
    bounds = packing.bounds
    lengths = packing.lengths
    batch, longest = len(lengths), max(lengths)
    ids = packing.sequence_ids(x.device)
    slot = torch.arange(x.shape[0], device=x.device) - torch.as_tensor(bounds[:-1], device=x.device)[ids]
    padded = x.new_zeros((batch, longest) + tuple(x.shape[1:]))
    padded[ids, slot] = x
    valid = torch.zeros(batch, longest, dtype=torch.bool, device=x.device)
    valid[ids, slot] = True
    return padded, valid


def padded_to_packed(x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`packed_to_padded`: ``(B, L, ...)`` -> ``(N_total, ...)`` and ``cu_seqlens``.

    Valid tokens must be left-aligned (a prefix of each row), as produced by padding."""
    if valid.dtype != torch.bool or valid.shape != x.shape[:2]:
        raise ValueError(
            f"valid must be a bool mask of shape {tuple(x.shape[:2])}, got {valid.dtype} {tuple(valid.shape)}"
        )
    lengths = valid.sum(dim=1)
    prefix = torch.arange(valid.shape[1], device=valid.device)[None, :] < lengths[:, None]
    if not bool(torch.equal(prefix, valid)):
        raise ValueError("valid tokens must form a prefix of every row (left-aligned padding)")
    cu = torch.zeros(valid.shape[0] + 1, dtype=torch.int64, device=valid.device)
    cu[1:] = torch.cumsum(lengths, dim=0)
    return x[valid], cu  # (N_total, ...)


class MultiHeadAttention(nn.Module):
    """Self-attention with optional rotary tables, over padded or packed token sets.

    Args:
        dim: token width; must be divisible by ``num_heads``.
        num_heads: attention heads.
        qkv_bias: bias on the fused q/k/v projection (ViT convention: yes).
        impl: ``"sdpa"`` or ``"reference"`` (see module docstring).
        varlen: ``"auto"``, ``"mask"``, ``"loop"`` or ``"kernel"``, how packed sequences are kept
            apart (see module docstring). ``impl="reference"`` always runs the mask path.

    ``forward(x, rope=None, *, cu_seqlens=None, valid=None)``: ``rope`` is the
    ``(cos, sin)`` pair from :class:`~.rope3d.Rope3D` for the tokens' positions, shaped
    like ``x`` without its channel dim plus ``head_dim``.
    """

    def __init__(
        self, dim: int, num_heads: int, *, qkv_bias: bool = True, impl: str = "sdpa", varlen: str = "auto"
    ) -> None:
        super().__init__()
        if num_heads <= 0 or dim <= 0 or dim % num_heads:
            raise ValueError(f"dim ({dim}) must be a positive multiple of num_heads ({num_heads})")
        if impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention impl must be one of {ATTENTION_IMPLS}, got {impl!r}")
        if varlen not in VARLEN_MODES:
            raise ValueError(f"varlen must be one of {VARLEN_MODES}, got {varlen!r}")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.impl, self.varlen = impl, varlen
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def _heads(self, x: torch.Tensor, rope) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, self.head_dim))  # (..., N, 3, H, hd)
        q, k, v = qkv.movedim(-3, 0).transpose(-3, -2).unbind(0)  # each (..., H, N, hd)
        if rope is not None:
            cos, sin = (t.unsqueeze(-3).to(q.dtype) for t in rope)  # (..., 1, N, hd)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        return q, k, v

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        *,
        cu_seqlens: "torch.Tensor | PackedSequences | None" = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if cu_seqlens is not None:
            if x.dim() != 2 or valid is not None:
                raise ValueError("packed attention takes x of shape (N_total, D) and cu_seqlens, not a valid mask")
            packing = PackedSequences.of(cu_seqlens, x.shape[0])
            mode = self.packed_mode(x.device)
            q, k, v = self._heads(x, rope)  # (H, N_total, hd)
            if mode == "kernel":
                out = varlen_attention(*(t.transpose(0, 1) for t in (q, k, v)), packing)  # (N_total, H, hd)
                return self.proj(out.flatten(1))  # (N_total, D)
            if mode == "mask":
                out = attend(q, k, v, packing.mask(x.device), self.impl)
            else:
                b = packing.bounds
                out = torch.cat(
                    [attend(q[:, s:e], k[:, s:e], v[:, s:e], None, self.impl) for s, e in zip(b, b[1:])], dim=1
                )  # (H, N_total, hd)
            return self.proj(out.transpose(0, 1).flatten(1))  # (N_total, D)
        if x.dim() != 3:
            raise ValueError(f"padded attention takes x of shape (B, N, D), got {tuple(x.shape)}")
        q, k, v = self._heads(x, rope)  # (B, H, N, hd)
        mask = None if valid is None else valid[:, None, None, :]  # (B, 1, 1, N) keys
        out = attend(q, k, v, mask, self.impl)
        return self.proj(out.transpose(1, 2).flatten(2))  # (B, N, D)

    def packed_mode(self, device: torch.device) -> str:
        """The packed path this layer takes on ``device``: "auto" resolves to "kernel" on CUDA."""
        if self.impl == "reference":
            return "mask"
        if self.varlen == "auto":
            return "kernel" if device.type == "cuda" else "mask"
        return self.varlen

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.num_heads}, impl={self.impl}, varlen={self.varlen}"
