"""Built-in small decoder-only language model: RMSNorm, RoPE, grouped-query attention,
SwiGLU and a key/value cache.

It speaks the slice of the Hugging Face causal-LM calling convention that
:class:`codecprim.models.video_llm.VideoLLM` relies on (``inputs_embeds``,
``position_ids``, ``attention_mask``, ``past_key_values``, ``use_cache``, ``logits_to_keep``,
``get_input_embeddings()``; the output has ``.logits`` and ``.past_key_values``), so the
wrapper drives it and a ``transformers`` model through the same code path.
Attention is the package's one :class:`~.layers.attention.MultiHeadAttention`, grouped-query and
causal here, so the varlen and bf16 work on it serves the LM too. Checkpoints written before that
merge (separate ``q_proj``/``k_proj``/``v_proj``/``o_proj``) load unchanged: their projections are
stacked into the fused ``qkv``/``proj`` on load.
Weights are randomly initialised: it is a realistic-shape stand-in for benchmarks and
tests, or a starting point for training, not a pretrained model.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from .layers.attention import MultiHeadAttention
from .layers.rmsnorm import RMSNorm
from .layers.rope import RotaryEmbedding
from .layers.swiglu import SwiGLU

__all__ = ["SmallLMConfig", "SmallLM", "KVCache", "LMOutput", "DecoderBlock"]


@dataclass
class SmallLMConfig:
    """Shape of the decoder. Defaults are the SmolLM2-135M architecture
    (30 layers, width 576, 9 query heads sharing 3 key/value heads, SwiGLU 1536,
    RoPE base 1e5, tied embeddings, 49 152-token vocabulary): about 135 M parameters.
    """

    vocab_size: int = 49152
    dim: int = 576
    n_layers: int = 30
    n_heads: int = 9
    n_kv_heads: int = 3
    hidden_dim: int = 1536
    rope_theta: float = 100000.0
    norm_eps: float = 1e-5
    max_seq_len: int = 32768
    tie_embeddings: bool = True
    init_std: float = 0.02

    def __post_init__(self) -> None:
        for name in ("vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "hidden_dim", "max_seq_len"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"SmallLMConfig.{name} must be a positive integer, got {getattr(self, name)}")
        if self.dim % self.n_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads}); "
                f"allowed n_kv_heads: {[d for d in range(1, self.n_heads + 1) if self.n_heads % d == 0]}"
            )
        if (self.dim // self.n_heads) % 2:
            raise ValueError(f"head_dim = dim / n_heads = {self.dim // self.n_heads} must be even for RoPE")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads


@dataclass
class LMOutput:
    """Minimal stand-in for ``transformers``' ``CausalLMOutputWithPast``."""

    logits: torch.Tensor  # (B, L_kept, vocab)
    past_key_values: "KVCache | None" = None


