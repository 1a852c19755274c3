"""Multi-head self-attention for padded batches and packed variable-length sequences.

Two interchangeable kernels:

* ``"sdpa"``: :func:`torch.nn.functional.scaled_dot_product_attention` (flash /
  memory-efficient kernels where the device has them);
* ``"reference"``: ``softmax(q k^T / sqrt(d)) v`` written out (:func:`reference_attention`), the
  oracle of the SDPA parity tests.

This is the one attention layer of the package: the codec ViT, the Δ-encoder's transformers, the
pre-training heads and the small LM (grouped-query, causal, with a key/value cache) all use
:class:`MultiHeadAttention`.

Grouped-query attention (Ainslie et al., 2023): ``num_heads`` query heads share ``num_kv_heads``
key/value heads, query head ``h`` reading key/value head ``h // (num_heads // num_kv_heads)``; SDPA and
``varlen_attn`` broadcast the shared heads where the installed torch can, the other paths repeat them.

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

import math
import inspect
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .rope import apply_rotary

__all__ = [
    "ATTENTION_IMPLS",
    "KVCacheUpdate",
    "VARLEN_MODES",
    "MultiHeadAttention",
    "PackedSequences",
    "attend",
    "block_diagonal_mask",
    "check_cu_seqlens",
    "packed_to_padded",
    "padded_to_packed",
    "reference_attention",
    "repeat_kv",
    "varlen_attention",
]

ATTENTION_IMPLS = ("sdpa", "reference")
VARLEN_MODES = ("auto", "mask", "loop", "kernel")

# SDPA learned to broadcast key/value heads (enable_gqa) in torch 2.5; older versions get the heads
# repeated explicitly, which costs a copy of K and V per layer.
_SDPA_GQA = tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 5)

#: ``kv_cache(k, v) -> (k_all, v_all)``: appends one layer's new keys/values ``(B, H_kv, L, hd)`` and
#: returns the whole history ``(B, H_kv, past + L, hd)`` (e.g. ``functools.partial(KVCache.update, layer)``).
KVCacheUpdate = Callable[[torch.Tensor, torch.Tensor], "tuple[torch.Tensor, torch.Tensor]"]


def repeat_kv(t: torch.Tensor, group: int, dim: int) -> torch.Tensor:
    """Each of the shared key/value heads on axis ``dim`` repeated for its ``group`` query heads."""
    return t if group == 1 else t.repeat_interleave(group, dim=dim)


def reference_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: Optional[torch.Tensor] = None,
    is_causal: bool = False,
) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d) + mask) v`` written out; (B, heads, L, hd) in and out.

    ``attn_mask`` follows the SDPA convention: boolean (True = may attend) or additive float.
    """
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale  # (B, heads, Lq, Lk)
    if is_causal:
        lq, lk = scores.shape[-2:]
        keep = torch.ones(lq, lk, dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~keep, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    return torch.matmul(scores.softmax(dim=-1), v)


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None, impl: str = "sdpa",
    *, is_causal: bool = False, dropout: float = 0.0,
) -> torch.Tensor:
    """Dispatch to SDPA or the written-out reference kernel.

    ``q (..., H, Lq, d)``, ``k/v (..., H_kv, Lk, d)`` with ``H_kv`` dividing ``H`` (grouped-query);
    ``mask`` broadcastable to ``(..., H, Lq, Lk)``, bool (True = may attend) or additive float.
    ``dropout`` applies to SDPA only (the reference is for parity)."""
    group = q.shape[-3] // k.shape[-3] if q.dim() >= 3 else 1
    if impl == "sdpa":
        extra = {}
        if group > 1 and _SDPA_GQA:
            extra["enable_gqa"] = True
        else:
            k, v = repeat_kv(k, group, -3), repeat_kv(v, group, -3)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, dropout_p=dropout,
                                              **extra)
    k, v = repeat_kv(k, group, -3), repeat_kv(v, group, -3)
    if impl == "reference":
        return reference_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
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


