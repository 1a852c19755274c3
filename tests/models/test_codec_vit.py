"""Codec ViT: attention parity (SDPA vs written-out), packing, RoPE invariances, presets, pooling."""

import pytest
import torch

from codecprim.models.codec_vit import CodecViT, CodecViTConfig, patchify
from codecprim.models.layers.attention import (
    MultiHeadAttention,
    block_diagonal_mask,
    packed_to_padded,
    padded_to_packed,
)
from codecprim.models.layers.attentive_pool import AttentivePool
from codecprim.models.layers.rope3d import Rope3D, image_positions

TOL = dict(atol=2e-5, rtol=1e-4)
SMALL = dict(width=64, depth=2, num_heads=2, patch_size=4)  # head_dim 32 -> 4:6:6 = 4, 6, 6 pairs


def _clips(lengths, patch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = sum(lengths)
    pixels = torch.randint(0, 256, (n, 3, patch, patch), generator=g, dtype=torch.uint8)
    high = torch.tensor([64, 16, 16])  # t on the virtual grid, row, col
    positions = (torch.rand(n, 3, generator=g) * high).long()
    cu = torch.tensor([0] + lengths).cumsum(0)
    return pixels, positions, cu


def _model(seed=0, **overrides):
    torch.manual_seed(seed)
    return CodecViT(CodecViTConfig(**{**SMALL, **overrides})).eval()


# -- attention layer ------------------------------------------------------------------

@pytest.mark.parametrize("varlen", ["mask", "loop"])
def test_sdpa_matches_reference_packed(varlen):
    torch.manual_seed(0)
    sdpa = MultiHeadAttention(64, 4, varlen=varlen)
    ref = MultiHeadAttention(64, 4, impl="reference", varlen=varlen)
    ref.load_state_dict(sdpa.state_dict())
    rope = Rope3D(16)
    x = torch.randn(23, 64)
    pos = torch.randint(0, 20, (23, 3))
    cu = torch.tensor([0, 5, 6, 23])
    torch.testing.assert_close(sdpa(x, rope(pos), cu_seqlens=cu), ref(x, rope(pos), cu_seqlens=cu), **TOL)


def test_sdpa_matches_reference_padded_and_packed_equals_padded():
    torch.manual_seed(1)
    sdpa = MultiHeadAttention(64, 4)
    ref = MultiHeadAttention(64, 4, impl="reference")
    ref.load_state_dict(sdpa.state_dict())
    rope = Rope3D(16)
    x, pos = torch.randn(17, 64), torch.randint(0, 20, (17, 3))
    cu = torch.tensor([0, 9, 12, 17])
    xp, valid = packed_to_padded(x, cu)  # (3, 9, 64)
    pp, _ = packed_to_padded(pos, cu)
    out_sdpa = sdpa(xp, rope(pp), valid=valid)
    out_ref = ref(xp, rope(pp), valid=valid)
    torch.testing.assert_close(out_sdpa[valid], out_ref[valid], **TOL)
    torch.testing.assert_close(out_sdpa[valid], sdpa(x, rope(pos), cu_seqlens=cu), **TOL)


def test_sequences_do_not_see_each_other():
    torch.manual_seed(2)
    attn = MultiHeadAttention(32, 2)
    x = torch.randn(10, 32)
    cu = torch.tensor([0, 4, 10])
    out = attn(x, cu_seqlens=cu)
    x2 = x.clone()
    x2[4:] += torch.randn(6, 32)  # change only the second sequence
    torch.testing.assert_close(attn(x2, cu_seqlens=cu)[:4], out[:4])
    mask = block_diagonal_mask(cu)
    assert mask[:4, :4].all() and mask[4:, 4:].all() and not mask[:4, 4:].any()


def test_pack_pad_round_trip_and_validation():
    x = torch.arange(12.0).reshape(6, 2)
    cu = torch.tensor([0, 1, 6])
    padded, valid = packed_to_padded(x, cu)
    assert padded.shape == (2, 5, 2) and valid.sum(1).tolist() == [1, 5]
    back, cu2 = padded_to_packed(padded, valid)
    assert torch.equal(back, x) and torch.equal(cu2, cu)
    for bad in ([1, 6], [0, 0, 6], [0, 4, 5], [0, 7]):
        with pytest.raises(ValueError):
            packed_to_padded(x, torch.tensor(bad))
    with pytest.raises(ValueError):
        MultiHeadAttention(30, 4)
    with pytest.raises(ValueError):
        MultiHeadAttention(32, 4, impl="flash")


# -- whole model ----------------------------------------------------------------------

def test_model_sdpa_matches_reference_path():
    model = _model()
    ref = _model(attention="reference", varlen="loop")
    ref.load_state_dict(model.state_dict())
    pixels, positions, cu = _clips([7, 3, 12])
    torch.testing.assert_close(
        model.encode(pixels, positions, cu_seqlens=cu), ref.encode(pixels, positions, cu_seqlens=cu), **TOL
    )


def test_packed_equals_padded_and_independent_of_batchmates():
    model = _model()
    pixels, positions, cu = _clips([7, 3, 12])
    packed = model(pixels, positions, cu_seqlens=cu)
    pix_p, valid = packed_to_padded(pixels, cu)
    pos_p, _ = packed_to_padded(positions, cu)
    padded = model(pix_p, pos_p, valid=valid)
    torch.testing.assert_close(padded[valid], packed, **TOL)
    alone = model(pixels[7:10], positions[7:10], cu_seqlens=torch.tensor([0, 3]))
    torch.testing.assert_close(alone, packed[7:10], **TOL)
    torch.testing.assert_close(
        model.pool(packed, cu_seqlens=cu), model.pool(padded, valid=valid), **TOL
    )


def test_only_relative_positions_matter():
    # No absolute embedding: shifting every (t, row, col) by the same offset changes nothing,
    # and permuting tokens together with their positions permutes the outputs.
    model = _model()
    pixels, positions, cu = _clips([9])
    out = model(pixels, positions, cu_seqlens=cu)
    shifted = model(pixels, positions + torch.tensor([5, -3, 7]), cu_seqlens=cu)
    torch.testing.assert_close(shifted, out, **TOL)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(model(pixels[perm], positions[perm], cu_seqlens=cu), out[perm], **TOL)
    # ...but the positions themselves are seen: moving one token in time changes the result.
    moved = positions.clone()
    moved[0, 0] += 9
    assert not torch.allclose(model(pixels, moved, cu_seqlens=cu), out, atol=1e-4)


def test_image_and_chunk_modes_are_dense_codec_mode():
    model = _model()
    g = torch.Generator().manual_seed(4)
    images = torch.randint(0, 256, (2, 3, 8, 12), generator=g, dtype=torch.uint8)
    tokens = model.forward_images(images)  # (2, 6, 64)
    patches = patchify(images, 4, layout="grid").flatten(1, 2)  # (2, 6, 3, 4, 4)
    rows, cols = 2, 3
    torch.testing.assert_close(patches[0, 4], images[0, :, 4:8, 4:8])  # row 1, col 1
    pos = image_positions(rows, cols)
    packed = model(patches.flatten(0, 1), pos.repeat(2, 1), cu_seqlens=torch.tensor([0, 6, 12]))
    torch.testing.assert_close(tokens.flatten(0, 1), packed, **TOL)
    frames = torch.randint(0, 256, (1, 2, 3, 8, 8), generator=g, dtype=torch.uint8)
    chunk = model.forward_frames(frames, [0, 32])
    pf = patchify(frames, 4).flatten(2, 3)  # (1, 2, 4, 3, 4, 4)
    pos = torch.tensor([[t, r, c] for t in (0, 32) for r in range(2) for c in range(2)])
    torch.testing.assert_close(chunk[0], model(pf.flatten(0, 2), pos, cu_seqlens=torch.tensor([0, 8])), **TOL)


def test_uint8_pixels_are_normalised_with_config_statistics():
    model = _model()
    pixels, positions, cu = _clips([5])
    cfg = model.config
    mean = torch.tensor(cfg.pixel_mean).reshape(3, 1, 1)
    std = torch.tensor(cfg.pixel_std).reshape(3, 1, 1)
    as_float = (pixels.float() / 255 - mean) / std
    torch.testing.assert_close(model(pixels, positions, cu_seqlens=cu), model(as_float, positions, cu_seqlens=cu))


def test_gradients_flow_and_checkpoint_round_trip(tmp_path):
    model = _model(embed_dim=24)
    pixels, positions, cu = _clips([6, 4])
    emb = model.encode(pixels, positions, cu_seqlens=cu)
    assert emb.shape == (2, 24)
    emb.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    path = tmp_path / "vit.safetensors"
    model.save(path)
    loaded = CodecViT.from_checkpoint(path).eval()
    assert loaded.config == model.config
    torch.testing.assert_close(loaded.encode(pixels, positions, cu_seqlens=cu), emb.detach())


# -- presets --------------------------------------------------------------------------

def _backbone_count(width, depth, patch=14, channels=3, mlp_ratio=4):
    hidden = mlp_ratio * width
    block = (3 * width * width + 3 * width) + (width * width + width)  # qkv, out proj
    block += (width * hidden + hidden) + (hidden * width + width)  # MLP
    block += 4 * width  # two LayerNorms
    return channels * patch * patch * width + width + 2 * width + depth * block + 2 * width


@pytest.mark.parametrize(
    "name,width,depth,heads,published",
    [("base", 768, 12, 12, 86e6), ("large", 1024, 24, 16, 304e6), ("huge", 1280, 32, 16, 632e6)],
)
def test_preset_parameter_counts(name, width, depth, heads, published):
    cfg = CodecViTConfig.preset(name)
    assert (cfg.width, cfg.depth, cfg.num_heads, cfg.patch_size, cfg.mlp_ratio) == (width, depth, heads, 14, 4.0)
    with torch.device("meta"):  # counts only; no 2.5 GB allocation for "huge"
        model = CodecViT(cfg)
    backbone = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("head."))
    assert backbone == _backbone_count(width, depth)
    # ViT-B/14, L/14, H/14 as published (with class token + absolute positions, which we lack).
    assert abs(backbone - published) / published < 0.015
    assert not any("pos_embed" in n or "cls" in n for n, _ in model.named_parameters())


