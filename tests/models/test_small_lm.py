"""Built-in small LM: layers against written-out formulas, GQA against MHA, KV cache
against full recomputation, and outputs recorded before its attention moved onto the shared layer."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from pathlib import Path

import numpy as np

from codecprim.models.layers.attention import MultiHeadAttention
from codecprim.models.layers.rmsnorm import RMSNorm
from codecprim.models.layers.rope import RotaryEmbedding, apply_rotary
from codecprim.models.layers.swiglu import SwiGLU
from codecprim.models.small_lm import KVCache, SmallLM, SmallLMConfig

PRE_MERGE = Path(__file__).parents[1] / "fixtures" / "small_lm_pre_merge.npz"

TINY = dict(vocab_size=101, dim=48, n_layers=2, n_heads=6, n_kv_heads=2, hidden_dim=96, max_seq_len=256)


def tiny_lm(seed: int = 0, **overrides) -> SmallLM:
    torch.manual_seed(seed)
    return SmallLM(SmallLMConfig(**{**TINY, **overrides})).double().eval()


# ---------------------------------------------------------------- layers
def test_rmsnorm_matches_formula_and_is_scale_invariant():
    torch.manual_seed(0)
    norm = RMSNorm(16, eps=1e-6).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(3, 5, 16, dtype=torch.float64)
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    torch.testing.assert_close(norm(x), expected)
    torch.testing.assert_close(norm(7.0 * x), norm(x), rtol=1e-6, atol=1e-6)


def test_swiglu_matches_formula():
    torch.manual_seed(0)
    mlp = SwiGLU(8, 20).double()
    x = torch.randn(4, 8, dtype=torch.float64)
    gate = x @ mlp.gate_proj.weight.T
    up = x @ mlp.up_proj.weight.T
    expected = (gate * torch.sigmoid(gate) * up) @ mlp.down_proj.weight.T
    torch.testing.assert_close(mlp(x), expected)


def test_rope_equals_complex_rotation_of_half_split_pairs():
    head_dim, theta = 8, 500.0
    rope = RotaryEmbedding(head_dim, theta)
    pos = torch.tensor([0, 1, 5, 1234])
    x = torch.randn(4, head_dim, dtype=torch.float64)
    cos, sin = rope(pos, dtype=torch.float64)
    out = apply_rotary(x, cos, sin)
    half = head_dim // 2
    z = torch.complex(x[:, :half], x[:, half:])
    freqs = theta ** (-torch.arange(half, dtype=torch.float64) * 2 / head_dim)
    z = z * torch.polar(torch.ones_like(freqs), pos[:, None].double() * freqs)
    torch.testing.assert_close(out, torch.cat((z.real, z.imag), dim=-1))
    torch.testing.assert_close(out[0], x[0])  # position 0 is the identity


@settings(max_examples=40, deadline=None)
@given(m=st.integers(0, 4000), n=st.integers(0, 4000), shift=st.integers(0, 4000))
def test_rope_scores_depend_only_on_relative_position(m, n, shift):
    rope = RotaryEmbedding(16, 10000.0)
    gen = torch.Generator().manual_seed(m * 7 + n)
    q = torch.randn(16, dtype=torch.float64, generator=gen)
    k = torch.randn(16, dtype=torch.float64, generator=gen)

    def score(a, b):
        ca, sa = rope(torch.tensor([a]), dtype=torch.float64)
        cb, sb = rope(torch.tensor([b]), dtype=torch.float64)
        return (apply_rotary(q, ca, sa) * apply_rotary(k, cb, sb)).sum()

    torch.testing.assert_close(score(m, n), score(m + shift, n + shift), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("bad", [dict(head_dim=7), dict(head_dim=0), dict(head_dim=8, theta=1.0)])
def test_rope_rejects_bad_arguments(bad):
    with pytest.raises(ValueError):
        RotaryEmbedding(**bad)


# ---------------------------------------------------------------- attention
def reference_causal_mha(x, wq, wk, wv, wo, n_heads, cos, sin):
    """Plain multi-head causal attention written out, one head at a time."""
    length = x.shape[1]
    hd = wq.shape[0] // n_heads
    heads = []
    for h in range(n_heads):
        rows = slice(h * hd, (h + 1) * hd)
        q = apply_rotary(x @ wq[rows].T, cos, sin)
        k = apply_rotary(x @ wk[rows].T, cos, sin)
        v = x @ wv[rows].T
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
        future = torch.ones(length, length, dtype=torch.bool).triu(1)
        heads.append(scores.masked_fill(future, float("-inf")).softmax(-1) @ v)
    return torch.cat(heads, dim=-1) @ wo.T


def test_gqa_with_as_many_kv_heads_as_query_heads_is_plain_mha():
    cfg = SmallLMConfig(**{**TINY, "n_kv_heads": TINY["n_heads"]})
    torch.manual_seed(1)
    attn = MultiHeadAttention(cfg.dim, cfg.n_heads, qkv_bias=False, proj_bias=False).double()
    rope = RotaryEmbedding(cfg.head_dim, cfg.rope_theta)
    x = torch.randn(2, 9, cfg.dim, dtype=torch.float64)
    cos, sin = rope(torch.arange(9), dtype=torch.float64)
    wq, wk, wv = attn.qkv.weight.chunk(3)
    expected = reference_causal_mha(x, wq, wk, wv, attn.proj.weight, cfg.n_heads, cos, sin)
    torch.testing.assert_close(attn(x, (cos, sin), is_causal=True), expected)


def test_gqa_equals_mha_with_each_kv_head_copied_to_its_query_group():
    gqa = tiny_lm(seed=3)
    mha = tiny_lm(seed=4, n_kv_heads=TINY["n_heads"])
    group, hd = TINY["n_heads"] // TINY["n_kv_heads"], TINY["dim"] // TINY["n_heads"]
    state, kv = {}, TINY["n_kv_heads"] * hd
    for name, value in gqa.state_dict().items():
        if name.endswith("qkv.weight"):  # query heads, then key heads, then value heads
            q, k, v = value.split((TINY["dim"], kv, kv))
            k, v = (t.view(TINY["n_kv_heads"], hd, -1).repeat_interleave(group, dim=0).reshape(-1, TINY["dim"])
                    for t in (k, v))
            value = torch.cat((q, k, v))
        state[name] = value
    mha.load_state_dict(state)
    ids = torch.randint(0, TINY["vocab_size"], (2, 12), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(mha(ids).logits, gqa(ids).logits)


# ---------------------------------------------------------------- whole model
def test_default_config_is_smollm2_135m_shaped():
    with torch.device("meta"):
        lm = SmallLM()
    assert lm.num_parameters() == 134_515_008
    assert lm.lm_head.weight is lm.embed_tokens.weight


def test_future_tokens_do_not_change_past_logits():
    lm = tiny_lm()
    ids = torch.randint(0, TINY["vocab_size"], (1, 10), generator=torch.Generator().manual_seed(1))
    changed = ids.clone()
    changed[0, 6:] = (changed[0, 6:] + 1) % TINY["vocab_size"]
    a, b = lm(ids).logits, lm(changed).logits
    torch.testing.assert_close(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])


@settings(max_examples=15, deadline=None)
@given(splits=st.lists(st.integers(1, 6), min_size=1, max_size=6))
def test_chunked_prefill_through_kv_cache_equals_full_forward(splits):
    lm = tiny_lm()
    total = sum(splits)
    ids = torch.randint(0, TINY["vocab_size"], (2, total), generator=torch.Generator().manual_seed(total))
    full = lm(ids).logits
    cache, outs, start = None, [], 0
    for n in splits:
        out = lm(ids[:, start : start + n], past_key_values=cache, use_cache=True)
        cache, start = out.past_key_values, start + n
        outs.append(out.logits)
    assert cache.get_seq_length() == total
    torch.testing.assert_close(torch.cat(outs, dim=1), full, rtol=1e-10, atol=1e-10)


def test_greedy_decoding_with_cache_equals_recomputation():
    lm = tiny_lm(seed=5)
    prompt = torch.randint(0, TINY["vocab_size"], (2, 7), generator=torch.Generator().manual_seed(2))
    # Reference: re-run the whole sequence for every new token.
    seq = prompt
    for _ in range(20):
        seq = torch.cat((seq, lm(seq).logits[:, -1].argmax(-1, keepdim=True)), dim=1)
    # Cached: prefill once, then one token per step.
    out = lm(prompt, use_cache=True, logits_to_keep=1)
    tokens = [out.logits[:, -1].argmax(-1)]
    for _ in range(19):
        out = lm(tokens[-1][:, None], past_key_values=out.past_key_values)
        tokens.append(out.logits[:, -1].argmax(-1))
    assert torch.equal(torch.stack(tokens, 1), seq[:, 7:])


def test_explicit_positions_match_default_and_shift_changes_output():
    lm = tiny_lm()
    ids = torch.randint(0, TINY["vocab_size"], (2, 8), generator=torch.Generator().manual_seed(3))
    default = lm(ids).logits
    torch.testing.assert_close(lm(ids, position_ids=torch.arange(8)[None].expand(2, -1)).logits, default)
    shifted = lm(ids, position_ids=torch.arange(8) + 100).logits
    # RoPE scores are shift invariant, so a common offset leaves the output unchanged...
    torch.testing.assert_close(shifted, default, rtol=1e-9, atol=1e-9)
    # ...while a different relative layout does not.
    assert not torch.allclose(lm(ids, position_ids=torch.arange(8) * 2).logits, default)


def test_logits_to_keep_and_inputs_embeds():
    lm = tiny_lm()
    ids = torch.randint(0, TINY["vocab_size"], (1, 6), generator=torch.Generator().manual_seed(4))
    full = lm(ids).logits
    torch.testing.assert_close(lm(ids, logits_to_keep=2).logits, full[:, -2:])
    torch.testing.assert_close(lm(inputs_embeds=lm.get_input_embeddings()(ids)).logits, full)


def test_kv_cache_grows_past_its_initial_capacity():
    cache = KVCache(1)
    chunks = [torch.randn(1, 2, n, 4) for n in (3, 20, 1, 40)]
    for c in chunks:
        k, v = cache.update(0, c, -c)
    torch.testing.assert_close(k, torch.cat(chunks, dim=2))
    torch.testing.assert_close(v, -torch.cat(chunks, dim=2))


@pytest.mark.parametrize(
    "bad",
    [dict(n_kv_heads=4), dict(dim=50), dict(n_layers=0), dict(dim=36, n_heads=4, n_kv_heads=2)],
)
def test_config_rejects_inconsistent_shapes(bad):
    with pytest.raises(ValueError):
        SmallLMConfig(**{**TINY, **bad})


def test_forward_rejects_bad_inputs():
    lm = tiny_lm()
    with pytest.raises(ValueError):
        lm()
    with pytest.raises(ValueError):
        lm(inputs_embeds=torch.zeros(1, 3, 5, dtype=torch.float64))
    with pytest.raises(ValueError):
        lm(torch.zeros(1, TINY["max_seq_len"] + 1, dtype=torch.long))


def test_float32_sdpa_path_is_close_to_float64():
    lm = tiny_lm()
    ids = torch.randint(0, TINY["vocab_size"], (2, 16), generator=torch.Generator().manual_seed(6))
    ref = lm(ids).logits
    got = lm.float()(ids).logits
    torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-4)
    assert F.cosine_similarity(got.double().flatten(), ref.flatten(), dim=0) > 0.9999


def test_explicit_head_repetition_fallback_for_old_torch(monkeypatch):
    import codecprim.models.layers.attention as attention

    lm = tiny_lm(seed=8)
    ids = torch.randint(0, TINY["vocab_size"], (2, 9), generator=torch.Generator().manual_seed(8))
    native = lm(ids).logits
    monkeypatch.setattr(attention, "_SDPA_GQA", False)
    torch.testing.assert_close(lm(ids).logits, native)


# ---------------------------------------------------------------- before/after the shared attention layer
def pre_merge_lm() -> tuple[SmallLM, dict]:
    """The fixture's model, loaded from its pre-merge parameter names (q/k/v/o_proj)."""
    saved = dict(np.load(PRE_MERGE))
    lm = SmallLM(SmallLMConfig(**json.loads(str(saved.pop("config"))))).double().eval()
    state = {k.removeprefix("state/"): torch.from_numpy(v) for k, v in saved.items() if k.startswith("state/")}
    assert any(k.endswith("attn.q_proj.weight") for k in state)
    lm.load_state_dict({**state, "lm_head.weight": state["embed_tokens.weight"]})
    return lm, {k: torch.from_numpy(v) for k, v in saved.items() if not k.startswith("state/")}


