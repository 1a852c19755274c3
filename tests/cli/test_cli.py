"""The codecprim command, every subcommand run in process through codecprim.cli.main (and once as
``python -m codecprim``): outputs read back, summaries, --strict, error messages, and the pictures checked
for size and content."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import codecprim
from codecprim.cli import main
from codecprim.data import shard_index
from codecprim.data.shards import video_id
from media import make_not_video

SMALL = ["--option", "num_frames=8", "--option", "size=56", "--option", "budget=32"]


@pytest.fixture(scope="module")
def videos(media, tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    good = [media["h264_no_bframes"], media["mpeg4_native_bframes"]]
    for path in good:
        (folder / path.name).symlink_to(path)
    make_not_video(folder)
    return folder, sorted(str(p) for p in folder.iterdir())


def picture_ok(path, min_width=300, min_height=200):
    from PIL import Image

    image = np.asarray(Image.open(path).convert("RGB"))
    h, w, _ = image.shape
    assert w >= min_width and h >= min_height, (path, image.shape)
    body = image[60:-60]
    # not blank: varied colours over a real share of the picture (a residual of few levels has few colours)
    colours, counts = np.unique(body.reshape(-1, 3), axis=0, return_counts=True)
    assert body.std() > 5 and len(colours) >= 5 and counts.max() < 0.99 * counts.sum(), path
    title = image[:50]
    assert (title < 100).any(), f"{path}: no title text"


def test_info_prints_the_gop_table(media, capsys):
    assert main(["info", str(media["h264_no_bframes"]), str(media["mpeg2"])]) == 0
    out = capsys.readouterr().out
    assert "h264 320x240" in out and "mpeg2video" in out and "GOP  first  frames" in out
    assert out.count("IPPPPPPPPPPP") >= 4


def test_transcode_with_overrides(media, tmp_path, capsys):
    dst = tmp_path / "out.mp4"
    assert main(["transcode", str(media["h264_bframes"]), str(dst), "--recipe", "onevision-h264", "--set", "gop=10",
                 "--set", "preset=ultrafast", "-q"]) == 0
    assert "transcode:" in capsys.readouterr().out
    with codecprim.open(dst, residuals=False) as reader:
        assert reader.info.codec == "h264" and [g.num_frames for g in reader.gops] == [10] * 5


def test_extract_folder_with_a_bad_file(videos, tmp_path, capsys):
    folder, paths = videos
    out = tmp_path / "shards"
    assert main(["extract", str(folder), "-o", str(out), "--samples-per-shard", "2", "-q", *SMALL]) == 0
    captured = capsys.readouterr()
    assert "extract: 2 ok, 1 failed in" in captured.out and "videos/s" in captured.out
    assert "failed: " in captured.err and "not_a_video.mp4" in captured.err
    rows = shard_index(out)
    assert [r.path for r in rows] == paths and [r.status for r in rows].count("failed") == 1
    assert main(["extract", str(folder), "-o", str(out), "--samples-per-shard", "2", "--strict", "-q", *SMALL]) == 1
    assert "3 done by an earlier run" in capsys.readouterr().out


def test_extract_list_file_and_ray_engine_wiring(videos, tmp_path, monkeypatch, capsys):
    pytest.importorskip("ray")
    import codecprim.integrations.ray as ray_integration
    from codecprim.data import write_shards

    _, paths = videos
    listing = tmp_path / "videos.txt"
    listing.write_text("# corpus\n" + "\n".join(paths[:1]) + "\n")
    calls = []

    def fake(paths, out_dir, *, concurrency, address, **kwargs):  # the Ray pipeline itself: tests/data
        calls.append((paths, concurrency, address))
        return write_shards(paths, out_dir, **kwargs)

    monkeypatch.setattr(ray_integration, "write_shards", fake)
    assert main(["extract", str(listing), "-o", str(tmp_path / "s"), "--engine", "ray", "--workers", "3", "-q",
                 *SMALL]) == 0
    assert calls == [(paths[:1], 3, None)] and "1 ok, 0 failed" in capsys.readouterr().out


def test_select_writes_stage1_files(videos, tmp_path, capsys):
    _, paths = videos
    out = tmp_path / "sel"
    assert main(["select", *paths, "-o", str(out), "-q", *SMALL]) == 0
    assert "select: 2 ok, 1 failed" in capsys.readouterr().out
    good = [p for p in paths if not p.endswith("not_a_video.mp4")]
    for path in good:
        folder = out / video_id(path)
        clip = codecprim.codec_patches(path, num_frames=8, size=56, budget=32)
        assert torch.equal(torch.from_numpy(np.load(folder / "visidx_thw.npy")), clip.visible_indices)
        assert torch.equal(torch.from_numpy(np.load(folder / "positions.npy")), clip.positions)
        assert torch.equal(torch.from_numpy(np.load(folder / "frame_ids.npy")), clip.frame_indices)
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["grid"] == list(clip.grid) and meta["row"]["path"] == path
    assert "not_a_video.mp4" in (out / "failed.txt").read_text()
    assert len((out / "index.jsonl").read_text().splitlines()) == 3


def test_show_writes_readable_pictures(media, tmp_path, capsys):
    out = tmp_path / "pics"
    assert main(["show", str(media["h264_no_bframes"]), "-o", str(out), "--frames", "5,13", "--option",
                 "num_frames=16"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["gop.png"] + [f"{k}_{f:05d}.png" for k in ("mv", "residual", "saliency", "selected")
                                          for f in (5, 13)])
    for name in names:
        picture_ok(out / name)
    assert "wrote 9 pictures" in capsys.readouterr().out


def test_demo_prints_tables_and_writes_pictures(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "GOP  first  frames" in out and "IPPPPPPPPPPPPPPP" in out
    assert "onevision (I + K P-patches)" in out and "cope (I-frames + delta tokens)" in out and "dense-64" in out
    pictures = sorted(tmp_path.glob("*.png"))
    assert len(pictures) == 5
    for picture in pictures:
        picture_ok(picture)


@pytest.mark.parametrize("argv, message", [
    (["info", "missing.mp4"], "missing.mp4"),
    (["transcode", "a.mp4", "b.avi", "--recipe", "h266"], "unknown transcode recipe"),
    (["extract", "missing_dir", "-o", "x"], "missing_dir"),
    (["show", "v.mp4", "-o", "x", "--option", "oops"], "key=value"),
])
def test_errors_name_the_cause_and_exit_2(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"codecprim {argv[0]}: error:" in err and message in err


def test_python_dash_m_runs_the_command(media):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    run = subprocess.run([sys.executable, "-m", "codecprim", "info", str(media["h264_no_bframes"])], env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0 and "GOP  first" in run.stdout, run.stderr
