"""Inputs beyond paths: bytes, bytearray, memoryview and binary file objects (seekable, such as a tar member,
or not, such as a pipe) read through FFmpeg's custom I/O give exactly what the path gives, in a DataLoader's
workers too; bad input names its source."""

from __future__ import annotations

import io
import re
import tarfile

import numpy as np
import pytest
import torch

import codecprim
from codecprim.errors import InvalidVideoError, VideoIOError
from media import make_packed_bframes

NAMES = ["h264_bframes", "h264_odd_size", "mpeg4_native_bframes", "mpeg2", "vp9"]


def _summary(reader):
    return [(f.index, f.pict_type, f.pts_seconds, f.motion_vectors.numpy().tobytes(),
             None if f.luma is None else f.luma.numpy().tobytes(),
             None if f.residual is None else f.residual.numpy().tobytes()) for f in reader]


class OneWay(io.RawIOBase):
    """A pipe-like stream: readable once, front to back, not seekable."""

    def __init__(self, data):
        self._inner = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, buffer):
        chunk = self._inner.read(min(len(buffer), 4096))
        buffer[: len(chunk)] = chunk
        return len(chunk)


class FailingRead(io.BytesIO):
    """A file object whose storage goes away after the first reads."""

    def __init__(self, data, good_reads):
        super().__init__(data)
        self._left = good_reads

    def read(self, n=-1):
        self._left -= 1
        if self._left < 0:
            raise ConnectionError("object store connection reset")
        return super().read(n)


@pytest.mark.parametrize("name", NAMES)
def test_every_kind_of_source_reads_like_the_path(media, name):
    path = media[name]
    data = path.read_bytes()
    with codecprim.open(path) as reader:
        expected, n = _summary(reader), len(reader)
    with open(path, "rb") as handle:
        sources = [data, bytearray(data), memoryview(data), io.BytesIO(data), handle, OneWay(data)]
        for source in sources:
            with codecprim.open(source) as reader:
                assert _summary(reader) == expected, type(source).__name__
                assert len(reader) == n


def test_random_access_and_index_from_bytes(media):
    path = media["h264_bframes"]
    with codecprim.open(path) as reader:
        expected = list(reader)
        gops = reader.gops
    with codecprim.open(path.read_bytes()) as reader:
        assert reader.gops == gops and reader.path == "<bytes>"
        for frame in reader.frames_at([40, 3, 17]):
            assert torch.equal(frame.luma, expected[frame.index].luma)
            assert torch.equal(frame.residual, expected[frame.index].residual)


def test_tar_member_without_extracting(media, tmp_path):
    shard = tmp_path / "shard-000.tar"
    with tarfile.open(shard, "w") as tar:
        tar.add(make_packed_bframes(tmp_path), arcname="clips/packed.avi")
        tar.add(media["h264_bframes"], arcname="clips/h264.mp4")
    with codecprim.open(media["h264_bframes"]) as reader:
        expected = _summary(reader)
    with tarfile.open(shard) as tar:
        member = tar.extractfile("clips/h264.mp4")
        with codecprim.open(member, name="shard-000.tar/clips/h264.mp4") as reader:
            assert reader.path == "shard-000.tar/clips/h264.mp4"
            assert _summary(reader) == expected
        with codecprim.open(tar.extractfile("clips/packed.avi")) as reader:
            assert len(list(reader)) == len(reader) > 40


def test_names_in_errors(media, tmp_path):
    garbage = bytes(range(256)) * 64
    with pytest.raises(InvalidVideoError, match=r"^<bytes>: not a recognised media file"):
        codecprim.open(garbage)
    with pytest.raises(InvalidVideoError, match=r"^s3://bucket/clip\.mp4: not a recognised media file"):
        codecprim.open(garbage, name="s3://bucket/clip.mp4")
    with pytest.raises(InvalidVideoError, match=r"^<bytes>: is empty"):
        codecprim.open(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 100)
    with open(text, "rb") as handle, pytest.raises(InvalidVideoError, match=re.escape(str(text))):
        codecprim.open(handle)
    with pytest.raises(InvalidVideoError, match=r"^<file-like>: "):
        codecprim.open(io.BytesIO(garbage))
    with pytest.raises(ValueError, match="takes a path, bytes"):
        codecprim.open(12345)
    with pytest.raises(ValueError, match="binary mode"):
        codecprim.open(io.StringIO("text"))


def test_a_failing_file_object_is_an_io_error_naming_it(media):
    data = media["h264_bframes"].read_bytes()
    with pytest.raises(VideoIOError, match=r"^remote\.mp4: reading the source failed: .*connection reset"):
        with codecprim.open(FailingRead(data, good_reads=6), name="remote.mp4") as reader:
            list(reader)


class BytesDataset(torch.utils.data.Dataset):
    """Videos held as bytes (as a WebDataset shard hands them over): each item decodes one frame's luma."""

    def __init__(self, blobs):
        self.blobs = blobs

    def __len__(self):
        return len(self.blobs)

    def __getitem__(self, i):
        with codecprim.open(self.blobs[i], name=f"blob-{i}") as reader:
            frame = reader[i * 5]
            return frame.luma.clone(), frame.index


def test_dataloader_workers_read_from_bytes(media):
    paths = [media[n] for n in ("h264_bframes", "mpeg4_native_bframes", "h264_no_bframes", "mpeg2")]
    blobs = [p.read_bytes() for p in paths]
    # spawn: a forked worker inherits whatever FFmpeg/PyAV threads the test process has running (PyAV's oracle)
    loader = torch.utils.data.DataLoader(BytesDataset(blobs), batch_size=None, num_workers=2,
                                         multiprocessing_context="spawn")
    got = list(loader)
    for i, (luma, index) in enumerate(got):
        with codecprim.open(paths[i]) as reader:
            assert index == i * 5
            np.testing.assert_array_equal(luma, reader[i * 5].luma)


def test_dataloader_worker_reports_bad_bytes_by_name():
    loader = torch.utils.data.DataLoader(BytesDataset([b"\x00" * 4096]), batch_size=None, num_workers=2,
                                         multiprocessing_context="spawn")
    batches = iter(loader)
    with pytest.raises(InvalidVideoError, match="blob-0"):
        next(batches)
    # Shut the workers down here: an iterator left to a later garbage collection stops them while another
    # test runs, where their exit is reported as that test's unraisable exception.
    batches._shutdown_workers()