def test_outputs_equal_those_recorded_before_the_merge():
    lm, saved = pre_merge_lm()
    ids = saved["ids"]
    with torch.no_grad():
        torch.testing.assert_close(lm(ids).logits, saved["logits"], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(lm(ids, attention_mask=saved["mask"]).logits, saved["padded"], rtol=1e-12,
                                   atol=1e-12)
        out, chunks = None, []
        for start, stop in ((0, 4), (4, 5), (5, 11)):
            out = lm(ids[:, start:stop], past_key_values=None if out is None else out.past_key_values, use_cache=True)
            chunks.append(out.logits)
        torch.testing.assert_close(torch.cat(chunks, 1), saved["chunked"], rtol=1e-12, atol=1e-12)
        out = lm(ids[:, :5], use_cache=True, logits_to_keep=1)
        tokens = [out.logits[:, -1].argmax(-1)]
        for _ in range(9):
            out = lm(tokens[-1][:, None], past_key_values=out.past_key_values)
            tokens.append(out.logits[:, -1].argmax(-1))
    assert torch.equal(torch.stack(tokens, 1), saved["greedy"])


def test_old_and_new_parameter_names_load_the_same_model():
    lm, saved = pre_merge_lm()
    again = SmallLM(lm.config).double().eval()
    again.load_state_dict(lm.state_dict())  # today's names: fused qkv and proj
    assert {k for k in lm.state_dict() if ".attn." in k} == {
        f"layers.{i}.attn.{name}.weight" for i in range(lm.config.n_layers) for name in ("qkv", "proj")}
    with torch.no_grad():
        assert torch.equal(again(saved["ids"]).logits, lm(saved["ids"]).logits)
