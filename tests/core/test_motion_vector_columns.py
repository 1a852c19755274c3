"""The named motion-vector columns: Python's MV mirrors the C++ enum, and the names index real rows."""

import numpy as np
import pytest

import codecprim
from codecprim.reader import MV, MOTION_VECTOR_COLUMNS


def test_python_names_mirror_the_core():
    from codecprim import _core

    assert _core.motion_vector_columns() == MOTION_VECTOR_COLUMNS == codecprim.MOTION_VECTOR_COLUMNS
    assert [getattr(MV, name) for name in MOTION_VECTOR_COLUMNS] == list(range(MV.ncols))
    assert codecprim.MV is MV


def test_columns_hold_ffmpegs_fields(media):
    # PyAV reads FFmpeg's AVMotionVector as a structured array: the column named after a field must hold it.
    av = pytest.importorskip("av")
    path = media["h264_bframes"]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        table = next(f.side_data.get("MOTION_VECTORS") for f in container.decode(stream)
                     if f.side_data.get("MOTION_VECTORS") is not None).to_ndarray()
    with codecprim.open(path, residuals=False) as reader:
        rows = next(f for f in reader if f.motion_vectors.shape[0]).motion_vectors
    assert rows.shape == (len(table), MV.ncols)
    for name in MOTION_VECTOR_COLUMNS:
        np.testing.assert_array_equal(rows[:, getattr(MV, name)].numpy(), table[name], err_msg=name)
