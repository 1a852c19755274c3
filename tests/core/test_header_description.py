"""Opening an MP4 or Matroska file without probing: for one H.264 stream the reader takes the pixel format and the
reorder depth from the SPS in the avcC record (csrc/h264_sps.cpp) instead of letting avformat_find_stream_info
decode pictures. The oracle is FFmpeg's own probe (ffprobe) and PyAV's decode: the info, the frames and their times must
be what probing gives, and streams the SPS cannot describe must still be probed."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction

import numpy as np
import pytest

import codecprim
import h264_sps
import pyav_oracle
from media import ffmpeg_available

pytestmark = pytest.mark.skipif(not ffmpeg_available(), reason="the ffmpeg CLI generates these clips")

SOURCE = ["-f", "lavfi", "-i", "testsrc2=s=160x96:r=25:d=0.8"]
# name -> (encoder arguments, whether the header and SPS describe the stream)
CASES = {
    "bframes.mp4": (["-c:v", "libx264", "-bf", "3"], True),
    "full_range.mp4": (["-c:v", "libx264", "-color_range", "pc"], True),
    "yuvj420p.mp4": (["-pix_fmt", "yuvj420p", "-c:v", "libx264"], True),
    "422.mp4": (["-pix_fmt", "yuv422p", "-c:v", "libx264"], True),
    "444.mp4": (["-pix_fmt", "yuv444p", "-c:v", "libx264"], True),
    "10bit.mp4": (["-pix_fmt", "yuv420p10le", "-c:v", "libx264"], True),
    "10bit_444.mp4": (["-pix_fmt", "yuv444p10le", "-c:v", "libx264"], True),
    "rgb.mp4": (["-pix_fmt", "bgr0", "-c:v", "libx264rgb"], True),
    "baseline.mp4": (["-c:v", "libx264", "-profile:v", "baseline"], True),
    "scaling_matrix.mp4": (["-c:v", "libx264", "-x264-params", "cqm=jvt"], True),
    "hrd.mp4": (["-c:v", "libx264", "-x264-params", "nal-hrd=vbr:vbv-maxrate=400:vbv-bufsize=800"], True),
    "bt709.mp4": (["-c:v", "libx264", "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"], True),
    "gray.mp4": (["-pix_fmt", "gray", "-c:v", "libx264"], False),  # 4:0:0: left to the probe
    # variable frame durations: the MP4 header still states r_frame_rate (FFmpeg's probe agrees)
    "vfr.mp4": (["-c:v", "libx264", "-vf", "setpts=(N+N*N/20)/25/TB", "-fps_mode", "vfr"], True),
    "fragmented.mp4": (["-c:v", "libx264", "-movflags", "frag_keyframe+empty_moov"], False),
    "hevc.mp4": (["-c:v", "libx265", "-x265-params", "log-level=error"], False),
    "h264.mkv": (["-c:v", "libx264", "-bf", "3"], True),
    "full_range.mkv": (["-c:v", "libx264", "-color_range", "pc"], True),
    "10bit.mkv": (["-pix_fmt", "yuv420p10le", "-c:v", "libx264"], True),
    "hevc.mkv": (["-c:v", "libx265", "-x265-params", "log-level=error"], False),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("header_description")
    paths = {}
    for name, (args, _) in CASES.items():
        path = folder / name
        subprocess.run(["ffmpeg", "-v", "error", "-y", *SOURCE, *args, str(path)], check=True, capture_output=True)
        paths[name] = path
    return paths


def ffprobe_stream(path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=pix_fmt,r_frame_rate,width,height,bit_rate:format=bit_rate", "-of", "json", str(path)],
                         check=True, capture_output=True, text=True).stdout
    probe = json.loads(out)
    # VideoInfo.bit_rate: the stream's own, else the container's (Matroska stores none; probing estimates it)
    return dict(probe["streams"][0], bit_rate=int(probe["streams"][0].get("bit_rate") or probe["format"]["bit_rate"]))


@pytest.mark.parametrize("name", list(CASES))
def test_info_is_what_ffmpeg_probes(clips, name):
    probe = ffprobe_stream(clips[name])
    with codecprim.open(clips[name]) as reader:
        assert reader.stats.stream_info_probed is not CASES[name][1]
        assert reader.info.pix_fmt == probe["pix_fmt"]
        assert (reader.info.width, reader.info.height) == (probe["width"], probe["height"])
        assert reader.info.fps == pytest.approx(float(Fraction(probe["r_frame_rate"])))
        assert reader.info.bit_rate == probe["bit_rate"]


@pytest.mark.parametrize("name", [n for n, (_, described) in CASES.items() if described and n != "rgb.mp4"])
def test_frames_and_times_are_pyav_s(clips, name):  # (RGB pictures are refused, probed or not)
    pyav_oracle.require_same_libavcodec()
    expected = list(pyav_oracle.decoded_frames(clips[name]))
    eight_bit_yuv = "10bit" not in name
    with codecprim.open(clips[name], residuals=False, pixels=True) as reader:
        frames = list(reader)
        assert len(frames) == len(reader) == len(expected)
        assert reader.stats.frames_reordered == 0
        pts = [float(frame.pts * base) for frame, base in expected]
        np.testing.assert_allclose(reader.pts_seconds.numpy(), sorted(pts), atol=1e-6)
        for ours, (theirs, _) in zip(frames, expected):
            if eight_bit_yuv:
                np.testing.assert_array_equal(ours.luma.numpy(), pyav_oracle.luma(theirs))


def test_an_mp4_that_under_declares_its_reorder_depth_reads_as_the_honest_one(clips, tmp_path):
    # The SPS says 1 frame of reordering where x264's B-pyramid needs 2: the reader starts from the declared depth,
    # as probing would have, and puts what the decoder outputs early back in presentation order.
    data, declared = h264_sps.declare_reorder_depth(clips["bframes.mp4"].read_bytes(), 1)
    assert declared == 2
    path = tmp_path / "lying.mp4"
    path.write_bytes(data)
    with codecprim.open(path) as reader, codecprim.open(clips["bframes.mp4"]) as honest:
        assert not reader.stats.stream_info_probed
        lying, truth = list(reader), list(honest)
        assert [f.pts_seconds for f in lying] == [f.pts_seconds for f in truth]
        for a, b in zip(lying, truth):
            np.testing.assert_array_equal(a.luma.numpy(), b.luma.numpy())
            np.testing.assert_array_equal(a.residual.numpy() if a.residual is not None else None,
                                          b.residual.numpy() if b.residual is not None else None)
