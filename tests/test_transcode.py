"""codecprim.transcode: every recipe's output read back with codecprim.open (codec, GOP lengths, frame types),
overrides, bad arguments, and atomic output."""

from __future__ import annotations

import subprocess

import pytest

import codecprim
from codecprim.transcode import RECIPES, transcode_options
from media import ffmpeg_available


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """9 s of moving test pattern with B-frames at 25 fps: at 30 fps it is 270 frames, more than one CoPE GOP."""
    if not ffmpeg_available():
        pytest.skip("the ffmpeg CLI is needed to generate test videos")
    out = tmp_path_factory.mktemp("transcode") / "h264_bframes_9s.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=9",
                    "-pix_fmt", "yuv420p", "-c:v", "libx264", "-bf", "3", "-g", "50", "-threads", "1", str(out)],
                   check=True, capture_output=True)
    return out


def read_back(path):
    with codecprim.open(path, residuals=False) as reader:
        types = "".join(f.pict_type for f in reader)
        return reader.info, [g.num_frames for g in reader.gops], types


def expected_types(n, gop):
    return "".join("I" if i % gop == 0 else "P" for i in range(n))


def test_cope_recipe_is_mpeg4_at_30fps_gop_240_p_only(long_clip, tmp_path):
    result = codecprim.transcode(long_clip, tmp_path / "cope.avi", recipe="cope")
    info, gops, types = read_back(result.path)
    assert info.codec == "mpeg4" and info.fps == pytest.approx(30.0)
    assert result.frames_decoded == 225 and result.frames_encoded == 270 == len(types)
    assert gops == [240, 30]
    assert types == expected_types(270, 240)


@pytest.mark.parametrize("recipe, codec", [("onevision", "hevc"), ("onevision-h264", "h264")])
def test_onevision_recipes_have_keyint_16_without_b_frames(recipe, codec, media, tmp_path):
    src = media["h264_bframes"]  # 50 frames at 25 fps with B-frames
    result = codecprim.transcode(src, tmp_path / f"{recipe}.mp4", recipe=recipe, preset="ultrafast")
    info, gops, types = read_back(result.path)
    assert info.codec == codec and info.fps == pytest.approx(25.0)
    assert result.frames_encoded == 50
    assert gops == [16, 16, 16, 2]
    assert types == expected_types(50, 16)


def test_overrides_change_rate_size_and_gop(media, tmp_path):
    result = codecprim.transcode(media["h264_bframes"], tmp_path / "small.mp4", recipe="onevision-h264",
                                 gop=5, fps=10, width=160, preset="ultrafast")
    info, gops, types = read_back(result.path)
    assert (info.width, info.height, info.fps) == (160, 120, pytest.approx(10.0))
    assert len(types) == 20 and gops == [5, 5, 5, 5]
    assert types == expected_types(20, 5)


def test_cope_with_b_frames_overridden(long_clip, tmp_path):
    result = codecprim.transcode(long_clip, tmp_path / "b.mp4", recipe="cope", gop=12, bframes=2, fps="source")
    _, gops, types = read_back(result.path)
    assert "B" in types and gops[0] == 12 and result.fps == "25/1"


def test_progress_reports_increasing_counts_ending_at_the_total(media, tmp_path):
    calls = []
    result = codecprim.transcode(media["h264_bframes"], tmp_path / "p.avi", recipe="cope",
                                 progress=lambda done, total: calls.append((done, total)))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert calls[-1] == (result.frames_encoded, result.frames_encoded) == (60, 60)
    assert all(total in (60, -1) for _, total in calls[:-1])


def test_options_resolve_recipe_and_overrides():
    opts = transcode_options("onevision", gop=32, crf=20)
    assert (opts["codec"], opts["gop"], opts["bframes"], opts["refs"], opts["crf"]) == ("libx265", "32", "0", "1", "20")
    assert transcode_options("cope")["fps"] == "30" and transcode_options("cope")["gop"] == "240"
    assert set(RECIPES) == {"cope", "onevision", "onevision-h264"}


@pytest.mark.parametrize("kwargs, match", [
    (dict(recipe="h266"), "unknown transcode recipe 'h266'"),
    (dict(recipe="cope", keyint=3), "unknown transcode option 'keyint'"),
    (dict(recipe="cope", gop=0), "gop must be an integer"),
    (dict(recipe="cope", gop="many"), "gop must be an integer"),
    (dict(recipe="cope", fps="fast"), "fps must be"),
    (dict(recipe="cope", width=161), "even size"),
    (dict(recipe="cope", pix_fmt="yuv9000"), "unknown pixel format"),
    (dict(recipe="cope", gop=True), "must be an int or a string"),
    (dict(recipe="cope", progress=3), "progress must be a callable"),
])
def test_bad_arguments_raise_value_error_before_any_file_is_touched(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        codecprim.transcode(tmp_path / "missing.mp4", tmp_path / "out.avi", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_missing_and_unreadable_sources_name_the_file_and_leave_nothing(tmp_path):
    with pytest.raises(codecprim.VideoNotFoundError, match="missing.mp4"):
        codecprim.transcode(tmp_path / "missing.mp4", tmp_path / "out.avi", recipe="cope")
    text = tmp_path / "text.mp4"
    text.write_text("not a video\n" * 50)
    with pytest.raises(codecprim.InvalidVideoError, match="text.mp4"):
        codecprim.transcode(text, tmp_path / "out.avi", recipe="cope")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text.mp4"]


def test_unknown_container_and_encoder(media, tmp_path):
    with pytest.raises(ValueError, match="no container"):
        codecprim.transcode(media["h264_bframes"], tmp_path / "out.notaformat", recipe="cope")
    with pytest.raises(codecprim.UnsupportedVideoError, match="no video encoder named 'nope'"):
        codecprim.transcode(media["h264_bframes"], tmp_path / "out.avi", recipe="cope", codec="nope")
    assert list(tmp_path.iterdir()) == []


def test_output_is_atomic_an_interrupted_encode_leaves_the_old_file(media, tmp_path):
    dst = tmp_path / "out.avi"
    dst.write_bytes(b"old")

    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        codecprim.transcode(media["h264_bframes"], dst, recipe="cope", progress=stop)
    assert dst.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.avi"]
    codecprim.transcode(media["h264_bframes"], dst, recipe="cope")
    assert read_back(dst)[0].codec == "mpeg4" and [p.name for p in tmp_path.iterdir()] == ["out.avi"]
