"""Patch selection on a clip's saliency grid: anchors whole, a budget or a per-frame ratio for the rest.

Contract (shared by the CPU twin and ``cuda/topk_select.cu``):

* **Anchors.** I-frames are kept whole (OneVision: the I-frame gives the model full context). In
  budget mode the budget ``K`` is the TOTAL number of patches the model sees, anchors included
  (default 64 frames, GOP 32, K = 2048, P0 = 256: 2 x 256 anchor patches + 1536 P-frame patches =
  12.5 % of 16384, i.e. 87.5 % fewer). If the I-frames alone exceed ``K``, only ``K // P0`` of them
  stay anchors, picked evenly (``I[floor(j * nI / n)]`` for j < n); the others compete like P-frames
  (their saliency is 0, so they fall to the fallback below). ``K`` is capped at ``T * P0``.
* **Salient patches** (saliency >= ``floor``) come next, by saliency descending, then flat index
  ascending (``t * Hg * Wg + row * Wg + col``): deterministic ties.
* **Fallback** for still content: budget left once the salient patches are taken is never spent
  on below-floor noise by score. It goes round-robin over the frames, every frame giving its
  next still cell in an ordered-dither order: the rank of cell (r, c) in frame t is the Bayer
  matrix value at ``((r + sy_t) mod N, (c + sx_t) mod N)`` (N the power of two >= Hg, Wg), so any
  prefix of a frame's order is an even lattice, and the shift ``(sy_t, sx_t)`` cycles the lattice
  through all phases (base-4 digits of t, least significant first, laid out like the Bayer
  recursion) so consecutive frames use different cells. Within a round, frames come in
  golden-ratio order (``frac(t * 0.618...)`` ascending: evenly spread when a round is cut short).
  A still clip thus gets the same count per frame (+-1), spread over space and time.
* **Ratio mode** (OneVision's per-frame formulation): every non-anchor frame keeps
  ``floor(ratio * P0)`` patches by the same order; every I-frame is an anchor.

All of this is one total order given by a unique int64 key per patch (:func:`selection_keys`); the
selection is the top-K keys (:func:`topk_sorted`), returned as flat indices sorted ascending into
the ``T x Hg x Wg`` virtual grid plus ``(t, row, col)`` positions.

On CUDA, :func:`select_patches` is one launch of ``select_patches_float32`` (anchors, keys and top-K in
one thread block): a clip's selection costs one kernel, not the ~40 small ones of the torch ops, and
in budget mode no synchronisation with the host. Its results equal the CPU twin's exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import _cuda
from ._checks import check_tensor

__all__ = ["Selection", "anchor_frames", "bayer_value", "select_patches", "selection_keys", "topk_sorted"]

_KERNELS = "topk_select.cu"
_INDEX_BITS = 30            # flat indices (and frame order) must fit below 2**30
_TIER_SHIFT = 61            # tier 2 = anchor, 1 = salient, 0 = fallback
_GOLDEN = 2654435769        # round(2**32 * 0.6180339887)
_MASK32 = (1 << 32) - 1


@dataclass
class Selection:
    """Selected patches of one clip."""

    positions: torch.Tensor        # (K, 3) int64: t, row, col
    visible_indices: torch.Tensor  # (K,) int64 flat t * Hg * Wg + row * Wg + col, ascending
    tier: torch.Tensor             # (K,) int8: 2 anchor, 1 salient, 0 fallback
    anchor: torch.Tensor           # (T,) bool: frames kept whole


def anchor_frames(is_iframe: torch.Tensor, patches_per_frame: int, budget: int | None) -> torch.Tensor:
    """(T,) bool frames kept whole: all I-frames, or ``budget // P0`` of them spread evenly."""
    iframes = torch.nonzero(is_iframe.cpu()).squeeze(1)
    anchor = torch.zeros(is_iframe.shape[0], dtype=torch.bool)
    if budget is None:
        anchor[iframes] = True
    else:
        n = min(len(iframes), budget // patches_per_frame)
        if n:
            anchor[iframes[torch.arange(n) * len(iframes) // n]] = True
    return anchor.to(is_iframe.device)


def _frame_order(t: int, device) -> torch.Tensor:
    """(T,) int64 rank of each frame in golden-ratio order (0 first)."""
    phase = (torch.arange(t, dtype=torch.int64, device=device) * _GOLDEN) & _MASK32
    order = torch.argsort(phase)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(t, device=device)
    return rank


def bayer_value(y: torch.Tensor, x: torch.Tensor, bits: int) -> torch.Tensor:
    """Ordered-dither (Bayer) rank of position (y, x) in a 2**bits square: 2x2 is [[0, 2], [3, 1]]."""
    value = torch.zeros_like(y)
    for i in range(bits):
        by, bx = (y >> i) & 1, (x >> i) & 1
        value = value | ((((bx ^ by) << 1) | by) << (2 * (bits - 1 - i)))
    return value


def _dither_shift(t: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame lattice shift: base-4 digit i of t (least significant first) sets bit i of (y, x)."""
    sy, sx = torch.zeros_like(t), torch.zeros_like(t)
    for i in range(bits):
        digit = (t >> (2 * i)) & 3
        by = digit & 1
        sy = sy | (by << i)
        sx = sx | ((((digit >> 1) ^ by) & 1) << i)
    return sy, sx


def selection_keys(saliency: torch.Tensor, anchor: torch.Tensor, floor: float) -> torch.Tensor:
    """Unique int64 priority of every patch (larger = picked first); see the module docstring.

    ``saliency`` (T, Hg, Wg) float32, ``anchor`` (T,) bool -> (T * Hg * Wg,) int64.
    Non-finite or negative saliency counts as 0 (NaN) / float32 max (+inf) / 0 (negative).
    """
    t, hg, wg = saliency.shape
    p0 = hg * wg
    if t * p0 >= 1 << _INDEX_BITS:
        raise ValueError(f"a clip grid of {t} x {hg} x {wg} patches exceeds the 2**{_INDEX_BITS} supported")
    device = saliency.device
    s = torch.nan_to_num(saliency.float(), nan=0.0).clamp(0.0, torch.finfo(torch.float32).max)
    s = s.reshape(t, p0)                                                             # (T, P0)
    flat = torch.arange(t * p0, dtype=torch.int64, device=device).view(t, p0)       # (T, P0)
    low = (1 << _INDEX_BITS) - 1 - flat
    score_bits = s.view(torch.int32).to(torch.int64)  # monotone in the value for floats >= 0
    salient = (s >= floor) & ~anchor[:, None]
    # fallback: rank of each still cell within its frame in the shifted ordered-dither order
    bits = max(1, (max(hg, wg) - 1).bit_length())
    side = 1 << bits
    rows = torch.arange(hg, dtype=torch.int64, device=device).repeat_interleave(wg)   # (P0,)
    cols = torch.arange(wg, dtype=torch.int64, device=device).repeat(hg)              # (P0,)
    sy, sx = _dither_shift(torch.arange(t, dtype=torch.int64, device=device), bits)    # (T,)
    dither = bayer_value((rows[None, :] + sy[:, None]) % side, (cols[None, :] + sx[:, None]) % side, bits)
    taken = salient | anchor[:, None]
    order_key = (taken.long() << 61) | dither  # (T, P0); dither < 2**60, unique within a frame
    order = torch.argsort(order_key, dim=1)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(p0, device=device).expand(t, p0).contiguous())
    frame_rank = _frame_order(t, device)[:, None]
    fallback = ((((1 << 31) - 1) - rank) << _INDEX_BITS) | ((1 << _INDEX_BITS) - 1 - frame_rank)
    keys = torch.where(salient, (score_bits << _INDEX_BITS) | low, fallback)
    tier = torch.where(anchor[:, None], 2, salient.long())
    keys = torch.where(anchor[:, None], low, keys) | (tier << _TIER_SHIFT)
    return keys.reshape(t * p0)


def topk_sorted(keys: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Per segment, flat indices of its ``k[s]`` largest keys, sorted ascending.

    ``keys`` (S, L) int64 non-negative and unique within each segment; ``k`` (S,) int64 in [0, L].
    Returns the concatenation over segments, (sum(k),) int64 indices into ``keys.view(-1)``.
    """
    check_tensor("keys", keys, dtypes=(torch.int64,), ndims=(2,))
    check_tensor("k", k, dtypes=(torch.int64,), ndims=(1,))
    if k.shape[0] != keys.shape[0]:
        raise ValueError(f"k has {k.shape[0]} segments, keys {keys.shape[0]}")
    if _cuda.is_cuda(keys, k):
        return _topk_cuda(keys.contiguous(), k)
    return _topk_cpu(keys, k)


def _topk_cpu(keys: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    s, length = keys.shape
    k_list = k.tolist()
    if s == 1:  # the budget case: one clip-wide top-K, partial selection is enough
        kk = k_list[0]
        return torch.topk(keys[0], kk, sorted=False).indices.sort().values if kk else keys.new_empty(0)
    kmax = max(k_list) if k_list else 0
    top = keys.sort(dim=1, descending=True).indices[:, :kmax]                      # (S, kmax) best first
    keep = torch.arange(kmax)[None, :] < k[:, None]                                  # (S, kmax)
    flat = top + torch.arange(s)[:, None] * length                                   # (S, kmax)
    # dropped slots become int64 max, so after the sort each row's kept indices lead it
    ordered = torch.where(keep, flat, torch.iinfo(torch.int64).max).sort(dim=1).values
    return ordered[keep]


def _topk_cuda(keys: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    s, length = keys.shape
    k_host = k.cpu()
    total = int(k_host.sum())
    offsets = torch.zeros(s + 1, dtype=torch.int64)
    offsets[1:] = k_host.cumsum(0)
    out = torch.empty(total, dtype=torch.int64, device=keys.device)
    if total == 0:
        return out
    kernel = _cuda.get_kernel(_KERNELS, "topk_select_int64", device=keys.device)
    _cuda.launch(kernel, None, (keys, np.int64(length), k.to(torch.int64).contiguous(), offsets.to(keys.device), out),
                 threads_per_block=1024 if length >= 4096 else 256, grid=(s,))
    return out


def select_patches(saliency: torch.Tensor, is_iframe: torch.Tensor, *, budget: int | None = None,
                   ratio: float | None = None, floor: float = 0.5) -> Selection:
    """Choose the patches of a clip the model sees.

    Args:
        saliency: (T, Hg, Wg) float32 (see :mod:`codecprim.ops.saliency`).
        is_iframe: (T,) bool.
        budget: total patches K (anchors included), clip-wide top-K. Exactly one of budget/ratio.
        ratio: per-frame share r of P-frame patches, ``floor(r * P0)`` each (OneVision).
        floor: saliency below this is noise, handled by the stratified fallback.
    Returns:
        :class:`Selection`; ``K = min(budget, T * P0)`` patches in budget mode.
    """
    check_tensor("saliency", saliency, dtypes=(torch.float32,), ndims=(3,))
    check_tensor("is_iframe", is_iframe, dtypes=(torch.bool,), ndims=(1,))
    t, hg, wg = saliency.shape
    if is_iframe.shape[0] != t:
        raise ValueError(f"is_iframe has {is_iframe.shape[0]} frames, saliency {t}")
    if (budget is None) == (ratio is None):
        raise ValueError("pass exactly one of budget (total patches) or ratio (per-frame share)")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 0):
        raise ValueError(f"budget must be an int >= 0, got {budget!r}")
    if ratio is not None and not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio must be in [0, 1], got {ratio!r}")
    if not floor > 0.0:
        raise ValueError(f"floor must be > 0, got {floor!r}")
    p0 = hg * wg
    device = saliency.device
    if t * p0 >= 1 << _INDEX_BITS:
        raise ValueError(f"a clip grid of {t} x {hg} x {wg} patches exceeds the 2**{_INDEX_BITS} supported")
    if _cuda.is_cuda(saliency):
        return _select_cuda(saliency, is_iframe.to(device), budget, ratio, floor)
    anchor = anchor_frames(is_iframe, p0, None if budget is None else min(budget, t * p0))
    keys = selection_keys(saliency, anchor.to(device), floor)                         # (T*P0,)
    if budget is not None:
        k = torch.tensor([min(budget, t * p0)], dtype=torch.int64, device=device)
        flat = topk_sorted(keys[None], k)
    else:
        per_frame = int(np.floor(ratio * p0 + 1e-9))
        k = torch.where(anchor.to(device), p0, per_frame).to(torch.int64)
        flat = topk_sorted(keys.view(t, p0), k)
    positions = torch.stack([flat // p0, (flat % p0) // wg, flat % wg], dim=1)
    tier = (keys[flat] >> _TIER_SHIFT).to(torch.int8)
    return Selection(positions, flat, tier, anchor.to(device))


def _select_cuda(saliency: torch.Tensor, is_iframe: torch.Tensor, budget: int | None, ratio: float | None,
                 floor: float) -> Selection:
    t, hg, wg = saliency.shape
    p0 = hg * wg
    device = saliency.device
    if budget is not None:
        k_total, k_budget, per_frame = min(budget, t * p0), min(budget, t * p0), 0
    else:
        per_frame = int(np.floor(ratio * p0 + 1e-9))
        iframes = int(is_iframe.sum())  # ratio mode's output size: the one read back
        k_total, k_budget = iframes * p0 + (t - iframes) * per_frame, -1
    visible = torch.empty(k_total, dtype=torch.int64, device=device)
    positions = torch.empty((k_total, 3), dtype=torch.int64, device=device)
    tier = torch.empty(k_total, dtype=torch.int8, device=device)
    anchor = torch.empty(t, dtype=torch.bool, device=device)
    scratch_dither = torch.empty(t * p0, dtype=torch.int32, device=device)
    scratch_keys = torch.empty(t * p0, dtype=torch.int64, device=device)
    frame_k = torch.empty(t + 1, dtype=torch.int64, device=device)
    frame_rank = torch.empty(t, dtype=torch.int32, device=device)
    bits = max(1, (max(hg, wg) - 1).bit_length())
    still_rank = torch.empty(t << (2 * bits), dtype=torch.int32, device=device)
    kernel = _cuda.get_kernel(_KERNELS, "select_patches_float32", device=device)
    _cuda.launch(kernel, None,
                 (saliency.contiguous(), is_iframe.contiguous().view(torch.uint8), np.int32(t), np.int32(p0),
                  np.int32(wg), np.int64(k_budget), np.int32(per_frame), np.float32(floor), np.int32(bits),
                  scratch_dither, scratch_keys, frame_k, frame_rank, still_rank, visible, positions, tier, anchor.view(torch.uint8)),
                 threads_per_block=1024, grid=(1,))
    return Selection(positions, visible, tier, anchor)
