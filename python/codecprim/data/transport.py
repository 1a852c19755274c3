"""How samples and batches cross from DataLoader workers to the main process.

torch sends every CPU tensor of a worker's result through a shared-memory file of its own: the worker creates the
file, and the main process fetches its descriptor over a new connection to the worker's resource sharer, then maps
it. For a batch's dozen small tensors (positions, indices, masks, per-frame metadata) that handshake costs far more
than their bytes. cProfile of the main process over 2 workers (bikes, one clip per PackedBatch): 12 socket connects
per batch, 92 % of the ~4 ms of CPU it spent receiving each batch, on a core the workers need.

So the types below are registered with multiprocessing's ``ForkingPickler``, the pickler of DataLoader's queues
(plain ``pickle`` and ``torch.save`` are unaffected): their CPU tensors of at most :data:`INLINE_BYTES` travel inline
in the message as numpy arrays and come back as tensors of the same dtype, shape and values; larger ones (the patch
pixels, keyframes, motion fields) keep torch's shared memory.
"""

from __future__ import annotations

from multiprocessing.reduction import ForkingPickler

import torch

from ..patches import CodecClip
from .canvases import Canvases
from .collate import PackedBatch, PaddedBatch
from .cope import CopeSample
from .cope_batch import CopeBatch
from .delta_pairs import DeltaPair, DeltaPairBatch

__all__ = ["INLINE_BYTES", "TRANSPORTED"]

INLINE_BYTES = 1 << 20

# dtypes numpy holds exactly (bfloat16 and the like keep torch's own path)
_NUMPY_DTYPES = {torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.float16,
                 torch.float32, torch.float64, torch.complex64, torch.complex128}

TRANSPORTED = (CodecClip, PackedBatch, PaddedBatch, CopeSample, CopeBatch, DeltaPair, DeltaPairBatch, Canvases)


def _inline(value) -> bool:
    return (type(value) is torch.Tensor and value.device.type == "cpu" and value.layout == torch.strided
            and not value.requires_grad and not value.is_conj() and not value.is_neg()
            and value.dtype in _NUMPY_DTYPES and value.nbytes <= INLINE_BYTES)


def _reduce(obj):
    state = dict(vars(obj))
    inline = {name: value.numpy() for name, value in state.items() if _inline(value)}
    for name in inline:
        del state[name]
    return _rebuild, (type(obj), state, inline)


def _rebuild(cls, state: dict, inline: dict):
    obj = object.__new__(cls)  # as pickle itself does: no __init__, fields restored as they were
    obj.__dict__.update(state)
    obj.__dict__.update({name: torch.from_numpy(array) for name, array in inline.items()})
    return obj


for _cls in TRANSPORTED:
    ForkingPickler.register(_cls, _reduce)
