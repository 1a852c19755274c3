"""The OneVision-Encoder recipe's dataset: item ``i`` is :func:`codecprim.codec_patches` of ``paths[i]``.

The per-video function is ``codec_patches`` itself; the dataset adds only the item's seed, so
``dataset[i]`` equals ``codec_patches(paths[i], **dataset.options, seed=dataset.sample_seed(i))`` in the
main process and in any DataLoader worker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..patches import CodecClip, CodecPatchesConfig, codec_patches
from .dataset import VideoDataset

__all__ = ["CodecClipDataset"]


class CodecClipDataset(VideoDataset):
    """Map-style dataset of :class:`~codecprim.patches.CodecClip` items (or :class:`Failure` for a video
    that cannot be read, with ``on_error="skip"``). Batch it with :func:`collate_packed` or
    :func:`collate_padded`.

    Every keyword but ``seed`` and ``on_error`` is passed to :func:`codecprim.codec_patches` (see it for their
    meaning). With ``sampling="consecutive"`` and no ``start_seconds`` each item draws its window at random
    from its seed, so every epoch (:meth:`set_epoch`) sees another part of each video.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], *, num_frames: int = 64, size: int = 224,
                 patch: int = 14, budget: int | None = 2048, sampling: str = "consecutive", seed: int = 0,
                 on_error: str = "skip", camera: str = "similarity", ratio: float | None = None,
                 config: CodecPatchesConfig | None = None, start_seconds: float | None = None,
                 video_start: float | None = None, video_end: float | None = None, fps: float | None = None,
                 max_frames: int | None = None, min_pixels: int | None = None, max_pixels: int | None = None,
                 modes: str | Mapping[str, float] = "codec") -> None:
        super().__init__(paths, seed=seed, on_error=on_error)
        self.options: dict[str, Any] = dict(
            num_frames=num_frames, size=size, patch=patch, budget=budget, sampling=sampling, camera=camera,
            ratio=ratio, config=config, start_seconds=start_seconds, video_start=video_start, video_end=video_end,
            fps=fps, max_frames=max_frames, min_pixels=min_pixels, max_pixels=max_pixels,
            modes=dict(modes) if isinstance(modes, Mapping) else modes)
        # Bad arguments fail here, in the main process, not once per item in the workers.
        _check_options(self.options)

    def load(self, index: int, path: str) -> CodecClip:
        return codec_patches(path, seed=self.sample_seed(index), **self.options)


def _check_options(options: dict[str, Any]) -> None:
    from ..patches import _check_arguments

    _check_arguments(**options)
