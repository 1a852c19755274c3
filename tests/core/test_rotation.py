"""``info.rotation``: the container's display matrix, read as FFmpeg's own player turns the pictures.

The oracle is the ffmpeg CLI: it auto-rotates by the display matrix, and with ``-noautorotate`` it does not, so
the number of clockwise quarter turns between its two outputs is what ``info.rotation`` must say.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

import codecprim
from codecprim.demo import gop_table


def ffmpeg_gray(path, *extra) -> np.ndarray:
    out = subprocess.run(["ffmpeg", "-v", "error", *extra, "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "gray", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(out, np.uint8)


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    path = tmp_path_factory.mktemp("rotation") / "plain.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=0.2",
                    "-c:v", "libx264", str(path)], check=True)
    return path


@pytest.mark.parametrize("tag", [0, 90, 180, 270])
def test_rotation_is_what_ffmpeg_turns_the_pictures_by(plain, tag):
    path = plain.with_name(f"rotate_{tag}.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(plain), "-c", "copy", "-metadata:s:v:0", f"rotate={tag}",
                    str(path)], check=True)
    with codecprim.open(path) as reader:
        info, luma = reader.info, reader[0].luma.numpy()
    assert (info.width, info.height) == (64, 48) and luma.shape == (48, 64)  # frames stay as coded
    coded = ffmpeg_gray(path, "-noautorotate").reshape(48, 64)
    shown = ffmpeg_gray(path)
    turns = [k for k in range(4) if np.rot90(coded, -k).size == shown.size
             and np.array_equal(np.rot90(coded, -k).ravel(), shown)]
    assert turns == [info.rotation // 90]
    assert info.rotation == 0 or "display rotation" in gop_table(path)
