"""Data loading for VideoLM training: datasets over compressed videos, their samplers and collate functions.

* :mod:`~codecprim.data.sampling`: which frames (consecutive / uniform / fps), read through ``frames_at``.
* :class:`~codecprim.data.dataset.VideoDataset`: sources, seed, ``set_epoch`` and the ``on_error`` policy.
* :class:`CodecClipDataset`: the OneVision-Encoder recipe (:func:`codecprim.codec_patches` per video).
* :func:`collate_packed` / :func:`collate_padded`: batches that list the videos that failed.
* :func:`pack_canvases`: a clip laid out as LLaVA-OneVision-2 codec canvases.
* :class:`CopeDataset` / :func:`cope_sample` / :func:`collate_cope`: the CoPE-VideoLM recipe (keyframes and
  fused P-frame deltas).
* :class:`DeltaPairs`: the Δ-encoder's pre-training pairs, decoded per item.
* :mod:`~codecprim.data.sources`: where video lists come from.
* :func:`write_shards` / :func:`shard_index`: a corpus prepared once as resumable WebDataset shards.
* :class:`ShardDataset`: those shards as an IterableDataset (workers, ranks, epochs, mid-epoch resume).
* :func:`motion_stats`: the per-video motion statistic of the shard index.
* :mod:`~codecprim.data.transport`: samples and batches leave DataLoader workers with their small tensors inline
  (registered on import).
* :func:`~codecprim.data.fork_safety.collect_before_fork`: forked workers do not inherit decoders left in
  reference cycles (registered on import).
"""

from .fork_safety import collect_before_fork
from .failures import Failure
from .sampling import SAMPLING_MODES, FrameSample, plan_frames, read_frames, sample_frames
from .resolution import fit_pixels
from .dataset import VideoDataset
from .collate import PackedBatch, PaddedBatch, collate_packed, collate_padded
from .clips import CodecClipDataset
from .canvases import Canvases, pack_canvases
from .cope import CopeDataset, CopeSample, cope_sample
from .cope_batch import CopeBatch, collate_cope
from .delta_pairs import DeltaPair, DeltaPairBatch, DeltaPairs, collate_delta_pairs
from .motion_stats import MotionStats, motion_stats
from .shards import IndexRow, WriteSummary, shard_index, write_shards
from .shard_dataset import ShardDataset
from . import sources, transport

collect_before_fork()

__all__ = [
    "SAMPLING_MODES",
    "Canvases",
    "CodecClipDataset",
    "CopeBatch",
    "CopeDataset",
    "CopeSample",
    "DeltaPair",
    "DeltaPairBatch",
    "DeltaPairs",
    "Failure",
    "collect_before_fork",
    "FrameSample",
    "IndexRow",
    "MotionStats",
    "PackedBatch",
    "PaddedBatch",
    "ShardDataset",
    "VideoDataset",
    "collate_cope",
    "collate_delta_pairs",
    "collate_packed",
    "collate_padded",
    "cope_sample",
    "fit_pixels",
    "motion_stats",
    "pack_canvases",
    "plan_frames",
    "read_frames",
    "sample_frames",
    "shard_index",
    "sources",
    "WriteSummary",
    "write_shards",
]
