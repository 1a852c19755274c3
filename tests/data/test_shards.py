"""codecprim.data.write_shards / shard_index: WebDataset layout, round trip to codec_patches, failures listed once,
deterministic bytes across worker counts, and a SIGKILLed run that resumes into the same shards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

import codecprim
from codecprim.data import shard_index, write_shards
from codecprim.data.shards import SHARD_RECIPES, decode_sample, read_tar, video_id
from media import make_damaged, make_not_video

OPTIONS = dict(num_frames=8, size=56, budget=32)  # small samples: the suite's time budget


@pytest.fixture(scope="module")
def corpus(media, tmp_path_factory):
    """Five videos, the third unreadable (text named .mp4), the fifth damaged in the middle."""
    folder = tmp_path_factory.mktemp("corpus")
    return [str(media["h264_no_bframes"]), str(media["mpeg4_native_bframes"]), str(make_not_video(folder)),
            str(media["h264_bframes"]), str(make_damaged(media.directory))]


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory):
    """An uninterrupted single-process run: the shards every other run must equal byte for byte."""
    out = tmp_path_factory.mktemp("reference")
    summary = write_shards(corpus, out, samples_per_shard=2, **OPTIONS)
    return out, summary


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("shard-*.tar"))}


def assert_equal_clips(a, b):
    for name in a.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype and torch.equal(x, y), name
        else:
            assert x == y, name


def test_layout_index_and_failures(corpus, reference):
    out, summary = reference
    assert [Path(s).name for s in summary.shards] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert (summary.ok, summary.failed, summary.resumed) == (4, 1, 0)
    rows = shard_index(out)
    assert [r.path for r in rows] == corpus and [r.id for r in rows] == [video_id(p) for p in corpus]
    assert [r.status for r in rows] == ["ok", "ok", "failed", "ok", "ok"]
    assert [r.shard for r in rows] == ["shard-000000.tar"] * 2 + ["shard-000001.tar"] * 2 + ["shard-000002.tar"]
    bad = rows[2]
    assert bad.error_type == "InvalidVideoError" and bad.cause and bad.frames is None
    ok = [r for r in rows if r.status == "ok"]
    for r in ok:
        with codecprim.open(r.path, residuals=False) as reader:
            types = "".join(f.pict_type for f in reader)  # decoded frames (the damaged clip loses some)
        assert (r.frames, r.frames_sampled, r.inter_frames) == (len(types), 8, len(types) - types.count("I"))
    assert all(r.motion_mean > 0 and 0 <= r.static_share <= 1 and r.seconds > 0 for r in ok)
    assert [json.loads(line)["id"] for line in (out / "index.jsonl").read_text().splitlines()] == [r.id for r in rows]
    assert not list((out / ".partial").iterdir()) and not list(out.glob(".*tmp*"))


def test_members_are_grouped_by_id_and_round_trip_to_codec_patches(corpus, reference):
    out, _ = reference
    with tarfile.open(out / "shard-000001.tar") as tar:
        names = tar.getnames()
        assert all(i.mtime == 0 and i.uid == 0 and i.uname == "" for i in tar.getmembers())
    vid = video_id(corpus[3])
    assert all(n.split(".", 1)[0] == vid for n in names)  # the failed video has no members
    assert {f"{vid}.json", f"{vid}.visible_indices.npy", f"{vid}.positions.npy", f"{vid}.frame_indices.npy",
            f"{vid}.pixels.npy"} <= set(names)
    samples = [(key, decode_sample(m)) for shard in sorted(out.glob("shard-*.tar")) for key, m in read_tar(shard)]
    assert [key for key, _ in samples] == [video_id(corpus[i]) for i in (0, 1, 3, 4)]
    for (_, clip), i in zip(samples, (0, 1, 3, 4)):
        assert isinstance(clip, codecprim.CodecClip)
        assert_equal_clips(clip, codecprim.codec_patches(corpus[i], **OPTIONS))


def test_two_workers_write_the_same_bytes(corpus, reference, tmp_path):
    summary = write_shards(corpus, tmp_path, samples_per_shard=2, workers=2, **OPTIONS)
    assert (summary.ok, summary.failed) == (4, 1)
    assert shard_bytes(tmp_path) == shard_bytes(reference[0])


_KILLED_RUN = """
import os, signal, sys, torch
torch.set_num_threads(1)
from codecprim.data import write_shards
paths, out, after = sys.argv[1].split("|"), sys.argv[2], int(sys.argv[3])
seen = []
def progress(row):
    seen.append(row)
    if len(seen) == after:
        os.kill(os.getpid(), signal.SIGKILL)
