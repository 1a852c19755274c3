"""Packed (codec-mode) attention: the variable-length kernel path, its device dispatch, and one check per batch.

On CUDA ``varlen="auto"`` runs ``varlen_attn`` (fp16/bf16) or compiled ``flex_attention``; on the CPU it
must stay the mask path the models trained with before. The kernel path itself also runs on the CPU here
(eager ``flex_attention`` over the document block mask), so its layout handling is tested without a GPU.
"""

import pytest
import torch

import codecprim.models.layers.attention as attention
from codecprim.models.codec_vit import CodecViT, CodecViTConfig
from codecprim.models.layers.attention import MultiHeadAttention, PackedSequences
from codecprim.models.layers.rope3d import Rope3D

SMALL = dict(width=64, depth=3, num_heads=2, patch_size=4)


def _layers(seed=0, kv_heads=None):
    torch.manual_seed(seed)
    layers = {mode: MultiHeadAttention(64, 4, num_kv_heads=kv_heads, varlen=mode)
              for mode in ("auto", "mask", "loop", "kernel")}
    reference = MultiHeadAttention(64, 4, num_kv_heads=kv_heads, impl="reference")
    for layer in layers.values():
        layer.load_state_dict(reference.state_dict())
    return layers, reference


def _packed(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = sum(lengths)
    x = torch.randn(n, 64, generator=g)
    pos = torch.randint(0, 20, (n, 3), generator=g)
    cu = torch.tensor([0] + list(lengths)).cumsum(0)
    return x, Rope3D(16)(pos), cu


def test_auto_on_cpu_is_exactly_the_mask_path():
    layers, _ = _layers()
    x, rope, cu = _packed([5, 1, 17])
    assert layers["auto"].packed_mode(x.device) == "mask"
    assert torch.equal(layers["auto"](x, rope, cu_seqlens=cu), layers["mask"](x, rope, cu_seqlens=cu))


@torch.no_grad()  # flex_attention has no CPU backward; on CUDA the kernel path trains
@pytest.mark.parametrize("lengths", [[5, 1, 17], [130, 3, 140], [1]])
def test_kernel_path_matches_reference(lengths):
    layers, reference = _layers(1)
    x, rope, cu = _packed(lengths, seed=len(lengths))
    expected = reference(x, rope, cu_seqlens=cu)
    for mode in ("kernel", "loop", "mask"):
        torch.testing.assert_close(layers[mode](x, rope, cu_seqlens=cu), expected, atol=2e-5, rtol=1e-4)


@torch.no_grad()
@pytest.mark.parametrize("kv_heads", [1, 2])
def test_grouped_query_heads_equal_repeated_key_value_heads(kv_heads):
    # The oracle: plain multi-head attention whose k/v projections repeat each shared head for its group.
    layers, reference = _layers(4, kv_heads)
    mha = MultiHeadAttention(64, 4, impl="reference")
    q, k, v = reference.qkv.weight.split((64, 16 * kv_heads, 16 * kv_heads))
    qb, kb, vb = reference.qkv.bias.split((64, 16 * kv_heads, 16 * kv_heads))
    group = 4 // kv_heads
    heads = lambda t: t.unflatten(0, (kv_heads, -1)).repeat_interleave(group, 0).flatten(0, 1)  # noqa: E731
    mha.load_state_dict({"qkv.weight": torch.cat((q, heads(k), heads(v))), "qkv.bias": torch.cat((qb, heads(kb), heads(vb))),
                         "proj.weight": reference.proj.weight, "proj.bias": reference.proj.bias})
    x, rope, cu = _packed([5, 1, 17], seed=5)
    expected = mha(x, rope, cu_seqlens=cu)
    for mode in ("kernel", "loop", "mask"):
        torch.testing.assert_close(layers[mode](x, rope, cu_seqlens=cu), expected, atol=2e-5, rtol=1e-4)
    padded = torch.randn(2, 7, 64)
    valid = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    got = layers["mask"](padded, valid=valid, is_causal=True)
    torch.testing.assert_close(got, mha(padded, valid=valid, is_causal=True), atol=2e-5, rtol=1e-4)


def test_rejects_kv_heads_that_do_not_divide_heads():
    with pytest.raises(ValueError, match="num_kv_heads"):
        MultiHeadAttention(64, 4, num_kv_heads=3)


@torch.no_grad()
def test_kernel_path_keeps_sequences_apart():
    # Changing one sequence's tokens must not move another's outputs.
    layers, _ = _layers(2)
    x, rope, cu = _packed([6, 9])
    before = layers["kernel"](x, rope, cu_seqlens=cu)
    x2 = x.clone()
    x2[6:] += 3.0
    after = layers["kernel"](x2, rope, cu_seqlens=cu)
    torch.testing.assert_close(after[:6], before[:6], atol=1e-6, rtol=0)
    assert not torch.allclose(after[6:], before[6:])


def test_lengths_are_checked_once_per_batch_not_per_layer(monkeypatch):
    calls = []
    real = attention.check_cu_seqlens
    monkeypatch.setattr(attention, "check_cu_seqlens", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(0)
    model = CodecViT(CodecViTConfig(**SMALL)).eval()
    n = 40
    pixels = torch.randint(0, 256, (n, 3, 4, 4), dtype=torch.uint8)
    positions = torch.randint(0, 16, (n, 3))
    model.encode(pixels, positions, cu_seqlens=torch.tensor([0, 15, 40]))
    assert len(calls) == 1  # three blocks and the pooling head share one PackedSequences


def test_packed_sequences_reject_bad_boundaries():
    with pytest.raises(ValueError, match="increase strictly"):
        PackedSequences.of(torch.tensor([0, 4, 4, 9]), 9)
    with pytest.raises(ValueError, match="token count"):
        PackedSequences.of(torch.tensor([0, 4, 9]), 10)
    packing = PackedSequences.of(torch.tensor([0, 4, 9]), 9)
    assert packing.max_seqlen == 5 and packing.cu_seqlens.dtype == torch.int32
    with pytest.raises(ValueError, match="cover 9 tokens"):
        PackedSequences.of(packing, 8)


@pytest.mark.cuda
@pytest.mark.parametrize("kv_heads", [None, 2])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_cuda_kernel_path_matches_reference(dtype, kv_heads):
    layers, reference = _layers(3, kv_heads)
    x, rope, cu = _packed([300, 7, 513], seed=3)
    kernel = layers["auto"].cuda().to(dtype)
    ref = reference.cuda().to(dtype)
    x, rope, cu = x.cuda().to(dtype), tuple(t.cuda() for t in rope), cu.cuda()
    assert kernel.packed_mode(x.device) == "kernel"
    x.requires_grad_(True)
    out = kernel(x, rope, cu_seqlens=cu)
    out.float().square().mean().backward()  # the training path: gradients through the varlen kernel
    assert torch.isfinite(x.grad).all()
    tol = dict(atol=2e-2, rtol=2e-2) if dtype == torch.bfloat16 else dict(atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(kernel(x, rope, cu_seqlens=cu).float(), ref(x, rope, cu_seqlens=cu).float(), **tol)
