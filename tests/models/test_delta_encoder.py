"""Δ-encoder: shapes, parameter budgets of both presets, gradient flow, layer oracles."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codecprim.models.delta_encoder import DeltaEncoder, DeltaEncoderConfig, minmax_normalize
from codecprim.models.layers.query_pool import QueryPool, sincos_2d
from codecprim.models.layers.transformer import Transformer
from codecprim.models.resnet_trunk import ResNet18Trunk


TINY = DeltaEncoderConfig(out_dim=36, width=36, depth=1, heads=9, trunk_base_width=16)


def _expected_params(cfg: DeltaEncoderConfig, trunk: int) -> int:
    """Parameter count written out from the architecture description, layer by layer."""
    w, d, p = cfg.width, cfg.out_dim, cfg.patch_size
    hidden = int(round(w * cfg.mlp_ratio))
    block = (2 * w                      # pre-attention LayerNorm
             + 3 * w * w + 3 * w        # fused qkv
             + w * w + w                # attention output projection
             + 2 * w                    # pre-MLP LayerNorm
             + w * hidden + hidden + hidden * w + w)  # two-layer MLP
    transformer = cfg.depth * block + 2 * w  # + final LayerNorm
    out_proj = 0 if d == w else w * d + d

    def pool(k: int) -> int:
        return transformer + k * w + out_proj

    motion_mlp = (p * p * 2) * w + w + w * w + w
    residual_proj = 8 * cfg.trunk_base_width * w + w
    return motion_mlp + pool(cfg.motion_queries) + trunk + residual_proj + pool(cfg.residual_queries)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_resnet18_trunk_matches_the_imagenet_resnet18_conv_part() -> None:
    # torchvision's resnet18 has 11,689,512 parameters, 513,000 of them in the fc layer.
    with torch.device("meta"):
        assert _count(ResNet18Trunk(in_channels=3, base_width=64)) == 11_689_512 - 513_000
        # Output stride 16 (dilated last stage) keeps the same weights.
        assert _count(ResNet18Trunk(in_channels=3, output_stride=16)) == 11_176_512


@pytest.mark.parametrize("stride", [32, 16])
def test_resnet18_trunk_output_stride(stride: int) -> None:
    trunk = ResNet18Trunk(in_channels=1, base_width=8, output_stride=stride).eval()
    out = trunk(torch.randn(2, 1, 128, 96))
    assert out.shape == (2, 64, 128 // stride, 96 // stride)


def test_presets_parameter_counts() -> None:
    trunk_1ch = 11_176_512 - 2 * 64 * 7 * 7  # luma residual: conv1 sees 1 plane instead of 3
    with torch.device("meta"):
        paper = DeltaEncoder(DeltaEncoderConfig.preset("paper"))
        compact = DeltaEncoder(DeltaEncoderConfig.preset("compact"))
    assert _count(paper) == _expected_params(paper.config, trunk_1ch) == 141_216_064
    assert _count(compact) == _expected_params(compact.config, trunk_1ch) == 13_680_304
    assert _count(compact) < 15_000_000  # the paper's stated budget
    assert paper.config.out_dim == compact.config.out_dim == 1152
    assert paper.config.num_tokens == compact.config.num_tokens == 8


def test_paper_defaults() -> None:
    cfg = DeltaEncoderConfig()
    assert (cfg.width, cfg.depth, cfg.heads, cfg.patch_size, cfg.motion_queries, cfg.residual_queries) == (
        1152, 4, 9, 16, 4, 4)
    assert DeltaEncoderConfig.preset("paper") == cfg
    assert DeltaEncoderConfig.preset("compact", depth=2).depth == 2


@pytest.mark.parametrize("hw", [(64, 96), (50, 70), (16, 16)])
@pytest.mark.parametrize("align", ["upsample", "dilate"])
def test_output_shapes(hw: tuple[int, int], align: str) -> None:
    torch.manual_seed(0)
    enc = DeltaEncoder(DeltaEncoderConfig(out_dim=48, width=36, depth=1, heads=9, trunk_base_width=8,
                                          residual_align=align))
    h, w = hw
    out = enc(torch.randn(3, h, w, 2) * 4, torch.randint(-60, 60, (3, h, w), dtype=torch.int16))
    assert out.tokens.shape == (3, 8, 48)
    assert out.motion.shape == (3, 4, 48) and out.residual.shape == (3, 4, 48)
    assert torch.equal(out.tokens, torch.cat([out.motion, out.residual], 1))
    assert torch.isfinite(out.tokens).all()
    assert "tokens=(3, 8, 48)" in repr(out)


def test_compact_preset_forward() -> None:
    torch.manual_seed(0)
    enc = DeltaEncoder(DeltaEncoderConfig.preset("compact")).eval()
    with torch.no_grad():
        out = enc(torch.randn(1, 64, 96, 2), torch.zeros(1, 64, 96, dtype=torch.int16))
    assert out.tokens.shape == (1, 8, 1152)


def test_residual_grid_alignment() -> None:
    # Both alignments put the residual features on the motion branch's 16-px patch grid.
    for align, trunk_grid in (("upsample", (2, 3)), ("dilate", (4, 6))):
        enc = DeltaEncoder(DeltaEncoderConfig(out_dim=36, width=36, depth=1, heads=9, trunk_base_width=8,
                                              residual_align=align))
        seen = {}
        enc.residual_pool.register_forward_pre_hook(lambda m, args, kw: seen.update(grid=kw["grid"]),
                                                    with_kwargs=True)
        feat = enc.trunk(torch.zeros(1, 1, 64, 96))
        assert feat.shape[-2:] == trunk_grid
        enc(torch.zeros(1, 64, 96, 2), torch.zeros(1, 64, 96))
        assert seen["grid"] == (4, 6)


def test_branches_are_independent_and_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    enc = DeltaEncoder(TINY)
    motion = (torch.randn(2, 48, 64, 2) * 3).requires_grad_()
    residual = torch.randn(2, 48, 64).mul(40).requires_grad_()
    out = enc(motion, residual)
    # Motion tokens see only the motion field, residual tokens only the residual.
    g_m = torch.autograd.grad(out.motion.sum(), [motion, residual], allow_unused=True)
    g_r = torch.autograd.grad(out.residual.sum(), [motion, residual], allow_unused=True)
    assert g_m[0].abs().sum() > 0 and (g_m[1] is None or g_m[1].abs().sum() == 0)
    assert g_r[1].abs().sum() > 0 and (g_r[0] is None or g_r[0].abs().sum() == 0)

    # The trunk's zero-initialised last BN gammas block their convs' gradients at step 0
    # (by design, Goyal et al.); after one update every parameter must receive gradient.
    opt = torch.optim.SGD(enc.parameters(), lr=0.1)
    target = torch.randn(2, 8, 36)
    for _ in range(2):
        opt.zero_grad()
        loss = (enc(motion.detach(), residual.detach()).tokens - target).pow(2).mean()
        loss.backward()
        opt.step()
    missing = [n for n, p in enc.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 12), w=st.integers(1, 12),
    scale=st.floats(0.01, 100.0), shift=st.floats(-50.0, 50.0), seed=st.integers(0, 2**16),
)
def test_minmax_normalize_properties(h: int, w: int, scale: float, shift: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    field = torch.randn(2, h, w, 2, generator=g, dtype=torch.float64) * 5
    out = minmax_normalize(field)
    assert out.shape == field.shape
    assert out.min() >= -1 - 1e-9 and out.max() <= 1 + 1e-9
    flat = out.flatten(1, 2)
    for b in range(2):
        for c in range(2):
            if field[b, ..., c].max() - field[b, ..., c].min() > 1e-6:
                assert flat[b, :, c].min() == pytest.approx(-1) and flat[b, :, c].max() == pytest.approx(1)
    # Min-max normalisation forgets any positive affine change of units.
    assert torch.allclose(minmax_normalize(field * scale + shift), out, atol=1e-6)


def test_minmax_normalize_constant_field_is_zero() -> None:
    field = torch.zeros(1, 4, 4, 2)
    field[..., 0] = 3.0
    assert torch.equal(minmax_normalize(field), torch.zeros_like(field))


def test_motion_tokens_read_each_patch_pixel_by_pixel() -> None:
    """The motion MLP sees patch (gy, gx) as its pixels row by row, a pixel's (dx, dy) adjacent:
    the order the layer was trained in, now cut by the shared codecprim.patchify."""
    torch.manual_seed(0)
    cfg = DeltaEncoderConfig(width=32, out_dim=32, depth=1, heads=2, motion_queries=2, residual_queries=2,
                             trunk_base_width=8, motion_norm="scale", motion_scale=1.0)
    model = DeltaEncoder(cfg).eval()
    field = torch.randn(2, 32, 48, 2)
    seen = {}
    model.motion_mlp.register_forward_pre_hook(lambda mod, args: seen.update(x=args[0]))
    with torch.no_grad():
        model(field, torch.zeros(2, 32, 48))
    p = cfg.patch_size
    for b in range(2):
        for gy in range(32 // p):
            for gx in range(48 // p):
                want = field[b, gy * p:(gy + 1) * p, gx * p:(gx + 1) * p].reshape(-1)
                assert torch.equal(seen["x"][b, gy * (48 // p) + gx], want)


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_transformer_sdpa_matches_reference(norm: str) -> None:
    torch.manual_seed(0)
    model = Transformer(width=36, depth=2, heads=9, mlp_ratio=2.0, norm=norm).eval()
    x = torch.randn(2, 11, 36)
    torch.testing.assert_close(model(x), model(x, reference=True), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(x, is_causal=True), model(x, is_causal=True, reference=True),
                               atol=1e-5, rtol=1e-5)
    mask = torch.rand(2, 11, 11) > 0.3
    mask |= torch.eye(11, dtype=torch.bool)  # every query keeps at least itself
    torch.testing.assert_close(model(x, attn_mask=mask), model(x, attn_mask=mask, reference=True),
                               atol=1e-5, rtol=1e-5)
    # Causality: the first token must not change when later ones do.
    y = x.clone()
    y[:, 5:] += 1.0
    torch.testing.assert_close(model(x, is_causal=True)[:, :5], model(y, is_causal=True)[:, :5])


def test_query_pool_is_permutation_invariant_without_positions() -> None:
    torch.manual_seed(0)
    pool = QueryPool(width=36, depth=1, heads=9, num_queries=3, out_dim=20, pos_embed=False).eval()
    x = torch.randn(2, 10, 36)
    perm = torch.randperm(10)
    out = pool(x)
    assert out.shape == (2, 3, 20)
    torch.testing.assert_close(out, pool(x[:, perm]), atol=1e-5, rtol=1e-5)


def test_sincos_2d() -> None:
    emb = sincos_2d(3, 5, 16)
    assert emb.shape == (15, 16)
    assert torch.unique(emb, dim=0).shape[0] == 15  # every grid position is distinct
    grid = emb.view(3, 5, 16)  # (rows, cols, dim), row-major
    # First half encodes the row only, second half the column only.
    assert torch.equal(grid[:, :, :8], grid[:, :1, :8].expand(3, 5, 8))
    assert torch.equal(grid[:, :, 8:], grid[:1, :, 8:].expand(3, 5, 8))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"width": 100}, "heads must divide width"),
        ({"width": 18, "heads": 9}, "multiple of 4"),
        ({"residual_align": "nearest"}, "residual_align must be one of"),
        ({"norm": "batchnorm"}, "norm must be one of"),
        ({"depth": 0}, "depth must be a positive"),
    ],
)
def test_invalid_config(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DeltaEncoderConfig(**kwargs)


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError, match="preset must be one of"):
        DeltaEncoderConfig.preset("huge")
    enc = DeltaEncoder(TINY)
    with pytest.raises(ValueError, match=r"motion must be \(B, H, W, 2\)"):
        enc(torch.zeros(1, 32, 32, 3), torch.zeros(1, 32, 32))
    with pytest.raises(ValueError, match="disagree"):
        enc(torch.zeros(1, 32, 32, 2), torch.zeros(1, 32, 48))
    with pytest.raises(ValueError, match="residual must be"):
        enc(torch.zeros(1, 32, 32, 2), torch.zeros(1, 3, 32, 32))
