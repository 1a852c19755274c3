"""Δ-encoder pre-training: predict frame t's image tokens from frame t-1's and the Δ-tokens.

CoPE-VideoLM Sec. 3.2 / Supp. D (Eq. 9-12), as implemented here. With X_{t-1} the frozen
image encoder's tokens of the reference frame (P patches, width c), τ the K_τ motion tokens and
δ the K_δ residual tokens of P-frame t:

* (9)  reference transformer: ``Z = T_ref([X_{t-1} W_in + pos ; τ W_Δ])[:P]`` -- the previous
  frame's patches attend to the motion tokens (where did content move?);
* (10) warped transformer:    ``Z' = T_warp([Z ; δ W_Δ])[:P]`` -- the warped patches attend to
  the residual tokens (what did motion compensation miss?);
* (11) prediction:            ``X̂_t = X_{t-1} + σ ⊙ (Z' W_out)`` (σ: per-channel token std);
* (12) patch-wise MSE:        ``L = 1/(P c) Σ_p ||X̂_t,p - X_t,p||²`` against the frozen
  encoder's tokens of frame t.

Five choices are ours, not the paper's:

* ``warp_radius`` (issue 14): the skip term of (11) is X_{t-1} resampled per patch, ``X̂_t = mix(X_{t-1}, Z W_warp)
  + σ ⊙ (Z' W_out)``, where :func:`mix_neighbours` adds to each token a weighted sum of its (2r+1)² neighbours'
  differences from it and the weights are read, per patch, from the reference transformer's output Z (which has
  attended to the motion tokens). A camera pan or a moving object moves content between patch positions; a
  sub-patch move is an interpolation between neighbours. The plain transformers could express that only by
  learning motion-dependent attention between patch positions, and at the scale we could train they learned a
  fixed blur instead: real and blinded runs tied (0.898x vs 0.903x copy-previous, README "Evidence"). With the
  resampling the Δ-tokens only have to say which way and how far, per patch.
* ``delta_conditioning`` adds a linear map of the mean Δ-token to every image token before Eq. 9, so a patch's
  first-layer attention query (and the warp weights) can depend on the motion.
* the skip connection in (11) with ``W_out`` (and ``W_warp``) zero-initialised, so training starts exactly at the
  copy-previous-frame baseline and every step has to earn its improvement over it (``predict_delta=False`` drops
  it);
* the linear maps ``W_in``/``W_Δ``/``W_out`` that let the image width c (112 for EfficientNet-Lite0, 1152 for
  SigLIP) differ from the heads' width;
* per-channel standardisation of the image tokens inside the heads (statistics from the training set, stored as
  buffers).

Only the Δ-encoder is kept for the video LM; the two transformers are pre-training scaffolding.
Checkpoints are safetensors files whose metadata carries both configs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from .delta_encoder import DeltaEncoder, DeltaEncoderConfig, DeltaTokens, check_transformer_fields
from .layers.query_pool import sincos_2d
from .layers.transformer import Transformer

__all__ = [
    "DeltaPretrainConfig",
    "DeltaPretrainer",
    "load_checkpoint",
    "load_delta_encoder",
    "mix_neighbours",
    "patchwise_mse",
    "save_checkpoint",
]

_FORMAT = "codecprim.delta_pretrain/1"
_REDUCTIONS = ("mean", "none")


@dataclass(frozen=True)
class DeltaPretrainConfig:
    """Shape of the two pre-training transformers (defaults mirror the Δ-encoder's)."""

    image_dim: int = 1152     # c, width of the frozen image encoder's tokens (SigLIP: 1152)
    width: int = 1152         # width of the reference / warped transformers
    depth: int = 4            # blocks in each of the two transformers
    heads: int = 9
    mlp_ratio: float = 4.0
    norm: str = "layernorm"
    predict_delta: bool = True  # X̂_t = X_{t-1} + f(...) with f zero at init
    # Each image token also gets the mean of the Δ-tokens (a linear map of them) added before the reference
    # transformer, so its first attention layer already knows the motion ("ours": see the module docstring).
    delta_conditioning: bool = True
    # The skip term of Eq. 11 is X_{t-1} resampled per patch over its (2r+1)^2 neighbourhood, with mixing weights
    # read from the reference transformer's output ("ours"; 0: the paper's plain X_{t-1}). Needs the token grid.
    warp_radius: int = 1

    def __post_init__(self) -> None:
        check_transformer_fields(self, ("image_dim", "width", "depth", "heads"))
        if isinstance(self.warp_radius, bool) or not isinstance(self.warp_radius, int) or self.warp_radius < 0:
            raise ValueError(f"warp_radius must be a non-negative int, got {self.warp_radius!r}")
        if self.warp_radius and not self.predict_delta:
            raise ValueError("warp_radius > 0 resamples the skip term of predict_delta=True; set warp_radius=0")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "DeltaPretrainConfig":
        fields = json.loads(text)
        fields.setdefault("warp_radius", 0)  # checkpoints written before the field existed have no warp weights
        return cls(**fields)


def mix_neighbours(tokens: torch.Tensor, weights: torch.Tensor, grid: tuple[int, int], radius: int) -> torch.Tensor:
    """Resample (B, P, c) tokens on a row-major (h, w) grid: token p plus Σ_k weights[p, k] (neighbour_k - token p)
    over the (2r+1)^2 neighbourhood (row-major offsets, the centre included; past the edge the edge repeats).

    Zero weights return ``tokens``; one-hot weights move token p's neighbour k onto p; fractional ones interpolate
    between neighbours, as a sub-patch shift does.
    """
    b, n, c = tokens.shape
    h, w = grid
    k = 2 * radius + 1
    if h * w != n or weights.shape != (b, n, k * k):
        raise ValueError(f"grid {grid} and weights {tuple(weights.shape)} do not fit tokens {tuple(tokens.shape)} "
                         f"with radius {radius}")
    x = tokens.transpose(1, 2).reshape(b, c, h, w)  # (B, c, h, w)
    near = F.unfold(F.pad(x, (radius,) * 4, mode="replicate"), k).reshape(b, c, k * k, n)  # (B, c, K, P)
    near = near - tokens.transpose(1, 2)[:, :, None]  # (B, c, K, P): neighbour minus centre
    return tokens + torch.einsum("bckp,bpk->bpc", near, weights)  # (B, P, c)


def patchwise_mse(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Eq. 12: squared error per patch averaged over channels; (B, P, c) pair -> scalar or (B, P)."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    per_patch = (pred - target).pow(2).mean(dim=-1)  # (B, P)
    return per_patch.mean() if reduction == "mean" else per_patch


class DeltaPretrainer(nn.Module):
    """Δ-encoder plus the reference and warped transformers of Eq. 9-11.

    Args:
        encoder: the :class:`DeltaEncoder` being pre-trained (or its config).
        config: transformer shapes; ``config.image_dim`` must match the image encoder.
    """

    def __init__(
        self,
        encoder: Union[DeltaEncoder, DeltaEncoderConfig, None] = None,
        config: Optional[DeltaPretrainConfig] = None,
    ) -> None:
        super().__init__()
        if not isinstance(encoder, DeltaEncoder):
            encoder = DeltaEncoder(encoder)
        self.encoder = encoder
        self.config = cfg = config if config is not None else DeltaPretrainConfig()
        d = encoder.config.out_dim
        self.image_in = nn.Linear(cfg.image_dim, cfg.width)
        self.delta_in = nn.Identity() if d == cfg.width else nn.Linear(d, cfg.width)
        kw = dict(depth=cfg.depth, heads=cfg.heads, mlp_ratio=cfg.mlp_ratio, norm=cfg.norm)
        self.reference = Transformer(cfg.width, **kw)
        self.warped = Transformer(cfg.width, **kw)
        self.condition = nn.Linear(cfg.width, cfg.width) if cfg.delta_conditioning else None
        self.image_out = nn.Linear(cfg.width, cfg.image_dim)
        self.warp = nn.Linear(cfg.width, (2 * cfg.warp_radius + 1) ** 2) if cfg.warp_radius else None
        if self.warp is not None:  # zero mixing weights: the skip term starts as X_{t-1} itself
            nn.init.zeros_(self.warp.weight)
            nn.init.zeros_(self.warp.bias)
        if cfg.predict_delta:
            nn.init.zeros_(self.image_out.weight)
            nn.init.zeros_(self.image_out.bias)
        # Per-channel statistics of the image tokens (saved with the weights). The heads work
        # in standardised units, so a token space whose values are ~5 (EfficientNet) or ~0.1
        # trains with the same learning rate; the loss itself stays in the encoder's units.
        self.register_buffer("image_mean", torch.zeros(cfg.image_dim))
        self.register_buffer("image_std", torch.ones(cfg.image_dim))

    @torch.no_grad()
    def set_image_statistics(self, tokens: torch.Tensor) -> None:
        """Set the per-channel mean / std used to standardise image tokens from (..., c) samples."""
        if tokens.shape[-1] != self.config.image_dim:
            raise ValueError(f"tokens must end in image_dim={self.config.image_dim}, got {tuple(tokens.shape)}")
        flat = tokens.reshape(-1, tokens.shape[-1]).double()  # (samples, c)
        self.image_mean.copy_(flat.mean(0))
        self.image_std.copy_(flat.std(0, correction=0).clamp_min(1e-6))

    def predict(
        self, prev_tokens: torch.Tensor, delta: DeltaTokens, grid: Optional[tuple[int, int]] = None
    ) -> torch.Tensor:
        """Eq. 9-11 from already computed Δ-tokens: (B, P, c) -> predicted (B, P, c).

        ``grid`` = (h, w) of the image tokens (row-major, h*w = P) adds 2-D sine-cosine
        positions; without it the image tokens carry no position.
        """
        if prev_tokens.dim() != 3 or prev_tokens.shape[-1] != self.config.image_dim:
            raise ValueError(f"prev_tokens must be (B, P, {self.config.image_dim}), got {tuple(prev_tokens.shape)}")
        b, n, _ = prev_tokens.shape
        if self.warp is not None and grid is None:
            raise ValueError("warp_radius > 0 resamples the previous tokens on their grid: pass grid=(h, w)")
        x = self.image_in((prev_tokens - self.image_mean) / self.image_std)  # (B, P, width)
        if grid is not None:
            if grid[0] * grid[1] != n:
                raise ValueError(f"grid {grid} does not hold {n} tokens")
            x = x + sincos_2d(grid[0], grid[1], self.config.width, device=x.device, dtype=x.dtype)
        motion = self.delta_in(delta.motion)  # (B, K_τ, width)
        residual = self.delta_in(delta.residual)  # (B, K_δ, width)
        if self.condition is not None:
            x = x + self.condition(torch.cat([motion, residual], dim=1).mean(1, keepdim=True))  # (B, P, width)
        z = self.reference(torch.cat([x, motion], dim=1))[:, :n]  # (B, P, width)
        skip = prev_tokens if self.warp is None else mix_neighbours(prev_tokens, self.warp(z), grid,
                                                                     self.config.warp_radius)  # (B, P, c)
        z = self.warped(torch.cat([z, residual], dim=1))[:, :n]  # (B, P, width)
        out = self.image_out(z) * self.image_std  # (B, P, c), back in the encoder's units
        return skip + out if self.config.predict_delta else out + self.image_mean

    def forward(
        self,
        motion: torch.Tensor,
        residual: torch.Tensor,
        prev_tokens: torch.Tensor,
        grid: Optional[tuple[int, int]] = None,
    ) -> torch.Tensor:
        """Encode (B, H, W, 2) motion and (B, H, W) residual, then predict frame t's (B, P, c) tokens."""
        return self.predict(prev_tokens, self.encoder(motion, residual), grid=grid)


def save_checkpoint(path: Union[str, os.PathLike], model: DeltaPretrainer,
                    metadata: Optional[dict[str, str]] = None) -> None:
    """Write the pre-trainer's weights (Δ-encoder included) and both configs to a safetensors file."""
    from safetensors.torch import save_file

    meta = dict(metadata or {})
    meta.update({
        "format": _FORMAT,
        "delta_encoder_config": model.encoder.config.to_json(),
        "pretrain_config": model.config.to_json(),
    })
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, os.fspath(path), metadata=meta)


def _read(path: Union[str, os.PathLike]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    with safe_open(os.fspath(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{os.fspath(path)} is not a Δ-encoder pre-training checkpoint "
                             f"(format {meta.get('format')!r}, expected {_FORMAT!r})")
        state = {k: f.get_tensor(k) for k in f.keys()}
    return state, meta


def load_checkpoint(path: Union[str, os.PathLike]) -> DeltaPretrainer:
    """Rebuild a :class:`DeltaPretrainer` from :func:`save_checkpoint` output (strict load)."""
    state, meta = _read(path)
    model = DeltaPretrainer(
        DeltaEncoderConfig.from_json(meta["delta_encoder_config"]),
        DeltaPretrainConfig.from_json(meta["pretrain_config"]),
    )
    model.load_state_dict(state, strict=True)
    return model


def load_delta_encoder(path: Union[str, os.PathLike]) -> DeltaEncoder:
    """Just the pre-trained :class:`DeltaEncoder` from a pre-training checkpoint (strict load)."""
    state, meta = _read(path)
    encoder = DeltaEncoder(DeltaEncoderConfig.from_json(meta["delta_encoder_config"]))
    prefix = "encoder."
    encoder.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)
    return encoder
