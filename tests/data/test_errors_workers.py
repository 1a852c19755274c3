"""Every codecprim error reaches the main process from a DataLoader worker as the same type, path and cause."""

from __future__ import annotations

import pickle

import pytest
from torch.utils.data import DataLoader

from codecprim.data import CodecClipDataset, VideoDataset, collate_packed
from codecprim.errors import (CodecprimError, InvalidVideoError, UnsupportedVideoError, VideoIOError,
                              VideoNotFoundError)

ERRORS = [VideoNotFoundError, InvalidVideoError, UnsupportedVideoError, VideoIOError]
# A path with the separator in it, and a cause over several words with a colon.
PATH = "/data/clips: part 2/odd name.mp4"
CAUSE = "Invalid data found when processing input: moov atom not found"


class RaisingDataset(VideoDataset):
    """Every item raises the error type it is built with."""

    def __init__(self, error_name: str):
        super().__init__([PATH], on_error="raise")
        self.error_name = error_name

    def load(self, index, path):
        import codecprim.errors

        raise getattr(codecprim.errors, self.error_name)(path, CAUSE)


@pytest.mark.parametrize("kind", ERRORS)
def test_pickle_round_trip(kind):
    error = pickle.loads(pickle.dumps(kind(PATH, CAUSE)))
    assert type(error) is kind and (error.path, error.cause) == (PATH, CAUSE)
    assert str(error) == f"{PATH}: {CAUSE}"


# Spawn costs a fresh interpreter per loader, so it runs for one type; fork for each.
@pytest.mark.parametrize("kind, context", [(kind, "fork") for kind in ERRORS] + [(VideoIOError, "spawn")])
def test_worker_error_arrives_typed_with_path_and_cause(kind, context):
    loader = DataLoader(RaisingDataset(kind.__name__), batch_size=1, num_workers=1, multiprocessing_context=context,
                        collate_fn=collate_packed)
    with pytest.raises(kind) as caught:
        next(iter(loader))
    assert type(caught.value) is kind and isinstance(caught.value, CodecprimError)
    assert (caught.value.path, caught.value.cause) == (PATH, CAUSE)
    assert "in DataLoader worker process 0" in str(caught.value)  # the worker's traceback stays readable


def test_error_text_without_the_worker_note_still_gives_path_and_cause():
    text = f"Caught InvalidVideoError.\nOriginal Traceback:\n  ...\ncodecprim.errors.InvalidVideoError: /a/b.mp4: {CAUSE}\n"
    error = InvalidVideoError(text)
    assert (error.path, error.cause) == ("/a/b.mp4", CAUSE)


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_real_unreadable_file_raises_in_the_main_process(tmp_path, context):
    bad = tmp_path / "not_a_video.mp4"
    bad.write_text("plain text\n" * 50)
    with pytest.raises(InvalidVideoError) as direct:
        CodecClipDataset([bad], on_error="raise", num_frames=4, size=56, budget=16)[0]
    loader = DataLoader(CodecClipDataset([bad], on_error="raise", num_frames=4, size=56, budget=16), batch_size=1,
                        num_workers=1, multiprocessing_context=context, collate_fn=collate_packed)
    with pytest.raises(InvalidVideoError) as caught:
        next(iter(loader))
    assert (caught.value.path, caught.value.cause) == (direct.value.path, direct.value.cause)
