"""CoPE-VideoLM-style video language model wrapper.

A clip arrives as codec-layout visual tokens: dense RGB tokens for the keyframes
(I-frames, from a frozen image encoder) and a handful of Δ-tokens for each P-frame (or
group of fused P-frames, from the Δ-encoder). The wrapper projects both to the language
model's width, interleaves them in display order -- ``[I_0 tokens, Δ_1, Δ_2, ..., I_g
tokens, Δ_{g+1}, ...]`` -- places the text prompt after (or before) the video and runs a
causal LM on the result through ``inputs_embeds``.

Any object that follows the Hugging Face causal-LM convention works as the LM: a
``transformers`` ``*ForCausalLM`` (optional dependency, see :func:`load_hf_causal_lm`) or
the built-in :class:`~codecprim.models.small_lm.SmallLM`. The wrapper only consumes
tensors; reading video and running the encoders is the caller's job.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from .projector import PROJECTOR_KINDS, Projector, ProjectorConfig

__all__ = [
    "VideoLLMConfig",
    "CodecTokens",
    "InterleavedStream",
    "VideoLLM",
    "load_hf_causal_lm",
    "TEXT",
    "KEYFRAME",
    "DELTA",
    "PROMPT_POSITIONS",
]

#: ``InterleavedStream.token_kind`` values.
TEXT, KEYFRAME, DELTA = 0, 1, 2
PROMPT_POSITIONS = ("last", "first")


@dataclass
class VideoLLMConfig:
    """Wrapper settings.

    Attributes:
        visual_dim: width of keyframe tokens (1152: SigLIP-so400m, the φRGB of CoPE's
            LLaVA-Video base).
        delta_dim: width of Δ-tokens. ``None`` means Δ-tokens already live in the RGB
            token space -- CoPE pre-trains the Δ-encoder to align with the image
            encoder's embeddings -- so they share the keyframe projector. Any other value
            gives Δ-tokens their own projector.
        projector: one of ``PROJECTOR_KINDS``.
        prompt_position: ``"last"`` (video, then question; the LLaVA layout) or
            ``"first"`` (question, then video).
    """

    visual_dim: int = 1152
    delta_dim: int | None = None
    projector: str = "mlp2x_gelu"
    prompt_position: str = "last"

    def __post_init__(self) -> None:
        if self.projector not in PROJECTOR_KINDS:
            raise ValueError(f"projector must be one of {PROJECTOR_KINDS}, got {self.projector!r}")
        if self.prompt_position not in PROMPT_POSITIONS:
            raise ValueError(f"prompt_position must be one of {PROMPT_POSITIONS}, got {self.prompt_position!r}")
        if self.visual_dim <= 0 or (self.delta_dim is not None and self.delta_dim <= 0):
            raise ValueError(f"visual_dim/delta_dim must be positive, got {self.visual_dim}, {self.delta_dim}")


@dataclass
class CodecTokens:
    """Visual tokens of a batch of clips that share one frame layout.

    Attributes:
        keyframe_tokens: (B, K, M, visual_dim), M tokens for each of K keyframes.
        keyframe_indices: K display-order frame indices of the keyframes.
        delta_tokens: (B, P, N, delta_dim), N Δ-tokens for each of P P-frames (or fused
            P-frame groups), or ``None`` for a keyframes-only clip.
        delta_indices: P display-order indices (first frame of each fused group).
        keyframe_mask, delta_mask: optional (B, K) and (B, P) bool, False for padding: clips
            of different layouts share one padded layout (``codecprim.data.collate_cope``),
            and the stream then carries an ``attention_mask`` that hides the padding.
    Indices need not be sorted but must be distinct across both kinds.
    """

    keyframe_tokens: torch.Tensor
    keyframe_indices: Sequence[int]
    delta_tokens: torch.Tensor | None = None
    delta_indices: Sequence[int] = ()
    keyframe_mask: torch.Tensor | None = None
    delta_mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.keyframe_indices = [int(i) for i in self.keyframe_indices]
        self.delta_indices = [int(i) for i in self.delta_indices]
        kf = self.keyframe_tokens
        if kf.dim() != 4:
            raise ValueError(f"keyframe_tokens must be (B, K, M, D), got {tuple(kf.shape)}")
        if kf.shape[1] != len(self.keyframe_indices):
            raise ValueError(f"{kf.shape[1]} keyframes but {len(self.keyframe_indices)} keyframe_indices")
        if self.delta_tokens is None:
            if self.delta_indices:
                raise ValueError("delta_indices given without delta_tokens")
        else:
            dt = self.delta_tokens
            if dt.dim() != 4 or dt.shape[0] != kf.shape[0]:
                raise ValueError(f"delta_tokens must be (B={kf.shape[0]}, P, N, D), got {tuple(dt.shape)}")
            if dt.shape[1] != len(self.delta_indices):
                raise ValueError(f"{dt.shape[1]} Δ-token groups but {len(self.delta_indices)} delta_indices")
        every = self.keyframe_indices + self.delta_indices
        if len(set(every)) != len(every):
            raise ValueError("keyframe_indices and delta_indices must be distinct frame indices")
        if any(i < 0 for i in every):
            raise ValueError("frame indices must be >= 0")
        if not every:
            raise ValueError("a clip needs at least one keyframe or Δ-token group")
        for name, mask, count in (("keyframe_mask", self.keyframe_mask, len(self.keyframe_indices)),
                                  ("delta_mask", self.delta_mask, len(self.delta_indices))):
            if mask is not None and tuple(mask.shape) != (kf.shape[0], count):
                raise ValueError(f"{name} must be (B={kf.shape[0]}, {count}), got {tuple(mask.shape)}")

    @property
    def padded(self) -> bool:
        return self.keyframe_mask is not None or self.delta_mask is not None

    @property
    def batch_size(self) -> int:
        return self.keyframe_tokens.shape[0]

    def time_order(self) -> list[tuple[int, int, int]]:
        """``(frame_index, kind, slot)`` for every visual segment, in display order."""
        items = [(t, KEYFRAME, j) for j, t in enumerate(self.keyframe_indices)]
        items += [(t, DELTA, j) for j, t in enumerate(self.delta_indices)]
        return sorted(items)


@dataclass
class InterleavedStream:
    """The LM input built by :meth:`VideoLLM.build_stream`.

    Attributes:
        embeds: (B, L, lm_dim) input embeddings.
        position_ids: (B, L) positions 0..L-1 (one shared 1-D axis, as in LLaVA).
        token_kind: (L,) ``TEXT``, ``KEYFRAME`` or ``DELTA`` per position.
        frame_index: (L,) source frame of each visual token, -1 for text.
        attention_mask: (B, L) bool, False at padding, for padded layouts (else None); the
            positions then count real tokens only, so each clip sees the positions it would alone.
    """

    embeds: torch.Tensor
    position_ids: torch.Tensor
    token_kind: torch.Tensor
    frame_index: torch.Tensor
    attention_mask: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return self.embeds.shape[1]


def load_hf_causal_lm(name_or_path: str, **kwargs) -> nn.Module:
    """Load a ``transformers`` causal LM (``AutoModelForCausalLM.from_pretrained``).

    ``transformers`` is optional and imported here, not at module import time.
    """
    try:
        import transformers
    except ImportError as err:
        raise RuntimeError(
            "load_hf_causal_lm needs the optional dependency 'transformers' (pip install transformers); "
            "without it use codecprim.models.SmallLM"
        ) from err
    return transformers.AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)


class VideoLLM(nn.Module):
    """Projector + interleaved codec stream + causal LM, with greedy decoding.

    Args:
        lm: a causal LM following the Hugging Face convention (``get_input_embeddings()``,
            ``forward(inputs_embeds=, position_ids=, past_key_values=, use_cache=)``
            returning ``.logits`` and ``.past_key_values``).
        config: wrapper settings; the LM width is read from the LM's input embedding.
    """

    def __init__(self, lm: nn.Module, config: VideoLLMConfig | None = None) -> None:
        super().__init__()
        if not callable(getattr(lm, "get_input_embeddings", None)):
            raise ValueError(
                f"lm must be a causal LM with get_input_embeddings() (a transformers *ForCausalLM or "
                f"codecprim.models.SmallLM), got {type(lm).__name__}"
            )
        self.config = cfg = config or VideoLLMConfig()
        self.lm = lm
        lm_dim = lm.get_input_embeddings().embedding_dim
        self.rgb_projector = Projector(ProjectorConfig(cfg.visual_dim, lm_dim, cfg.projector))
        self.delta_projector = (
            self.rgb_projector
            if cfg.delta_dim is None
            else Projector(ProjectorConfig(cfg.delta_dim, lm_dim, cfg.projector))
        )
        # Models differ in how they spell "only compute the last logits"; computing all of
        # them for a 10k-token prefill would cost as much as several decoder layers.
        params = inspect.signature(lm.forward).parameters
        self._keep_kw = next((n for n in ("logits_to_keep", "num_logits_to_keep") if n in params), None)

    # ------------------------------------------------------------------ stream
    def _embed_text(self, ids: torch.Tensor, batch: int, dtype: torch.dtype) -> torch.Tensor:
        if ids.dim() == 1:
            ids = ids[None].expand(batch, -1)  # (B, T)
        if ids.dim() != 2 or ids.shape[0] != batch:
            raise ValueError(f"token ids must be (T,) or (B={batch}, T), got {tuple(ids.shape)}")
        return self.lm.get_input_embeddings()(ids).to(dtype)

    def build_stream(
        self,
        codec: CodecTokens,
        prompt_ids: torch.Tensor,
        prefix_ids: torch.Tensor | None = None,
    ) -> InterleavedStream:
        """Project and interleave visual tokens with the text.

        Layout (``prompt_position="last"``): ``prefix, visual segments in display order,
        prompt``; with ``"first"``: ``prefix, prompt, visual segments``. Inside a visual
        segment the encoder's token order is kept.
        """
        batch = codec.batch_size
        dtype = self.lm.get_input_embeddings().weight.dtype
        kf = self.rgb_projector(codec.keyframe_tokens).to(dtype)  # (B, K, M, d)
        dl = None if codec.delta_tokens is None else self.delta_projector(codec.delta_tokens).to(dtype)  # (B, P, N, d)

        pieces: list[torch.Tensor] = []
        kinds: list[torch.Tensor] = []
        frames: list[torch.Tensor] = []
        real: list[torch.Tensor] = []
        everyone = torch.ones(batch, dtype=torch.bool, device=kf.device)
        masks = {KEYFRAME: codec.keyframe_mask, DELTA: codec.delta_mask}

        def add(piece: torch.Tensor, kind: int, frame: int, present: torch.Tensor = everyone) -> None:
            pieces.append(piece)
            kinds.append(torch.full((piece.shape[1],), kind, dtype=torch.int8))
            frames.append(torch.full((piece.shape[1],), frame, dtype=torch.long))
            real.append(present.to(kf.device)[:, None].expand(batch, piece.shape[1]))  # (B, n)

        def add_visual() -> None:
            for t, kind, slot in codec.time_order():
                mask = masks[kind]
                add((kf if kind == KEYFRAME else dl)[:, slot], kind, t, everyone if mask is None else mask[:, slot])

        if prefix_ids is not None:
            add(self._embed_text(prefix_ids, batch, dtype), TEXT, -1)
        prompt = self._embed_text(prompt_ids, batch, dtype)
        if self.config.prompt_position == "last":
            add_visual()
            add(prompt, TEXT, -1)
        else:
            add(prompt, TEXT, -1)
            add_visual()

        embeds = torch.cat(pieces, dim=1)  # (B, L, d)
        device = embeds.device
        attention_mask = torch.cat(real, dim=1).to(device) if codec.padded else None  # (B, L)
        if attention_mask is None:
            positions = torch.arange(embeds.shape[1], device=device)[None].expand(batch, -1)  # (B, L)
        else:
            positions = (attention_mask.long().cumsum(1) - 1).clamp(min=0)  # (B, L)
        return InterleavedStream(
            embeds=embeds,
            position_ids=positions,
            token_kind=torch.cat(kinds).to(device),
            frame_index=torch.cat(frames).to(device),
            attention_mask=attention_mask,
        )

    # ------------------------------------------------------------------ LM calls
    def _lm_call(self, embeds, position_ids, cache, use_cache: bool, last_only: bool, attention_mask=None):
        kwargs = dict(inputs_embeds=embeds, position_ids=position_ids, use_cache=use_cache)
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask.long()  # the Hugging Face convention: 1 real, 0 padding
        if cache is not None:
            kwargs["past_key_values"] = cache
        if last_only and self._keep_kw is not None:
            kwargs[self._keep_kw] = 1
        out = self.lm(**kwargs)
        return out.logits, (out.past_key_values if use_cache else None)

    def forward(self, codec: CodecTokens, prompt_ids: torch.Tensor, prefix_ids: torch.Tensor | None = None):
        """Logits (B, L, vocab) over the whole stream (for training), and the stream."""
        stream = self.build_stream(codec, prompt_ids, prefix_ids)
        logits, _ = self._lm_call(stream.embeds, stream.position_ids, None, use_cache=False, last_only=False,
                                  attention_mask=stream.attention_mask)
        return logits, stream

    @torch.no_grad()
    def prefill(self, codec: CodecTokens, prompt_ids: torch.Tensor, prefix_ids: torch.Tensor | None = None):
        """Run the prompt once and pick the first answer token greedily.

        Returns ``(first_token (B,), cache, stream_length)``; the time spent here (plus
        the visual encoders upstream) is the time-to-first-token.
        """
        if codec.padded:
            raise ValueError("padded CodecTokens (masks) are for training forward passes; decode one layout at a time")
        stream = self.build_stream(codec, prompt_ids, prefix_ids)
        logits, cache = self._lm_call(stream.embeds, stream.position_ids, None, use_cache=True, last_only=True)
        return logits[:, -1].argmax(-1), cache, stream.length

    @torch.no_grad()
    def generate(
        self,
        codec: CodecTokens,
        prompt_ids: torch.Tensor,
        prefix_ids: torch.Tensor | None = None,
        max_new_tokens: int = 32,
        eos_token_id: int | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Greedy decoding. Returns (B, T) new token ids, T <= ``max_new_tokens``.

        With ``use_cache=False`` every step re-runs the full sequence: quadratic, kept as
        the reference that the cached path must reproduce. After a sample emits
        ``eos_token_id`` it is padded with it; decoding stops when all samples are done.
        """
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if codec.padded:
            raise ValueError("padded CodecTokens (masks) are for training forward passes; decode one layout at a time")
        embed = self.lm.get_input_embeddings()
        if use_cache:
            token, cache, length = self.prefill(codec, prompt_ids, prefix_ids)
        else:
            stream = self.build_stream(codec, prompt_ids, prefix_ids)
            seq, positions = stream.embeds, stream.position_ids
            logits, _ = self._lm_call(seq, positions, None, use_cache=False, last_only=True)
            token = logits[:, -1].argmax(-1)
        batch = token.shape[0]
        done = torch.zeros(batch, dtype=torch.bool, device=token.device)
        out = []
        for step in range(max_new_tokens):
            if eos_token_id is not None:
                token = torch.where(done, torch.full_like(token, eos_token_id), token)
                done |= token == eos_token_id
            out.append(token)
            if step == max_new_tokens - 1 or bool(done.all()):
                break
            new = embed(token[:, None]).to(embed.weight.dtype)  # (B, 1, d)
            if use_cache:
                pos = torch.full((batch, 1), length + step, dtype=torch.long, device=token.device)
                logits, cache = self._lm_call(new, pos, cache, use_cache=True, last_only=True)
            else:
                seq = torch.cat((seq, new), dim=1)  # (B, L+step+1, d)
                positions = torch.arange(seq.shape[1], device=seq.device)[None].expand(batch, -1)  # (B, L')
                logits, _ = self._lm_call(seq, positions, None, use_cache=False, last_only=True)
            token = logits[:, -1].argmax(-1)
        return torch.stack(out, dim=1)
