"""Deliberate bugs for checking that the tests catch them: a pytest plugin, off unless asked for.

    CODECPRIM_MUTATION=<name> PYTHONPATH=python:tests python3 -m pytest -p mutations <tests named in MUTATIONS.md>

must fail for every <name> below; tests/MUTATIONS.md lists which tests catch which mutation, and
``python3 tests/run_mutations.py`` applies them all and prints whether each was caught.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch

_HERE = Path(__file__).resolve().parent


def _wrap_frames(patch, change):
    import codecprim.reader as reader

    original = reader._frame_from

    def mutated(raw):
        return change(original(raw))

    patch.setattr(reader, "_frame_from", mutated)


def _inter_mask(frame):
    sys.path.insert(0, str(_HERE / "core"))
    from residual_oracle import inter_mask

    h, w = frame.luma.shape
    return torch.from_numpy(inter_mask(frame.motion_vectors.numpy(), h, w))


def _h264_zero_residual(patch):
    def change(frame):
        if frame.residual is not None:
            frame.residual[_inter_mask(frame)] = 0
        return frame
    _wrap_frames(patch, change)


def _residual_plus_one(patch):
    def change(frame):
        if frame.residual is not None:
            frame.residual[:16, :16] += 1
        return frame
    _wrap_frames(patch, change)


def _swapped_vector_columns(patch):
    def change(frame):
        mv = frame.motion_vectors
        mv[:, [7, 8]] = mv[:, [8, 7]].clone()
        return frame
    _wrap_frames(patch, change)


def _saliency_view(patch, view):
    import codecprim.patches as patches

    original = patches.combine_saliency
    patch.setattr(patches, "combine_saliency", lambda *a, **k: view(original(*a, **k)).contiguous())


def _no_camera_compensation(patch):
    import codecprim.patches as patches

    original = patches.motion_energy_grid
    patch.setattr(patches, "motion_energy_grid", lambda *a, camera=None, **k: original(*a, camera="none", **k))


def _gop_always_iframe(patch):
    import dataclasses

    import codecprim.reader as reader

    original = reader.Gop
    patch.setattr(reader, "Gop", lambda **k: dataclasses.replace(original(**k), starts_with_iframe=True))


def _pyav_other_libavcodec(patch):
    import av

    patch.setattr(av, "library_versions", dict(av.library_versions, libavcodec=(58, 0, 0)))
    patch.setenv("CI", "true")


def _kernel_edit(file, old, new):
    def apply(patch):
        from codecprim import _cuda

        folder = Path(tempfile.mkdtemp(prefix="codecprim_mutant_"))
        for source in _cuda.cuda_dir().glob("*.cu"):
            shutil.copy(source, folder / source.name)
        text = (folder / file).read_text()
        if old not in text:
            raise RuntimeError(f"mutation pattern not found in {file}: the mutation is stale")
        (folder / file).write_text(text.replace(old, new, 1))
        patch.setattr(_cuda, "cuda_dir", lambda: folder)
    return apply


def _delta_primitives(change):
    def apply(patch):
        from codecprim.models.delta_encoder import DeltaEncoder

        original = DeltaEncoder.forward

        def mutated(self, motion, residual):
            return original(self, *change(motion, residual))
        patch.setattr(DeltaEncoder, "forward", mutated)
    return apply


def _codec_vit_weights_reset(patch):
    import codecprim.train.codec_vit as recipe
    import codecprim.train.probe_task as probe_task

    original = recipe.train_codec_vit

    def mutated(model, *args, **kwargs):
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        losses = original(model, *args, **kwargs)
        model.load_state_dict(initial)  # trained, then put back as it was drawn
        return losses
    patch.setattr(recipe, "train_codec_vit", mutated)
    patch.setattr(probe_task, "train_codec_vit", mutated)


MUTATIONS = {
    "h264_zero_residual": _h264_zero_residual,
    "residual_plus_one": _residual_plus_one,
    "swapped_vector_columns": _swapped_vector_columns,
    "transposed_saliency": lambda p: _saliency_view(p, lambda s: s.transpose(1, 2)),
    "mirrored_saliency": lambda p: _saliency_view(p, lambda s: s.flip(-1)),
    "no_camera_compensation": _no_camera_compensation,
    "gop_always_iframe": _gop_always_iframe,
    "pyav_other_libavcodec": _pyav_other_libavcodec,
    "delta_zero_primitives": _delta_primitives(lambda m, r: (torch.zeros_like(m), torch.zeros_like(r))),
    "delta_other_primitives": _delta_primitives(lambda m, r: (m.roll(1, 0), r.roll(1, 0))),
    "codec_vit_weights_reset": _codec_vit_weights_reset,
    "kernel_residual_square": _kernel_edit("saliency.cu", "static_cast<unsigned long long>(p * p)",
                                           "static_cast<unsigned long long>(p * p + (p != 0))"),
    "kernel_sort_without_barrier": _kernel_edit(
        "saliency.cu", "buf[i] = i < p ? values[i] : inf;\n  __syncthreads();", "buf[i] = i < p ? values[i] : inf;"),
    "kernel_topk_without_barrier": _kernel_edit(
        "topk_select.cu", "mask |= 0xffull << shift;\n      __syncthreads();", "mask |= 0xffull << shift;"),
    "kernel_topk_ballot_count": _kernel_edit(
        "topk_select.cu", "warp_counts[warp] = __popc(ballot);", "warp_counts[warp] = __popc(ballot) + (warp > 0);"),
    "kernel_me_without_barrier": _kernel_edit(
        "motion_estimation.cu", "left + cx - radius, side, tile);\n  __syncthreads();",
        "left + cx - radius, side, tile);"),
    "kernel_me_half_warp_sum": _kernel_edit(
        "motion_estimation.cu", "for (int offset = 16; offset > 0", "for (int offset = 8; offset > 0"),
}

_patch = None


def pytest_configure(config):
    global _patch
    name = os.environ.get("CODECPRIM_MUTATION")
    if not name:
        return
    if name not in MUTATIONS:
        raise pytest.UsageError(f"unknown CODECPRIM_MUTATION {name!r}; known: {', '.join(sorted(MUTATIONS))}")
    _patch = pytest.MonkeyPatch()
    MUTATIONS[name](_patch)


def pytest_report_header(config):
    name = os.environ.get("CODECPRIM_MUTATION")
    return f"MUTATION APPLIED: {name}" if name else None
