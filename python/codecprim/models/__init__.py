"""Neural models over codec primitives. Models take tensors; they never open videos.

Data flows csrc -> reader -> ops -> data -> the user's loop -> models.
"""

# Δ-encoder (CoPE-VideoLM Sec. 3.2), its pre-training (Eq. 9-12) and the frozen image encoder.
from ..patchify import patchify
from .delta_encoder import DeltaEncoder, DeltaEncoderConfig, DeltaTokens, minmax_normalize
from .delta_pretrain import (
    DeltaPretrainConfig,
    DeltaPretrainer,
    load_checkpoint,
    load_delta_encoder,
    patchwise_mse,
    save_checkpoint,
)
from .efficientnet_lite import EfficientNetLite0, EfficientNetLite0Tokens, load_efficientnet_lite0
from .resnet_trunk import ResNet18Trunk

# Codec ViT with 3D RoPE and cluster discrimination (OneVision-Encoder).
from .cluster_disc import ClusterDiscConfig, ClusterDiscriminationLoss, shard_range
from .codec_vit import CODEC_VIT_PRESETS, CodecViT, CodecViTBlock, CodecViTConfig

# The LLM side of CoPE-VideoLM: projector, interleaved stream, built-in small decoder.
from .projector import Projector, ProjectorConfig
from .small_lm import KVCache, LMOutput, SmallLM, SmallLMConfig
from .video_llm import CodecTokens, InterleavedStream, VideoLLM, VideoLLMConfig, load_hf_causal_lm

__all__ = [
    "CODEC_VIT_PRESETS",
    "ClusterDiscConfig",
    "ClusterDiscriminationLoss",
    "CodecTokens",
    "CodecViT",
    "CodecViTBlock",
    "CodecViTConfig",
    "DeltaEncoder",
    "DeltaEncoderConfig",
    "DeltaPretrainConfig",
    "DeltaPretrainer",
    "DeltaTokens",
    "EfficientNetLite0",
    "EfficientNetLite0Tokens",
    "InterleavedStream",
    "KVCache",
    "LMOutput",
    "Projector",
    "ProjectorConfig",
    "ResNet18Trunk",
    "SmallLM",
    "SmallLMConfig",
    "VideoLLM",
    "VideoLLMConfig",
    "load_checkpoint",
    "load_delta_encoder",
    "load_efficientnet_lite0",
    "load_hf_causal_lm",
    "minmax_normalize",
    "patchify",
    "patchwise_mse",
    "save_checkpoint",
    "shard_range",
]
