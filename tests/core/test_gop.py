"""GOP metadata agrees with the decoder, and read_gop seeks instead of decoding the GOPs before it."""

import numpy as np
import pytest

import codecprim
from pyav_oracle import decode, packet_sizes

CLIPS = ["h264_bframes", "h264_scenecut", "mpeg4_native_bframes", "mpeg2", "mpeg4_xvid", "h263", "hevc", "av1"]


@pytest.mark.parametrize("name", CLIPS)
def test_frame_types_and_pts_agree_with_decoder(media, name):
    path = media[name]
    oracle = decode(path)
    with codecprim.open(path) as reader:
        frames = list(reader)
        index_types = reader.pict_types
        index_pts = reader.pts_seconds.numpy()
    assert [f.pict_type for f in frames] == [o.pict_type for o in oracle]
    assert index_types == "".join(o.pict_type for o in oracle)
    np.testing.assert_allclose([f.pts_seconds for f in frames], [o.pts_seconds for o in oracle], atol=1e-9)
    np.testing.assert_allclose(index_pts, [o.pts_seconds for o in oracle], atol=1e-9)
    assert [f.index for f in frames] == list(range(len(oracle)))
    assert [f.key_frame for f in frames] == [bool(o.key_frame) for o in oracle]


def test_gop_table_follows_iframes(media):
    path = media["h264_scenecut"]
    oracle = decode(path)
    with codecprim.open(path) as reader:
        gops = reader.gops
        frames = list(reader)
    starts = [i for i, o in enumerate(oracle) if o.pict_type == "I"]
    assert [g.first_frame for g in gops] == starts
    assert len(starts) >= 2, "the scene cut must force an I-frame"
    # The cut's I-frame is not a key frame (x264's min-keyint keeps it non-IDR), yet it starts a GOP.
    assert not oracle[starts[1]].key_frame
    assert sum(g.num_frames for g in gops) == len(frames) == len(reader)
    for g in gops:
        assert g.starts_with_iframe and g.first_frame_index == g.first_frame
        assert g.pts_seconds == pytest.approx(oracle[g.first_frame].pts_seconds)
        assert all(f.gop_index == g.index for f in frames[g.first_frame:g.first_frame + g.num_frames])


def _cut_before_first_iframe(directory):
    """An MPEG-2 elementary stream whose first I-picture and first P-picture are cut away: the sequence header,
    then the third picture onwards, so the stream opens on ten P-pictures that predict from pictures it lacks."""
    import re
    import subprocess

    whole, cut = directory / "mpeg2_whole.m2v", directory / "mpeg2_cut_before_iframe.m2v"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=2", "-pix_fmt",
                    "yuv420p", "-c:v", "mpeg2video", "-g", "12", "-bf", "0", "-q:v", "4", str(whole)],
                   check=True, capture_output=True)
    data = whole.read_bytes()
    gop_header = data.index(b"\x00\x00\x01\xb8")
    pictures = [m.start() for m in re.finditer(b"\x00\x00\x01\x00", data)]
    assert (data[pictures[0] + 5] >> 3) & 7 == 1 and (data[pictures[2] + 5] >> 3) & 7 == 2  # I, then P
    cut.write_bytes(data[:gop_header] + data[pictures[2]:])
    return cut


def test_frames_before_first_iframe_form_gop_zero(tmp_path):
    # Cutting an open stream after its first I-frame leaves leading P frames; they form GOP 0, which does not
    # start with an I-frame, and every later GOP does.
    path = _cut_before_first_iframe(tmp_path)
    with codecprim.open(path) as reader:
        gops, types = reader.gops, reader.pict_types
        first = reader.read_gop(0)
    assert gops[0].first_frame == 0 and not gops[0].starts_with_iframe
    assert gops[0].num_frames == types.index("I") >= 9 and set(types[:gops[0].num_frames]) == {"P"}
    assert len(gops) >= 2 and all(g.starts_with_iframe and types[g.first_frame] == "I" for g in gops[1:])
    assert [f.index for f in first] == list(range(gops[0].num_frames))
    assert all(f.gop_index == 0 and f.pict_type == "P" for f in first)


def test_cut_stream_decodes_as_its_index_says(tmp_path):
    path = _cut_before_first_iframe(tmp_path)
    with codecprim.open(path) as reader:
        frames = list(reader)
        assert len(frames) == len(reader)
        assert "".join(f.pict_type for f in frames) == reader.pict_types
        assert reader.read_gop(1)[0].pict_type == "I"
    # FFmpeg's decoder returns the grey reference it invents for the opening P-picture as a first frame; the
    # reader must return the stream's own pictures only: PyAV's decode minus that invented frame.
    import av
    with av.open(str(path)) as container:
        oracle = [np.frombuffer(f.planes[0], np.uint8).reshape(f.height, -1)[:, :f.width]
                  for f in container.decode(video=0)]
    assert len(oracle) == len(frames) + 1 and np.all(oracle[0] == oracle[0][0, 0])
    for frame, expected in zip(frames, oracle[1:]):
        np.testing.assert_array_equal(frame.luma.numpy()[:expected.shape[0], :expected.shape[1]], expected)


@pytest.mark.parametrize("name", ["h264_scenecut", "h264_bframes", "mpeg4_native_bframes", "mpeg2", "h263", "hevc"])
def test_read_gop_equals_sequential_decoding(media, name):
    with codecprim.open(media[name]) as reader:
        sequential = list(reader)
        for g in reversed(reader.gops):
            got = reader.read_gop(g.index)
            expected = sequential[g.first_frame:g.first_frame + g.num_frames]
            assert [f.index for f in got] == [f.index for f in expected]
            for a, b in zip(got, expected):
                assert a.pict_type == b.pict_type and a.gop_index == b.gop_index == g.index
                np.testing.assert_array_equal(a.motion_vectors, b.motion_vectors)
                np.testing.assert_array_equal(a.luma, b.luma)
                if b.residual is None:
                    assert a.residual is None
                else:
                    np.testing.assert_array_equal(a.residual, b.residual)


def test_read_gop_seeks_instead_of_decoding_earlier_gops(media):
    path = media["h264_no_bframes"]  # GOP 12, 50 frames: the last GOP starts at frame 48
    with codecprim.open(path) as reader:
        last = reader.gops[-1]
        frames = reader.read_gop(-1)
        packets = reader.stats.packets
    assert [f.index for f in frames] == list(last.frame_range)
    assert packets < 12, f"read {packets} packets: the GOPs before were decoded"


def test_read_gop_rejects_bad_numbers(media):
    with codecprim.open(media["h264_no_bframes"]) as reader:
        n = len(reader.gops)
        with pytest.raises(IndexError, match="GOP 99 out of range"):
            reader.read_gop(99)
        with pytest.raises(TypeError):
            reader.read_gop(1.5)
        assert reader.read_gop(-n)[0].index == 0


def test_packet_sizes_and_decode_order(media):
    path = media["h264_bframes"]
    with codecprim.open(path) as reader:
        frames = list(reader)
        sizes = reader.packet_sizes.tolist()
    assert [f.packet_size for f in frames] == packet_sizes(path) == sizes
    decode_order = [f.decode_index for f in frames]
    assert sorted(decode_order) == list(range(len(frames)))
    assert decode_order != list(range(len(frames)))  # B-frames are decoded after the P they precede