def _varlen_attn():
    """torch's ``varlen_attn`` (torch >= 2.10) and whether it takes ``enable_gqa``, or (None, False)."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None, False
    return varlen_attn, "enable_gqa" in inspect.signature(varlen_attn).parameters


def varlen_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, packing: PackedSequences) -> torch.Tensor:
    """Attention within each packed sequence by a variable-length kernel; ``(N_total, H, hd)`` in and out.

    FlashAttention's ``varlen_attn`` where torch has it and the inputs suit it (CUDA, fp16/bf16);
    otherwise ``flex_attention`` over the document block mask. Neither builds an O(N^2) mask.
    ``k``/``v`` may carry fewer (shared) heads than ``q``.
    """
    group = q.shape[1] // k.shape[1]
    varlen_attn, takes_gqa = _varlen_attn()
    if q.is_cuda and q.dtype in (torch.float16, torch.bfloat16) and varlen_attn is not None:
        cu = packing.cu_seqlens.to(q.device)
        if group > 1 and takes_gqa:
            return varlen_attn(q, k, v, cu, cu, packing.max_seqlen, packing.max_seqlen, enable_gqa=True)
        k, v = repeat_kv(k, group, 1), repeat_kv(v, group, 1)  # (N_total, H, hd)
        return varlen_attn(q, k, v, cu, cu, packing.max_seqlen, packing.max_seqlen)
    k, v = repeat_kv(k, group, 1), repeat_kv(v, group, 1)  # (N_total, H, hd)
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


def _and_masks(keys: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
    """Both restrictions at once: a bool key mask with a bool or additive float mask."""
    if extra.dtype == torch.bool:
        return keys & extra
    return extra.masked_fill(~keys, float("-inf"))


class MultiHeadAttention(nn.Module):
    """Self-attention with optional rotary tables, over padded or packed token sets.

    Args:
        dim: token width; must be divisible by ``num_heads``.
        num_heads: attention (query) heads.
        num_kv_heads: key/value heads, dividing ``num_heads`` (grouped-query attention); default
            ``num_heads``, plain multi-head attention.
        qkv_bias: bias on the fused q/k/v projection (ViT convention: yes; Llama-style LMs: no).
        proj_bias: bias on the output projection.
        impl: ``"sdpa"`` or ``"reference"`` (see module docstring).
        varlen: ``"auto"``, ``"mask"``, ``"loop"`` or ``"kernel"``, how packed sequences are kept
            apart (see module docstring). ``impl="reference"`` always runs the mask path.
        dropout: attention dropout while training (padded layout).
        rope_values: also rotate each value by its key's ``rope`` angles and each output back by its
            query's, so that ``o_i = sum_j a_ij R(p_j - p_i) v_j``: the tokens then carry the relative
            positions of what they attended to, not only attention weights that depend on them (with
            plain RoPE a set of tokens with equal contents gives equal outputs wherever they sit).

    The fused ``qkv`` projection holds the ``num_heads`` query heads, then the ``num_kv_heads`` key
    heads, then the value heads, ``head_dim`` rows each.

    ``forward(x, rope=None, *, cu_seqlens=None, valid=None, attn_mask=None, is_causal=False, impl=None,
    kv_cache=None)``: ``rope`` is the ``(cos, sin)`` pair from :class:`~.rope3d.Rope3D` or
    :class:`~.rope.RotaryEmbedding` for the tokens' positions, shaped like ``x`` without its channel dim
    plus ``head_dim`` (or broadcastable to it). In the padded layout ``attn_mask`` ``(N, N)`` or
    ``(B, N, N)`` (bool or additive) and ``is_causal`` restrict attention further; with ``is_causal`` a
    padded query (``valid`` False) still sees itself, so no row is empty. ``kv_cache`` (a
    :data:`KVCacheUpdate`) extends the keys/values with the history; causal queries then sit after the
    ``past`` cached positions. ``impl`` overrides the layer's kernel for one call (parity tests).
    """

    def __init__(
        self, dim: int, num_heads: int, *, num_kv_heads: int | None = None, qkv_bias: bool = True,
        proj_bias: bool = True, impl: str = "sdpa", varlen: str = "auto", dropout: float = 0.0,
        rope_values: bool = False,
    ) -> None:
        super().__init__()
        if num_heads <= 0 or dim <= 0 or dim % num_heads:
            raise ValueError(f"dim ({dim}) must be a positive multiple of num_heads ({num_heads})")
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        if num_kv_heads <= 0 or num_heads % num_kv_heads:
            raise ValueError(f"num_kv_heads ({num_kv_heads}) must divide num_heads ({num_heads})")
        if impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention impl must be one of {ATTENTION_IMPLS}, got {impl!r}")
        if varlen not in VARLEN_MODES:
            raise ValueError(f"varlen must be one of {VARLEN_MODES}, got {varlen!r}")
        self.dim, self.num_heads, self.num_kv_heads, self.head_dim = dim, num_heads, num_kv_heads, dim // num_heads
        self.impl, self.varlen, self.dropout, self.rope_values = impl, varlen, dropout, rope_values
        self.qkv = nn.Linear(dim, (num_heads + 2 * num_kv_heads) * self.head_dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def _heads(self, x: torch.Tensor, rope) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hd, kv = self.head_dim, self.num_kv_heads * self.head_dim
        q, k, v = self.qkv(x).split((self.num_heads * hd, kv, kv), dim=-1)  # (..., N, H*hd), 2 x (..., N, H_kv*hd)
        q, k, v = (t.unflatten(-1, (-1, hd)).transpose(-3, -2) for t in (q, k, v))  # (..., H or H_kv, N, hd)
        if rope is not None:
            cos, sin = (t.unsqueeze(-3).to(q.dtype) for t in rope)  # (..., 1, N, hd)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
            if self.rope_values:
                v = apply_rotary(v, cos, sin)
        return q, k, v

    def _unrotate(self, out: torch.Tensor, rope) -> torch.Tensor:
        """Heads-major attention output ``(..., H, N, hd)`` rotated back by its queries' angles (``rope_values``)."""
        if rope is None or not self.rope_values:
            return out
        cos, sin = (t.unsqueeze(-3).to(out.dtype) for t in rope)  # (..., 1, N, hd)
        return apply_rotary(out, cos, -sin)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        *,
        cu_seqlens: "torch.Tensor | PackedSequences | None" = None,
        valid: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        impl: str | None = None,
        kv_cache: KVCacheUpdate | None = None,
    ) -> torch.Tensor:
        impl = impl or self.impl
        if cu_seqlens is not None:
            if attn_mask is not None or is_causal or kv_cache is not None:
                raise ValueError("packed attention keeps sequences apart by cu_seqlens alone (no attn_mask, "
                                 "is_causal or kv_cache)")
            if x.dim() != 2 or valid is not None:
                raise ValueError("packed attention takes x of shape (N_total, D) and cu_seqlens, not a valid mask")
            packing = PackedSequences.of(cu_seqlens, x.shape[0])
            mode = "mask" if impl == "reference" else self.packed_mode(x.device)
            q, k, v = self._heads(x, rope)  # (H, N_total, hd), k/v (H_kv, N_total, hd)
            if mode == "kernel":
                out = varlen_attention(*(t.transpose(0, 1) for t in (q, k, v)), packing)  # (N_total, H, hd)
                out = self._unrotate(out.transpose(0, 1), rope).transpose(0, 1)
                return self.proj(out.flatten(1))  # (N_total, D)
            if mode == "mask":
                out = attend(q, k, v, packing.mask(x.device), impl)
            else:
                b = packing.bounds
                out = torch.cat(
                    [attend(q[:, s:e], k[:, s:e], v[:, s:e], None, impl) for s, e in zip(b, b[1:])], dim=1
                )  # (H, N_total, hd)
            return self.proj(self._unrotate(out, rope).transpose(0, 1).flatten(1))  # (N_total, D)
        if x.dim() != 3:
            raise ValueError(f"padded attention takes x of shape (B, N, D), got {tuple(x.shape)}")
        q, k, v = self._heads(x, rope)  # (B, H, N, hd), k/v (B, H_kv, N, hd)
        if kv_cache is not None:
            k, v = kv_cache(k, v)  # (B, H_kv, past + N, hd)
        length, past = q.shape[-2], k.shape[-2] - q.shape[-2]
        mask = None if valid is None else valid[:, None, None, :]  # (B, 1, 1, N) keys
        if is_causal and past and length == 1:
            is_causal = False  # one new query may attend to every cached key
        if is_causal and (past or mask is not None or attn_mask is not None):
            # SDPA's is_causal aligns the triangle top-left and takes no mask beside it: write it out
            keys = torch.arange(past + length, device=x.device)
            rows = torch.arange(length, device=x.device)[:, None] + past
            causal = keys[None, :] <= rows  # (N, past + N)
            if mask is not None:
                causal = (causal & mask) | (keys[None, :] == rows)  # (B, 1, N, past + N): padded queries see themselves
            mask, is_causal = causal, False
        if attn_mask is not None:
            extra = attn_mask.unsqueeze(1) if attn_mask.dim() == 3 else attn_mask  # (B, 1, N, N): every head
            mask = extra if mask is None else _and_masks(mask, extra)
        dropout = self.dropout if self.training else 0.0
        out = attend(q, k, v, mask, impl, is_causal=is_causal, dropout=dropout)
        return self.proj(self._unrotate(out, rope).transpose(1, 2).flatten(2))  # (B, N, D)

    def packed_mode(self, device: torch.device) -> str:
        """The packed path this layer takes on ``device``: "auto" resolves to "kernel" on CUDA."""
        if self.impl == "reference":
            return "mask"
        if self.varlen == "auto":
            return "kernel" if device.type == "cuda" else "mask"
        return self.varlen

    def extra_repr(self) -> str:
        kv = f", kv_heads={self.num_kv_heads}" if self.num_kv_heads != self.num_heads else ""
        return (f"dim={self.dim}, heads={self.num_heads}{kv}, impl={self.impl}, varlen={self.varlen}, "
                f"dropout={self.dropout}")
