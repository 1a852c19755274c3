"""The CoPE recipe on codecs that export no vectors (HEVC, VP9, AV1): fields by block matching.

The oracle is a known translation: a static blurred-noise picture seen through a crop window that moves 4 px right
and 2 px down every frame, so every frame's content moves by (-4, -2) px against the one before, and a field at
``delta_size`` has the same vector in every pixel. The exported H.264 vectors of the same pictures are the second
oracle, and the unwarped reference (a zero field) says how much the residual owes to the motion.
"""

from __future__ import annotations

import pytest
import torch

import codecprim
from codecprim.data import CopeDataset, cope_sample
from codecprim.ops.fusion import fused_residual
from codecprim.ops.resize import resize_plane

SIZE = 160  # delta_size: 320 x 240 -> 160 x 160, so a frame's (4, 2) px step is (2, 4/3) at delta size
STEP = torch.tensor([2.0, 2.0 * 160 / 240])


@pytest.fixture(scope="module")
def pans(media):
    """The known-translation clips of tests/media.py (pan_noise_*), by codec."""
    return {codec: str(media[f"pan_noise_{codec}"]) for codec in ("h264", "hevc", "vp9", "av1")}


def per_frame_step(sample) -> torch.Tensor:
    """Each group's median field divided by the frames it spans (B-frames skipped make steps of several)."""
    spans = (sample.delta_last_indices - sample.delta_reference_indices).to(torch.float32)
    medians = sample.motion.reshape(len(sample.motion), -1, 2).median(dim=1).values
    return medians / spans[:, None]


def zero_motion_residual(path: str, sample) -> float:
    """Mean |residual| the groups would have with no motion: the reference luma unwarped."""
    with codecprim.open(path, residuals=False, pixels=True) as reader:
        total = 0.0
        for last, ref in zip(sample.delta_last_indices.tolist(), sample.delta_reference_indices.tolist()):
            cur, prev = (resize_plane(f.luma, SIZE) for f in reader.frames_at([last, ref]))
            zero = torch.zeros(SIZE, SIZE, 2)
            total += fused_residual(cur, prev, zero).float().abs().mean().item()
    return total / len(sample.delta_last_indices)


@pytest.mark.parametrize("codec", ["hevc", "vp9", "av1"])
def test_codecs_without_vectors_get_the_known_translation(pans, codec):
    path = pans[codec]
    with codecprim.open(path, residuals=False) as reader:
        assert reader.info.motion_vectors == "none"
        types = reader.pict_types
    sample = cope_sample(path, fuse=2, image_size=64, delta_size=SIZE)
    assert sample.motion_source == "estimated" and len(sample.motion) >= 3
    # The layout is the one the frame types give: deltas end on P-frames, after their reference.
    assert all(types[i] == "P" for i in sample.delta_last_indices.tolist())
    assert bool((sample.delta_reference_indices < sample.delta_indices).all())
    assert all(types[i] == "I" for i in sample.keyframe_indices.tolist())
    # Content moves by (-4, -2) px a frame; the field points back into the reference: (+2, +4/3) at delta size.
    steps = per_frame_step(sample)
    assert torch.allclose(steps, STEP.expand_as(steps), atol=0.25), steps
    assert sample.residual.float().abs().mean().item() < 0.5 * zero_motion_residual(path, sample)


def test_estimated_fields_agree_with_the_codecs_own_vectors(pans):
    path = pans["h264"]
    exported = cope_sample(path, fuse=2, image_size=64, delta_size=SIZE)
    estimated = cope_sample(path, fuse=2, image_size=64, delta_size=SIZE, motion="estimated")
    assert (exported.motion_source, estimated.motion_source) == ("exported", "estimated")
    assert torch.equal(exported.delta_indices, estimated.delta_indices)
    assert torch.equal(exported.keyframes, estimated.keyframes)  # only the deltas' motion differs
    error = (exported.motion - estimated.motion).norm(dim=-1).median().item()
    assert error <= 0.25, error  # quarter-pel at delta size: 2.5 against the exact 2.67 rows
    assert torch.allclose(per_frame_step(exported), STEP.expand(len(exported.motion), 2), atol=0.05)


def test_dataset_passes_the_motion_choice_on(pans):
    path = pans["h264"]
    item = CopeDataset([path], fuse=2, image_size=64, delta_size=SIZE, motion="estimated", seed=0)[0]
    again = cope_sample(path, fuse=2, image_size=64, delta_size=SIZE, motion="estimated",
                        seed=CopeDataset([path], seed=0).sample_seed(0))
    assert item.motion_source == "estimated" and torch.equal(item.motion, again.motion)