def test_large_preset_exact_count():
    with torch.device("meta"):
        model = CodecViT(CodecViTConfig.preset("large"))
    backbone = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("head."))
    assert backbone == 302_916_608
    assert model.rope.pairs == (8, 12, 12)


@pytest.mark.parametrize(
    "kwargs",
    [dict(width=100, num_heads=3), dict(width=96, num_heads=4), dict(attention="flash"), dict(varlen="pad"),
     dict(depth=0), dict(embed_dim=0)],
)
def test_invalid_config_raises(kwargs):
    with pytest.raises(ValueError):
        CodecViTConfig(**{**SMALL, **kwargs})
    with pytest.raises(ValueError):
        CodecViTConfig.preset("gigantic")


def test_invalid_inputs_raise():
    model = _model()
    pixels, positions, cu = _clips([5])
    with pytest.raises(ValueError):
        model(pixels, positions[:, :2], cu_seqlens=cu)
    with pytest.raises(ValueError):
        model(pixels, positions, cu_seqlens=torch.tensor([0, 4]))
    with pytest.raises(ValueError):
        model(torch.zeros(5, 3, 14, 14), positions, cu_seqlens=cu)
    with pytest.raises(ValueError):
        model(pixels[None], positions[None], valid=torch.zeros(1, 5, dtype=torch.bool))


