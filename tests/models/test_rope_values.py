"""RoPE on the values (``MultiHeadAttention(rope_values=True)``, ``CodecViTConfig(rope_values=True)``): every
output is ``sum_j a_ij R(p_j - p_i) v_j``, so the tokens carry where what they attended to sits relative to them.
Oracle: the relative rotation written out pair by pair in float64 (the layer rotates by p_j, then back by p_i)."""

from __future__ import annotations

import math

import pytest
import torch

from codecprim.models.codec_vit import CodecViT, CodecViTConfig
from codecprim.models.layers.attention import MultiHeadAttention
from codecprim.models.layers.rope3d import Rope3D


def _rotate(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate-half layout: pair m is channels (m, m + hd/2), turned by ``angle[m]``."""
    h = x.shape[-1] // 2
    a, b = x[..., :h], x[..., h:]
    return torch.cat([a * angle.cos() - b * angle.sin(), b * angle.cos() + a * angle.sin()], -1)


def _oracle(layer: MultiHeadAttention, x: torch.Tensor, positions: torch.Tensor, rope: Rope3D) -> torch.Tensor:
    """``(N, D)`` output of one sequence, written out: softmax(q_i . k_j / sqrt(hd)) R(p_j - p_i) v_j."""
    n, d = x.shape
    heads, hd = layer.num_heads, layer.head_dim
    q, k, v = (t.reshape(n, heads, hd) for t in layer.qkv(x).split(d, dim=-1))
    angle = rope.angles(positions, torch.float64)  # (N, hd/2)
    out = torch.zeros(n, heads, hd, dtype=torch.float64)
    for i in range(n):
        qi = _rotate(q[i], angle[i])  # (H, hd)
        kj = _rotate(k, angle[:, None])  # (N, H, hd)
        weights = torch.softmax((kj * qi).sum(-1) / math.sqrt(hd), dim=0)  # (N, H)
        moved = _rotate(v, (angle - angle[i])[:, None])  # (N, H, hd): each value turned by p_j - p_i
        out[i] = (weights[..., None] * moved).sum(0)
    return layer.proj(out.reshape(n, d))


@pytest.mark.parametrize("varlen", ["mask", "loop"])
def test_rope_values_matches_the_written_out_relative_rotation(varlen) -> None:
    torch.manual_seed(0)
    layer = MultiHeadAttention(48, 3, varlen=varlen, rope_values=True).double()
    for p in layer.parameters():
        torch.nn.init.normal_(p, std=0.3)  # logits far from uniform, so wrong rotations show
    rope = Rope3D(16)
    lengths = [5, 9]
    x = torch.randn(sum(lengths), 48, dtype=torch.float64)
    positions = torch.randint(0, 8, (sum(lengths), 3))
    cu = torch.tensor([0, 5, 14])
    with torch.no_grad():
        packed = layer(x, rope(positions, torch.float64), cu_seqlens=cu)
        want = torch.cat([_oracle(layer, x[s:e], positions[s:e], rope) for s, e in ((0, 5), (5, 14))])
        torch.testing.assert_close(packed, want, rtol=1e-10, atol=1e-10)
        # padded layout, the second sequence padded to 9 after the first's 5 tokens
        padded_x = torch.zeros(2, 9, 48, dtype=torch.float64)
        padded_p = torch.zeros(2, 9, 3, dtype=torch.long)
        padded_x[0, :5], padded_p[0, :5], padded_x[1], padded_p[1] = x[:5], positions[:5], x[5:], positions[5:]
        valid = torch.zeros(2, 9, dtype=torch.bool)
        valid[0, :5], valid[1] = True, True
        padded = layer(padded_x, rope(padded_p, torch.float64), valid=valid)
        torch.testing.assert_close(torch.cat([padded[0, :5], padded[1]]), want, rtol=1e-10, atol=1e-10)


def test_codec_vit_tokens_carry_positions_only_with_rope_values() -> None:
    # Patches with one content at different places: plain RoPE gives every token the same output whatever the
    # positions (attention weights over equal values); with RoPE on the values the outputs depend on them, and on
    # the differences alone (moving every patch by the same step changes nothing).
    pixels = torch.full((6, 3, 14, 14), 120, dtype=torch.uint8)
    here = torch.tensor([[0, 0, 0], [0, 0, 1], [1, 0, 1], [1, 0, 2], [2, 0, 2], [2, 0, 3]])  # moving right
    there = here * torch.tensor([1, 1, -1]) + torch.tensor([0, 0, 4])  # the same, moving left
    cu = torch.tensor([0, 6])
    for rope_values in (False, True):
        torch.manual_seed(0)
        model = CodecViT(CodecViTConfig.preset("tiny", width=48, depth=2, num_heads=1, embed_dim=8,
                                               rope_values=rope_values)).double().eval()
        with torch.no_grad():
            right, left = (model(pixels, p, cu_seqlens=cu) for p in (here, there))  # (6, width) tokens
            shifted = model(pixels, here + torch.tensor([3, 2, 1]), cu_seqlens=cu)
        torch.testing.assert_close(shifted, right, rtol=1e-9, atol=1e-12)
        differ = float((right - left).abs().max())
        assert (differ > 1e-4) if rope_values else (differ < 1e-12)


def test_rope_values_is_off_by_default_and_kept_in_checkpoints(tmp_path) -> None:
    assert not CodecViTConfig().rope_values and not MultiHeadAttention(16, 2).rope_values
    model = CodecViT(CodecViTConfig.preset("tiny", width=48, depth=1, num_heads=1, rope_values=True))
    model.save(tmp_path / "vit.safetensors")
    assert CodecViT.from_checkpoint(tmp_path / "vit.safetensors").config.rope_values