class KVCache:
    """Per-layer key/value buffers for incremental decoding.

    Buffers grow geometrically so that appending one token is amortised O(1) copies
    instead of re-concatenating the whole history at every step.
    """

    def __init__(self, n_layers: int) -> None:
        self._k: list[torch.Tensor | None] = [None] * n_layers
        self._v: list[torch.Tensor | None] = [None] * n_layers
        self._len = [0] * n_layers

    def get_seq_length(self, layer: int = 0) -> int:
        """Number of cached positions (same name as ``transformers.Cache``)."""
        return self._len[layer]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``k``/``v`` of shape (B, H_kv, L_new, head_dim); return the full history."""
        old = self._len[layer]
        new = old + k.shape[2]
        buf_k, buf_v = self._k[layer], self._v[layer]
        if buf_k is None or buf_k.shape[2] < new:
            cap = max(new, 2 * (0 if buf_k is None else buf_k.shape[2]), 16)
            grown_k = k.new_empty(k.shape[0], k.shape[1], cap, k.shape[3])  # (B, H_kv, cap, hd)
            grown_v = v.new_empty(v.shape[0], v.shape[1], cap, v.shape[3])
            if buf_k is not None:
                grown_k[:, :, :old] = buf_k[:, :, :old]
                grown_v[:, :, :old] = buf_v[:, :, :old]
            self._k[layer], self._v[layer] = buf_k, buf_v = grown_k, grown_v
        buf_k[:, :, old:new] = k
        buf_v[:, :, old:new] = v
        self._len[layer] = new
        return buf_k[:, :, :new], buf_v[:, :, :new]


def _stack_separate_projections(module, state_dict, prefix, *args) -> None:
    """Load-time rename of pre-merge attention weights: q/k/v_proj stacked into qkv, o_proj -> proj."""
    for key in [k for k in state_dict if k.startswith(prefix) and k.endswith(".attn.q_proj.weight")]:
        stem = key[: -len("q_proj.weight")]
        parts = [state_dict.pop(f"{stem}{name}_proj.weight") for name in "qkv"]
        state_dict[f"{stem}qkv.weight"] = torch.cat(parts, dim=0)  # (H*hd + 2*H_kv*hd, dim)
        state_dict[f"{stem}proj.weight"] = state_dict.pop(f"{stem}o_proj.weight")


class DecoderBlock(nn.Module):
    """Pre-norm block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``."""

    def __init__(self, cfg: SmallLMConfig, layer_idx: int) -> None:
        super().__init__()
        self.input_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.layer_idx = layer_idx
        self.attn = MultiHeadAttention(cfg.dim, cfg.n_heads, num_kv_heads=cfg.n_kv_heads, qkv_bias=False,
                                       proj_bias=False)
        self.post_attn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp = SwiGLU(cfg.dim, cfg.hidden_dim)

    def forward(self, x, cos, sin, cache=None, key_mask=None):
        update = None if cache is None else functools.partial(cache.update, self.layer_idx)
        x = x + self.attn(self.input_norm(x), (cos, sin), valid=key_mask, is_causal=True, kv_cache=update)
        return x + self.mlp(self.post_attn_norm(x))


class SmallLM(nn.Module):
    """Decoder-only causal LM; see the module docstring for the calling convention."""

    def __init__(self, config: SmallLMConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or SmallLMConfig()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(DecoderBlock(cfg, i) for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        self.rope = RotaryEmbedding(cfg.head_dim, cfg.rope_theta)
        self.apply(self._init_weights)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.register_load_state_dict_pre_hook(_stack_separate_projections)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.config.init_std)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def num_parameters(self) -> int:
        """Distinct parameters (a tied head is counted once)."""
        return sum(p.numel() for p in self.parameters())

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: KVCache | None = None,
        use_cache: bool = False,
        logits_to_keep: int = 0,
        attention_mask: torch.Tensor | None = None,
    ) -> LMOutput:
        """Run the decoder.

        Args:
            input_ids: (B, L) token ids, or
            inputs_embeds: (B, L, dim) embeddings (exactly one of the two).
            position_ids: (B, L) or (L,) RoPE positions; default continues after the cache.
            past_key_values: cache from a previous call, extended in place.
            use_cache: create a cache when none is passed and return it.
            logits_to_keep: if > 0, only the last ``logits_to_keep`` positions go through
                the vocabulary projection (prefill needs just one).
            attention_mask: (B, L), nonzero for real tokens and 0 for padding, which no
                token attends to (a batch of streams with different layouts); only without a cache.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        if x.dim() != 3 or x.shape[-1] != self.config.dim:
            raise ValueError(f"inputs_embeds must be (B, L, {self.config.dim}), got {tuple(x.shape)}")
        cache = past_key_values
        if cache is None and use_cache:
            cache = KVCache(self.config.n_layers)
        past = 0 if cache is None else cache.get_seq_length()
        length = x.shape[1]
        if past + length > self.config.max_seq_len:
            raise ValueError(f"sequence length {past + length} exceeds max_seq_len={self.config.max_seq_len}")
        if position_ids is None:
            position_ids = torch.arange(past, past + length, device=x.device)
        key_mask = None
        if attention_mask is not None:
            if cache is not None:
                raise ValueError("attention_mask (padding) is supported without a cache only")
            if attention_mask.shape != x.shape[:2]:
                raise ValueError(f"attention_mask must be (B, L) = {tuple(x.shape[:2])}, got {tuple(attention_mask.shape)}")
            key_mask = attention_mask.to(device=x.device, dtype=torch.bool)
        cos, sin = self.rope(position_ids, dtype=x.dtype)  # (L, hd) or, per sample, (B, L, hd)
        for layer in self.layers:
            x = layer(x, cos, sin, cache, key_mask)
        if logits_to_keep > 0:
            x = x[:, -logits_to_keep:]
        logits = self.lm_head(self.norm(x))
        return LMOutput(logits=logits, past_key_values=cache if (use_cache or past_key_values is not None) else None)