write_shards(paths, out, samples_per_shard=2, progress=progress, num_frames=8, size=56, budget=32)
"""


@pytest.mark.parametrize("after", [1, 3])
def test_sigkilled_run_resumes_into_identical_shards(corpus, reference, tmp_path, after):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    run = subprocess.run([sys.executable, "-c", _KILLED_RUN, "|".join(corpus), str(tmp_path), str(after)], env=env,
                         capture_output=True, text=True)
    assert run.returncode == -signal.SIGKILL, run.stderr
    visible = shard_bytes(tmp_path)
    expected = shard_bytes(reference[0])
    assert len(visible) == (after // 2) and all(visible[n] == expected[n] for n in visible)  # never a partial shard
    summary = write_shards(corpus, tmp_path, samples_per_shard=2, **OPTIONS)
    assert summary.resumed == after and (summary.ok, summary.failed) == (4, 1)
    assert shard_bytes(tmp_path) == expected
    assert [r.status for r in shard_index(tmp_path)].count("failed") == 1


def test_finished_corpus_is_not_redone_and_other_arguments_are_refused(corpus, reference):
    out, _ = reference
    before = shard_bytes(out)
    again = write_shards(corpus, out, samples_per_shard=2, **OPTIONS)
    assert again.resumed == 5 and shard_bytes(out) == before
    with pytest.raises(ValueError, match="other videos, recipe or options"):
        write_shards(corpus, out, samples_per_shard=2, num_frames=4, size=56, budget=32)


@pytest.mark.parametrize("kwargs, match", [
    (dict(recipe="dense"), "recipe must be one of"),
    (dict(nonsense=1), "unknown options for recipe 'onevision'"),
    (dict(budget=0), "budget must be a positive int"),
    (dict(workers=0), "workers must be a positive int"),
    (dict(samples_per_shard=0), "samples_per_shard must be a positive int"),
    (dict(name="a.b"), "name must be"),
])
def test_bad_arguments_raise_value_error(corpus, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        write_shards(corpus, tmp_path / "out", **kwargs)


def test_duplicate_paths_and_single_path_are_refused(corpus, tmp_path):
    with pytest.raises(ValueError, match="listed more than once"):
        write_shards([corpus[0], corpus[0]], tmp_path)
    with pytest.raises(ValueError, match="must be a list"):
        write_shards(corpus[0], tmp_path)


def test_cope_recipe_is_wired_when_its_module_exists(corpus, tmp_path):
    try:
        import codecprim.data.cope  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="needs codecprim.data.cope"):
            write_shards(corpus[:1], tmp_path, recipe="cope")
        return
    summary = write_shards(corpus[:2], tmp_path, recipe="cope")
    sample = next(decode_sample(m) for _, m in read_tar(summary.shards[0]))
    assert type(sample).__name__ == SHARD_RECIPES["cope"].sample_type


def test_ids_are_deterministic_and_safe():
    assert video_id("/data/a b.c/clip.v1.mp4") == video_id("/data/a b.c/clip.v1.mp4")
    assert video_id("/data/x/clip.mp4") != video_id("/data/y/clip.mp4")
    assert "." not in video_id("/data/a b.c/clip.v1.mp4") and video_id("x/+++.mp4").startswith("video-")
