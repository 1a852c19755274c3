"""Reusable model layers (attention blocks, pooling, position embeddings).

Each module is one concept; models in ``codecprim.models`` are built from them.
"""

from .attention import (
    MultiHeadAttention,
    PackedSequences,
    attend,
    block_diagonal_mask,
    packed_to_padded,
    padded_to_packed,
    reference_attention,
    varlen_attention,
)
from .attentive_pool import AttentivePool
from .query_pool import QueryPool, sincos_2d
from .rmsnorm import RMSNorm
from .rope import RotaryEmbedding, apply_rotary, rotate_half
from .rope3d import Rope3D, axis_pairs, grid_positions, image_positions
from .swiglu import SwiGLU
from .transformer import Mlp, Transformer, TransformerBlock, make_norm

__all__ = [
    "AttentivePool",
    "Mlp",
    "MultiHeadAttention",
    "PackedSequences",
    "QueryPool",
    "RMSNorm",
    "Rope3D",
    "RotaryEmbedding",
    "SwiGLU",
    "Transformer",
    "TransformerBlock",
    "apply_rotary",
    "attend",
    "axis_pairs",
    "block_diagonal_mask",
    "grid_positions",
    "image_positions",
    "make_norm",
    "packed_to_padded",
    "padded_to_packed",
    "reference_attention",
    "rotate_half",
    "sincos_2d",
    "varlen_attention",
]
