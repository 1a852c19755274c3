"""Frame.qp against FFmpeg itself: ``ffmpeg -debug qp`` prints each output picture's quantiser table, two digits a
macroblock, in display order."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

import codecprim

_NEW_FRAME = re.compile(r"New frame, type: (\w)")
_ROW = re.compile(r"^\[\w+ @ 0x[0-9a-f]+\] ([ \d]+)$")


def _ffmpeg_qp_tables(path, mb_w: int, mb_h: int) -> list[tuple[str, np.ndarray]]:
    log = subprocess.run(["ffmpeg", "-v", "debug", "-debug", "qp", "-threads", "1", "-i", str(path), "-f", "null", "-"],
                         capture_output=True, text=True, timeout=120).stderr.splitlines()
    tables, i = [], 0
    while i < len(log):
        found = _NEW_FRAME.search(log[i])
        i += 1
        if not found:
            continue
        rows = []
        while len(rows) < mb_h and i < len(log) and not _NEW_FRAME.search(log[i]):
            row = _ROW.match(log[i])
            if row and len(row.group(1)) == 2 * mb_w:
                rows.append([int(row.group(1)[k:k + 2]) for k in range(0, 2 * mb_w, 2)])
            i += 1
        if len(rows) == mb_h:
            tables.append((found.group(1), np.array(rows)))
    return tables


def _compare(path, scale: int) -> tuple[int, int]:
    with codecprim.open(path) as reader:
        frames = [(f.pict_type, f.qp) for f in reader]
        without_export = reader.stats.frames_without_export
    mb_h, mb_w = next(qp for _, qp in frames if qp is not None).shape
    tables = _ffmpeg_qp_tables(path, mb_w, mb_h)
    # FFmpeg prints a table for every picture it exports one for: all but the last picture of an MPEG-family stream
    # with output delay, which the decoder returns at the end without any (Frame.qp None there too).
    assert len(tables) == len(frames) - without_export
    assert all(qp is None for _, qp in frames[len(tables):]) and all(qp is not None for _, qp in frames[:len(tables)])
    for k, ((ours_type, ours), (type_, table)) in enumerate(zip(frames, tables)):
        assert ours_type == type_, f"frame {k}: {ours_type} vs FFmpeg's {type_}"
        np.testing.assert_array_equal(ours.numpy(), table * scale, err_msg=f"frame {k}")
    return len(tables), sum(len(np.unique(t)) > 1 for _, t in tables)


@pytest.mark.parametrize("name", ["h264_bframes", "h264_odd_size"])
def test_h264_qp_is_ffmpegs_table_macroblock_for_macroblock(media, name):
    compared, varying = _compare(media[name], 1)
    assert varying >= compared // 2  # x264's adaptive quantisation: the maps are not flat, the test is not trivial


@pytest.mark.parametrize("name", ["mpeg4_native_bframes", "mpeg4_xvid", "h263"])
def test_mpeg4_and_h263_report_twice_the_coded_quantiser(media, name):
    # FFmpeg's debug table prints the 5-bit quantiser; its export is in quantiser_scale units, twice that.
    _compare(media[name], 2)


@pytest.mark.parametrize("name", ["mpeg2", "mpeg1"])
def test_mpeg12_qp_is_its_quantiser_scale(media, name):
    # MPEG-1/2 decoding keeps quantiser_scale itself (twice the code: -q:v 4 reads 8), printed and exported alike.
    _compare(media[name], 1)
