"""Random access: reader.frames_at / reader[i] return exactly what sequential decoding returns, frame for frame,
on every codec and container of the suite and on the real clips, and decode only the GOPs they need."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import codecprim
from media import SPECS

_SEQUENTIAL: dict = {}


def sequential(path, **options):
    """Every frame of the clip read front to back (cached per clip and options)."""
    key = (str(path), tuple(sorted(options.items())))
    if key not in _SEQUENTIAL:
        with codecprim.open(path, **options) as reader:
            _SEQUENTIAL[key] = list(reader)
    return _SEQUENTIAL[key]


def assert_same_frame(got, expected):
    assert got.index == expected.index
    assert got.pict_type == expected.pict_type
    assert got.pts_seconds == expected.pts_seconds
    assert got.gop_index == expected.gop_index
    assert got.key_frame == expected.key_frame
    assert got.decode_index == expected.decode_index
    assert got.packet_size == expected.packet_size
    np.testing.assert_array_equal(got.motion_vectors, expected.motion_vectors)
    for name in ("luma", "residual", "qp", "chroma"):
        a, b = getattr(got, name), getattr(expected, name)
        assert (a is None) == (b is None), name
        if b is not None:
            np.testing.assert_array_equal(a, b, err_msg=name)


def check_indices(path, indices, **options):
    expected = sequential(path, **options)
    with codecprim.open(path, **options) as reader:
        assert len(reader) == len(expected)
        got = reader.frames_at(indices)
    assert len(got) == len(indices)
    for i, frame in zip(indices, got):
        assert_same_frame(frame, expected[i])


def index_sets(n):
    return st.lists(st.integers(-n, n - 1), min_size=1, max_size=6)


@pytest.mark.parametrize("name", list(SPECS))
def test_frames_at_matches_sequential_decoding(media, name):
    path = media[name]
    n = len(sequential(path))

    @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(index_sets(n))
    def run(indices):
        check_indices(path, indices)

    run()


def test_frames_at_on_real_clips(real_clips):
    for name, path in real_clips.items():
        n = len(sequential(path, residuals=False))

        @settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(index_sets(n))
        def run(indices):
            check_indices(path, indices, residuals=False)

        run()


@pytest.mark.parametrize("name", ["h264_bframes", "mpeg4_native_bframes", "mpeg2"])
def test_every_frame_in_reverse_order(media, name):
    path = media[name]
    n = len(sequential(path))
    check_indices(path, list(range(n - 1, -1, -1)))


def test_duplicates_negative_and_getitem(media):
    path = media["h264_bframes"]
    expected = sequential(path)
    n = len(expected)
    with codecprim.open(path) as reader:
        got = reader.frames_at([5, -1, 5, 0])
        assert [f.index for f in got] == [5, n - 1, 5, 0]
        assert_same_frame(reader[-2], expected[n - 2])
        assert_same_frame(reader[7], expected[7])
        assert reader.frames_at([]) == []
        with pytest.raises(IndexError, match=f"frame {n} out of range"):
            reader.frames_at([0, n])
        with pytest.raises(IndexError, match=f"frame {-n - 1} out of range"):
            reader[-n - 1]
        with pytest.raises(TypeError):
            reader.frames_at([1.5])


def test_sparse_request_decodes_only_its_gop(media):
    path = media["h264_no_bframes"]  # GOP 12, 50 frames
    with codecprim.open(path) as reader:
        gop = reader.gops[2]
        target = gop.first_frame + 3
        frame = reader[target]
        decoded = reader.stats.frames_decoded
    assert frame.index == target
    assert decoded == 4, f"decoded {decoded} frames for frame {target}: only its GOP's first four are needed"


@pytest.mark.parametrize("name", ["h264_bframes", "mpeg4_native_bframes", "mpeg2"])
def test_unrequested_frames_are_not_copied_and_nonref_pictures_not_decoded(media, name):
    path = media[name]
    expected = sequential(path)
    with codecprim.open(path) as reader:
        gop = max(reader.gops, key=lambda g: g.num_frames)
        types = reader.pict_types
        span = [i for i in gop.frame_range if types[i] != "B"]
        wanted = [span[1], span[-1]]  # two anchors far apart in one GOP, no B-frame among them
        got = reader.frames_at(wanted)
        stats = reader.stats
        for frame, i in zip(got, wanted):
            assert_same_frame(frame, expected[i])
        # Only the requested frames reach the output (copies, residuals); the B-frames between are never decoded.
        assert stats.frames == len(wanted)
        reached = wanted[-1] - gop.first_frame + 1
        anchors = sum(types[i] != "B" for i in range(gop.first_frame, wanted[-1] + 1))
        assert anchors < reached
        if name == "h264_bframes":  # x264's B-pyramid keeps some B-frames as references: those still decode
            assert stats.frames_decoded < reached, stats
        else:  # MPEG B-frames are never references
            assert stats.frames_decoded <= anchors + 1, stats
        # Asking for a B-frame decodes the pictures it needs, and reading on afterwards sees every frame again.
        b = next(i for i in gop.frame_range if types[i] == "B")
        assert_same_frame(reader[b], expected[b])
        assert [f.index for f in reader] == list(range(len(expected)))
