"""OneVision-Encoder's offline stage 1 in one pass: per video, the visible patch indices, their positions and the
sampled frame ids, as the files its training reads.

``out_dir/<id>/visidx_thw.npy`` (K,) int64 flat ``t * Hg * Wg + row * Wg + col``; ``positions.npy`` (K, 3)
int64 ``(t, row, col)``; ``frame_ids.npy`` (T,) int64 display indices; ``meta.json`` (the video's index row,
the grid, patch size and the options). ``out_dir/failed.txt`` lists the videos that could not be read with
their cause, ``out_dir/index.jsonl`` every video. Ids are :func:`codecprim.data.shards.video_id`; the
per-video function is :func:`codecprim.codec_patches` (the ``"onevision"`` recipe) with ``options``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from .shards import SHARD_RECIPES, IndexRow, write_atomic, extract_all, video_id

__all__ = ["write_selection"]

# member of the stored sample -> stage-1 file name
_FILES = {"visible_indices.npy": "visidx_thw.npy", "positions.npy": "positions.npy",
          "frame_indices.npy": "frame_ids.npy"}


def write_selection(paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike, *, workers: int = 1,
                    progress: Callable[[IndexRow], None] | None = None, **options) -> list[IndexRow]:
    """Write the stage-1 files of every video; returns the index rows (failed videos included)."""
    paths = [os.fspath(p) for p in paths]
    SHARD_RECIPES["onevision"].check(options)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(i, p, video_id(p)) for i, p in enumerate(paths)]
    rows: dict[int, IndexRow] = {}
    for position, row, members in extract_all(jobs, "onevision", options, workers):
        vid = jobs[position][2]
        row = IndexRow(**dict(row, shard=""))
        if members is not None:
            folder = out / vid
            folder.mkdir(exist_ok=True)
            for member, name in _FILES.items():
                write_atomic(folder / name, members[f"{vid}.{member}"])
            meta = json.loads(members[f"{vid}.json"])
            meta = {"row": row.__dict__, "grid": meta["grid"], "patch": meta["patch"], "options": options}
            write_atomic(folder / "meta.json", json.dumps(meta, sort_keys=True, indent=1).encode())
        rows[position] = row
        if progress is not None:
            progress(row)
    ordered = [rows[i] for i in sorted(rows)]
    write_atomic(out / "index.jsonl", "".join(r.to_json() + "\n" for r in ordered).encode())
    write_atomic(out / "failed.txt", "".join(f"{r.path}\t{r.error_type}: {r.cause}\n" for r in ordered
                                              if r.status != "ok").encode())
    return ordered
