"""Codec ViT: the OneVision-Encoder backbone (Tang et al., 2026).

A plain pre-norm ViT (patch 14, LayerNorm, GELU MLP 4x, no class token, no absolute
position embedding) whose only notion of position is a shared 3-D RoPE over
``(t, row, col)``. Because nothing in the network depends on a fixed grid, one model
reads three kinds of input through the same weights:

* codec mode: the visible patches of a clip chosen by codec patchification, any number
  per clip, several clips packed into one ``(N_total, ...)`` sequence with
  ``cu_seqlens`` (positions come with the patches; ``t`` on the 64-frame virtual grid);
* chunk-wise mode: whole frames of uniformly sampled chunks (:meth:`CodecViT.forward_frames`);
* single-image mode: ``t = 0`` (:meth:`CodecViT.forward_images`).

An :class:`~.layers.attentive_pool.AttentivePool` head turns the tokens into the clip
embedding trained by cluster discrimination (:mod:`.cluster_disc`). Checkpoints are
safetensors files with the config in their metadata; no weights are ever downloaded.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..patchify import patchify
from .layers.attention import ATTENTION_IMPLS, VARLEN_MODES, MultiHeadAttention, PackedSequences
from .layers.attentive_pool import AttentivePool
from .layers.rope3d import AXIS_SPLIT, Rope3D, axis_pairs, grid_positions
from .layers.transformer import Mlp, _init_weights

__all__ = ["CODEC_VIT_PRESETS", "CodecViT", "CodecViTBlock", "CodecViTConfig"]

#: Paper-scale presets (ViT-B/L/H with patch 14) plus ``tiny``, a CPU smoke-test size that is
#: not from the paper (DeiT-Ti width, 4 blocks).
CODEC_VIT_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"width": 192, "depth": 4, "num_heads": 3},
    "base": {"width": 768, "depth": 12, "num_heads": 12},
    "large": {"width": 1024, "depth": 24, "num_heads": 16},
    "huge": {"width": 1280, "depth": 32, "num_heads": 16},
}

# CLIP's pixel statistics, the usual choice for ViT-L/14-style encoders.
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class CodecViTConfig:
    """Codec ViT hyper-parameters; the defaults are OneVision-Encoder-Large."""

    width: int = 1024
    depth: int = 24
    num_heads: int = 16
    patch_size: int = 14
    mlp_ratio: float = 4.0
    in_channels: int = 3
    norm_eps: float = 1e-6
    qkv_bias: bool = True
    rope_base: float = 10000.0
    rope_split: tuple[int, int, int] = AXIS_SPLIT   # T:H:W share of the head_dim/2 rotation pairs
    pixel_mean: tuple[float, ...] = _CLIP_MEAN      # applied to uint8 input only
    pixel_std: tuple[float, ...] = _CLIP_STD
    embed_dim: int | None = None                    # attentive-pool output width; None = width
    pool_heads: int | None = None                   # None = num_heads
    attention: str = "sdpa"                         # or "reference" (written-out softmax)
    varlen: str = "auto"                            # packed sequences: "auto", "mask", "loop" or "kernel"
    # RoPE on the values too (MultiHeadAttention(rope_values=True)); off = OneVision-Encoder. Plain RoPE lets
    # positions reach a token only through attention weights over contents, so classes told apart by where and
    # when the patches are (the direction of motion) must be read by matching textures across frames, which a
    # small ViT learns several times more slowly (bench/probe_capacity.py, README "Evidence").
    rope_values: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "rope_split", tuple(int(s) for s in self.rope_split))
        object.__setattr__(self, "pixel_mean", tuple(float(s) for s in self.pixel_mean))
        object.__setattr__(self, "pixel_std", tuple(float(s) for s in self.pixel_std))
        for name in ("width", "depth", "num_heads", "patch_size", "in_channels"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.width % self.num_heads:
            raise ValueError(f"num_heads must divide width: width={self.width}, num_heads={self.num_heads}")
        axis_pairs(self.width // self.num_heads, self.rope_split)  # raises ValueError if unsplittable
        if self.mlp_ratio <= 0 or self.norm_eps <= 0:
            raise ValueError(f"mlp_ratio and norm_eps must be > 0, got {self.mlp_ratio}, {self.norm_eps}")
        if len(self.pixel_mean) != self.in_channels or len(self.pixel_std) != self.in_channels:
            raise ValueError(f"pixel_mean/pixel_std need {self.in_channels} entries")
        if self.attention not in ATTENTION_IMPLS:
            raise ValueError(f"attention must be one of {ATTENTION_IMPLS}, got {self.attention!r}")
        if self.varlen not in VARLEN_MODES:
            raise ValueError(f"varlen must be one of {VARLEN_MODES}, got {self.varlen!r}")
        if self.embed_dim is not None and self.embed_dim <= 0:
            raise ValueError(f"embed_dim must be positive or None, got {self.embed_dim}")
        if self.pool_heads is not None and (self.pool_heads <= 0 or self.width % self.pool_heads):
            raise ValueError(f"pool_heads must divide width {self.width}, got {self.pool_heads}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "CodecViTConfig":
        """One of :data:`CODEC_VIT_PRESETS` (``tiny``, ``base``, ``large``, ``huge``), with overrides."""
        if name not in CODEC_VIT_PRESETS:
            raise ValueError(f"preset must be one of {tuple(CODEC_VIT_PRESETS)}, got {name!r}")
        return cls(**{**CODEC_VIT_PRESETS[name], **overrides})

    @property
    def head_dim(self) -> int:
        return self.width // self.num_heads

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "CodecViTConfig":
        return cls(**json.loads(text))


class CodecViTBlock(nn.Module):
    """Pre-norm block: ``x + attn(norm(x), rope)`` then ``x + mlp(norm(x))``."""

    def __init__(self, cfg: CodecViTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.attn = MultiHeadAttention(
            cfg.width, cfg.num_heads, qkv_bias=cfg.qkv_bias, impl=cfg.attention, varlen=cfg.varlen,
            rope_values=cfg.rope_values,
        )
        self.norm2 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.mlp = Mlp(cfg.width, int(round(cfg.width * cfg.mlp_ratio)))

    def forward(self, x, rope, *, cu_seqlens=None, valid=None):
        x = x + self.attn(self.norm1(x), rope, cu_seqlens=cu_seqlens, valid=valid)
        return x + self.mlp(self.norm2(x))


class CodecViT(nn.Module):
    """OneVision-Encoder-style ViT over patches with 3-D positions.

    ``forward(pixels, positions, *, cu_seqlens=None, valid=None)`` returns the final-norm
    tokens: packed ``pixels (N_total, C, p, p)`` / ``positions (N_total, 3)`` with
    ``cu_seqlens (B + 1,)`` give ``(N_total, width)``; padded ``(B, N, C, p, p)`` /
    ``(B, N, 3)`` with an optional ``valid (B, N)`` give ``(B, N, width)``. uint8 pixels
    are scaled to [0, 1] and normalised with ``pixel_mean/std``; float pixels are taken
    as already normalised. :meth:`pool` / :meth:`encode` add the attentive-pool embedding.
    """

    def __init__(self, config: CodecViTConfig | None = None) -> None:
        super().__init__()
        cfg = config or CodecViTConfig()
        self.config = cfg
        self.patch_embed = nn.Linear(cfg.in_channels * cfg.patch_size**2, cfg.width)
        self.norm_pre = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.rope = Rope3D(cfg.head_dim, base=cfg.rope_base, split=cfg.rope_split)
        self.blocks = nn.ModuleList(CodecViTBlock(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.head = AttentivePool(
            cfg.width, cfg.pool_heads or cfg.num_heads, out_dim=cfg.embed_dim, norm_eps=cfg.norm_eps, impl=cfg.attention
        )
        mean = torch.tensor(cfg.pixel_mean).reshape(-1, 1, 1)
        std = torch.tensor(cfg.pixel_std).reshape(-1, 1, 1)
        self.register_buffer("pixel_mean", mean, persistent=False)
        self.register_buffer("pixel_std", std, persistent=False)
        self.apply(_init_weights)

    @property
    def embed_dim(self) -> int:
        return self.head.out_dim

    def _embed(self, pixels: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if tuple(pixels.shape[-3:]) != (cfg.in_channels, cfg.patch_size, cfg.patch_size):
            raise ValueError(
                f"patches must end in (C, p, p) = {(cfg.in_channels, cfg.patch_size, cfg.patch_size)}, "
                f"got {tuple(pixels.shape)}"
            )
        dtype = self.patch_embed.weight.dtype
        if pixels.dtype == torch.uint8:
            pixels = (pixels.to(dtype) / 255.0 - self.pixel_mean.to(dtype)) / self.pixel_std.to(dtype)
        return self.norm_pre(self.patch_embed(pixels.to(dtype).flatten(-3)))  # (..., width)

    def forward(
        self,
        pixels: torch.Tensor,
        positions: torch.Tensor,
        *,
        cu_seqlens: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        lead = 1 if cu_seqlens is not None else 2
        if pixels.dim() != lead + 3 or tuple(positions.shape) != tuple(pixels.shape[:lead]) + (3,):
            layout = "(N_total, C, p, p) / (N_total, 3)" if lead == 1 else "(B, N, C, p, p) / (B, N, 3)"
            raise ValueError(
                f"pixels/positions must be {layout}, got {tuple(pixels.shape)} / {tuple(positions.shape)}"
            )
        if cu_seqlens is not None:
            cu_seqlens = PackedSequences.of(cu_seqlens, pixels.shape[0])  # the batch's one host sync
        elif valid is not None and (valid.shape != pixels.shape[:2] or not bool(valid.any(dim=1).all())):
            raise ValueError(f"valid must be a {tuple(pixels.shape[:2])} bool mask with a True in every row")
        x = self._embed(pixels)  # (N_total, width) or (B, N, width)
        rope = self.rope(positions, dtype=x.dtype)  # each (..., head_dim)
        for block in self.blocks:
            x = block(x, rope, cu_seqlens=cu_seqlens, valid=valid)
        return self.norm(x)

    def pool(self, tokens: torch.Tensor, *, cu_seqlens=None, valid=None) -> torch.Tensor:
        """Attentive-pool embedding ``(B, embed_dim)`` of :meth:`forward`'s tokens."""
        return self.head(tokens, cu_seqlens=cu_seqlens, valid=valid)

    def encode(self, pixels, positions, *, cu_seqlens=None, valid=None) -> torch.Tensor:
        """:meth:`forward` then :meth:`pool`: one embedding per clip, ``(B, embed_dim)``."""
        if cu_seqlens is not None:
            cu_seqlens = PackedSequences.of(cu_seqlens, pixels.shape[0])
        tokens = self(pixels, positions, cu_seqlens=cu_seqlens, valid=valid)
        return self.pool(tokens, cu_seqlens=cu_seqlens, valid=valid)

    def forward_images(self, images: torch.Tensor) -> torch.Tensor:
        """Single-image mode: ``(B, C, H, W)`` -> tokens ``(B, rows * cols, width)``, ``t = 0``."""
        if images.dim() != 4:
            raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}")
        return self.forward_frames(images[:, None], [0])

    def forward_frames(self, frames: torch.Tensor, times: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """Chunk-wise mode: ``(B, T, C, H, W)`` frames at virtual-grid slots ``times`` (T,)
        -> tokens ``(B, T * rows * cols, width)``, frame-major then row-major, on the centred grid of
        :func:`codecprim.patchify.patch_grid` (the pixels codec mode's patches come from)."""
        if frames.dim() != 5:
            raise ValueError(f"frames must be (B, T, C, H, W), got {tuple(frames.shape)}")
        if len(times) != frames.shape[1]:
            raise ValueError(f"need one time slot per frame: {frames.shape[1]} frames, {len(times)} times")
        patches = patchify(frames, self.config.patch_size, cuda_kernel=False)  # (B, T, rows, cols, C, p, p)
        b, _, rows, cols = patches.shape[:4]
        pixels = patches.flatten(1, 3)  # (B, T*rows*cols, C, p, p)
        positions = grid_positions(times, rows, cols, device=frames.device).expand(b, -1, -1)  # (B, T*rows*cols, 3)
        return self(pixels, positions)

    # -- checkpoints -------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write weights and config to a safetensors file."""
        from safetensors.torch import save_file

        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(path), metadata={"codecprim": "CodecViT", "config": self.config.to_json()})

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str | torch.device = "cpu") -> "CodecViT":
        """Rebuild a model from :meth:`save`'s file (strict: every tensor must match)."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("codecprim") != "CodecViT" or "config" not in meta:
            raise ValueError(f"{path} is not a CodecViT checkpoint (metadata: {sorted(meta)})")
        model = cls(CodecViTConfig.from_json(meta["config"]))
        model.load_state_dict(load_file(str(path), device=str(map_location)))
        return model
