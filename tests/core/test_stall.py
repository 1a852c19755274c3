"""Hang protection: a read that makes no progress ends with VideoStallError (a TimeoutError) within a bounded
time, through FFmpeg's interrupt callback (AVIOInterruptCB) for paths and the custom I/O's own check for file
objects, never a wall-clock kill. The crafted inputs: a real MPEG-PS clip followed by an endless run of zero
bytes, on which the demuxer searches for a start code forever, served by a file object and by a FIFO."""

from __future__ import annotations

import io
import os
import subprocess
import threading
import time

import pytest

import codecprim
from codecprim.errors import CodecprimError, VideoStallError

STALL = 0.5
BOUND = 5.0  # seconds the whole read may take, stall included, on a loaded 2-core machine


class EndlessZeros(io.RawIOBase):
    """``prefix``, then zero bytes forever (a little at a time); seekable, but it cannot tell its size."""

    def __init__(self, prefix):
        self._prefix = prefix
        self._pos = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        if whence == io.SEEK_END:
            raise io.UnsupportedOperation("endless stream")
        self._pos = offset if whence == io.SEEK_SET else self._pos + offset
        return self._pos

    def tell(self):
        return self._pos

    def readinto(self, buffer):
        n = len(buffer)
        head = self._prefix[self._pos:self._pos + n]
        buffer[: len(head)] = head
        buffer[len(head):n] = bytes(n - len(head))
        self._pos += n
        time.sleep(0.001)
        return n


@pytest.fixture(scope="module")
def long_mpg(media, tmp_path_factory):
    """8 s of small MPEG-2 in MPEG-PS: longer than FFmpeg's 5 s stream analysis, so opening finishes on real data
    and the stall comes while reading frames."""
    media["mpeg2"]  # skips without the ffmpeg CLI
    out = tmp_path_factory.mktemp("stall") / "mpeg2_8s.mpg"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=8", "-pix_fmt",
                    "yuv420p", "-c:v", "mpeg2video", "-g", "12", "-q:v", "8", str(out)], check=True, capture_output=True)
    return out


def _read_until_error(source, **options):
    start = time.monotonic()
    frames = 0
    with pytest.raises(CodecprimError) as caught:
        with codecprim.open(source, stall_seconds=STALL, **options) as reader:
            for _ in reader:
                frames += 1
    return caught.value, frames, time.monotonic() - start


def test_endless_file_object_ends_with_a_stall_error(long_mpg):
    clip = long_mpg.read_bytes()
    with codecprim.open(long_mpg, residuals=False) as reader:
        expected = len(list(reader))
    error, frames, seconds = _read_until_error(EndlessZeros(clip), residuals=False, name="endless.mpg")
    assert isinstance(error, VideoStallError) and isinstance(error, TimeoutError)
    assert error.path == "endless.mpg" and "no progress" in error.cause
    assert frames >= expected - 2  # the real frames come first
    assert seconds < BOUND


def test_endless_fifo_ends_through_the_interrupt_callback(long_mpg, tmp_path):
    fifo = tmp_path / "endless.mpg"
    os.mkfifo(fifo)
    clip = long_mpg.read_bytes()
    stop = threading.Event()

    def writer():
        try:
            with open(fifo, "wb") as pipe:
                pipe.write(clip)
                while not stop.is_set():
                    pipe.write(bytes(4096))
                    pipe.flush()
                    time.sleep(0.001)
        except (BrokenPipeError, OSError):
            pass  # the reader gave up: the point of the test

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        error, frames, seconds = _read_until_error(fifo, residuals=False)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert isinstance(error, VideoStallError), error
    assert error.path == str(fifo)
    assert frames > 0 and seconds < BOUND


def test_slow_callers_are_not_stalls(media):
    """Time spent between calls is the caller's: pausing longer than stall_seconds is fine."""
    with codecprim.open(media["h264_bframes"], stall_seconds=STALL) as reader:
        it = iter(reader)
        next(it)
        time.sleep(STALL * 1.5)
        assert len(list(it)) > 10
        time.sleep(STALL * 1.5)
        assert reader[3].index == 3


@pytest.mark.parametrize("bad", [0, -1.0, "1", True, float("nan")])
def test_bad_stall_seconds_is_a_value_error(media, bad):
    with pytest.raises(ValueError, match="stall_seconds must be a positive number or None") as caught:
        codecprim.open(media["h264_bframes"], stall_seconds=bad)
    assert not isinstance(caught.value, CodecprimError)


def test_stall_protection_can_be_off(media):
    with codecprim.open(media["h264_bframes"], stall_seconds=None) as reader:
        assert len(list(reader)) == len(reader)