# -- attentive pooling ----------------------------------------------------------------

def test_attentive_pool_matches_explicit_formula():
    torch.manual_seed(5)
    pool = AttentivePool(16, 2, out_dim=3).eval()
    tokens = torch.randn(2, 7, 16)
    valid = torch.ones(2, 7, dtype=torch.bool)
    valid[1, 4:] = False
    out = pool(tokens, valid=valid)
    for b, n in enumerate([7, 4]):
        t = tokens[b, :n]
        q = pool.q(pool.probe)  # (1, 16)
        k, v = pool.kv(t).chunk(2, dim=-1)  # (n, 16) each
        heads = []
        for h in range(2):
            sl = slice(8 * h, 8 * h + 8)
            w = torch.softmax(q[:, sl] @ k[:, sl].T / 8**0.5, dim=-1)  # (1, n)
            heads.append(w @ v[:, sl])
        x = pool.proj(torch.cat(heads, dim=-1))
        x = x + pool.mlp(pool.norm(x))
        torch.testing.assert_close(out[b], pool.head(x)[0], **TOL)


def test_attentive_pool_is_permutation_invariant_and_packs():
    torch.manual_seed(6)
    pool = AttentivePool(16, 4, num_queries=2).eval()
    tokens = torch.randn(11, 16)
    cu = torch.tensor([0, 5, 11])
    out = pool(tokens, cu_seqlens=cu)
    assert out.shape == (2, 2, 16)
    perm = torch.cat([torch.randperm(5), 5 + torch.randperm(6)])
    torch.testing.assert_close(pool(tokens[perm], cu_seqlens=cu), out, **TOL)
    with pytest.raises(ValueError):
        pool(tokens[None], valid=torch.zeros(1, 11, dtype=torch.bool))
