"""A corpus prepared once: WebDataset-compatible tar shards of per-video samples, resumable and atomic.

Layout of ``out_dir`` (``name`` defaults to ``"shard"``)::

    shard-000000.tar            samples of videos 0 .. S-1 of the input list (S = samples_per_shard)
    shard-000000.index.jsonl    one row per video of that shard, ok or failed (see IndexRow)
    shard-000001.tar ...
    index.jsonl                 every row, written when the run ends
    manifest.json               recipe, options and the video list's ids: a restart must match it

Decisions (documented contract):

* Ids are deterministic: the file's stem (``[A-Za-z0-9_-]`` only) and 12 hex digits of the SHA-1 of the path
  as given. Video ``i`` of the list always goes to shard ``i // samples_per_shard``, and each shard holds its
  samples in list order, so the shards depend on the list and the recipe only, never on worker timing.
* Each sample is a group of members sharing its id as basename (WebDataset's grouping): ``<id>.<field>.npy``
  for every tensor field of the recipe's sample dataclass, and ``<id>.json`` with the other fields, the sample
  type and the recipe. Tar headers carry no time, owner or mode of this machine, so equal samples give
  byte-identical shards.
* Atomic: a finished video's sample is kept in ``.partial/`` (temporary file, then rename); a shard is written
  to a hidden temporary file and renamed to ``name-NNNNNN.tar`` when all its videos are done, its index
  first. A run that is killed and started again with the same arguments skips finished shards and finished
  videos and produces the same shards as an uninterrupted run.
* A video that cannot be read is listed once as ``status="failed"`` with its cause and is not retried on a
  restart; it does not stop the run. Every other video still gets its sample.
* Recipes: ``"onevision"`` stores :func:`codecprim.codec_patches` (a :class:`~codecprim.patches.CodecClip`:
  visible indices, positions, frame indices, pixels ...); ``"cope"`` stores
  :func:`codecprim.data.cope.cope_sample` (a ``CopeSample``), available when that module is installed.
  ``recipe_options`` are the per-video function's keywords.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._intra_op import intra_op_threads
from ..ops._checks import check_positive_int

__all__ = ["SHARD_RECIPES", "IndexRow", "ShardRecipe", "WriteSummary", "decode_sample", "encode_sample",
           "extract_all", "extract_video", "shard_index", "video_id", "write_atomic", "write_shards", "ShardWriter"]


@dataclass(frozen=True)
class ShardRecipe:
    """How one recipe makes and checks a sample; the module that defines it is imported on first use."""

    name: str
    module: str        # module holding the per-video function and the sample type
    function: str      # per-video function: function(path, **options) -> sample dataclass
    sample_type: str   # dataclass name in ``module``
    checker: str = ""  # "module:function" validating the options in the main process, or ""
    frame_fields: tuple[str, ...] = ()  # index tensors whose distinct values are the frames a sample holds

    def load(self) -> tuple[Callable[..., Any], type]:
        import importlib

        try:
            module = importlib.import_module(self.module)
        except ImportError as err:
            raise ValueError(f"recipe {self.name!r} needs {self.module}, which this installation lacks ({err})") from err
        return getattr(module, self.function), getattr(module, self.sample_type)

    def check(self, options: dict) -> None:
        import inspect

        function, _ = self.load()
        known = set(inspect.signature(function).parameters) - {"path"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown options for recipe {self.name!r}: {unknown}; {self.function} takes {sorted(known)}")
        if self.checker:
            import importlib

            module, function = self.checker.split(":")
            getattr(importlib.import_module(module), function)(options)


SHARD_RECIPES = {
    "onevision": ShardRecipe("onevision", "codecprim.patches", "codec_patches", "CodecClip",
                             "codecprim.data.shards:_check_codec_patches", ("frame_indices",)),
    "cope": ShardRecipe("cope", "codecprim.data.cope", "cope_sample", "CopeSample", "",
                        ("keyframe_indices", "delta_last_indices")),
}


def _check_codec_patches(options: dict) -> None:
    import inspect

    from ..patches import _check_arguments, codec_patches

    defaults = {k: p.default for k, p in inspect.signature(codec_patches).parameters.items() if k != "path"}
    _check_arguments(**{k: v for k, v in {**defaults, **options}.items() if k != "device"})


def _recipe(name: str) -> ShardRecipe:
    if name not in SHARD_RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(map(repr, SHARD_RECIPES))}; got {name!r}")
    return SHARD_RECIPES[name]


@dataclass(frozen=True)
class IndexRow:
    """One video of a corpus, ok or failed."""

    id: str
    path: str
    shard: str                    # tar file name the video belongs to (failed videos too: where it would be)
    status: str                   # "ok" or "failed"
    cause: str                    # why it failed ("" when ok)
    error_type: str               # codecprim error class name of a failure ("" when ok)
    seconds: float                # extraction wall time
    frames: int | None            # frames in the video (None when it could not be read)
    frames_sampled: int | None    # frames the sample holds
    inter_frames: int | None      # P- and B-frames of the video
    motion_mean: float | None     # camera-compensated motion, pixels (codecprim.data.motion_stats)
    static_share: float | None    # share of inter frames with no motion at all

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


@dataclass(frozen=True)
class WriteSummary:
    out_dir: str
    shards: list[str]   # every shard of the corpus, in order
    ok: int             # videos with a sample (this run and earlier runs)
    failed: int
    resumed: int        # videos found done by an earlier run and skipped
    seconds: float      # this run's wall time

    @property
    def videos_per_second(self) -> float:
        done = self.ok + self.failed - self.resumed
        return done / self.seconds if self.seconds > 0 else 0.0


def video_id(path: str | os.PathLike) -> str:
    """The deterministic id of ``path`` (its sanitised stem and a hash of the path as given)."""
    text = os.fspath(path)
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(text).stem)[:48].strip("_") or "video"
    return f"{stem}-{hashlib.sha1(text.encode()).hexdigest()[:12]}"


# --- sample <-> tar members ------------------------------------------------------------------------------------

def encode_sample(sample_id: str, sample: Any, recipe: str) -> dict[str, bytes]:
    """Members of one sample: ``<id>.<field>.npy`` per tensor field (``<field>.<i>`` for lists of tensors) and
    ``<id>.json`` with the rest."""
    if not dataclasses.is_dataclass(sample):
        raise TypeError(f"a shard sample must be a dataclass; got {type(sample).__name__}")
    members: dict[str, bytes] = {}
    meta: dict[str, Any] = {"__type__": type(sample).__name__, "__recipe__": recipe, "__lists__": {},
                            "__tuples__": []}
    for f in dataclasses.fields(sample):
        value = getattr(sample, f.name)
        if isinstance(value, torch.Tensor):
            members[f"{sample_id}.{f.name}.npy"] = _npy(value)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
            meta["__lists__"][f.name] = len(value)
            for i, v in enumerate(value):
                members[f"{sample_id}.{f.name}.{i}.npy"] = _npy(v)
        else:
            if isinstance(value, tuple):
                meta["__tuples__"].append(f.name)
            meta[f.name] = value
    members[f"{sample_id}.json"] = json.dumps(meta, sort_keys=True).encode()
    return members


def _npy(tensor: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, tensor.detach().cpu().numpy(), allow_pickle=False)
    return buffer.getvalue()


def decode_sample(members: dict[str, bytes]) -> Any:
    """The sample dataclass back from its members (keys are the member names after ``<id>.``)."""
    meta = json.loads(members["json"])
    recipe = _recipe(meta.pop("__recipe__"))
    _, sample_type = recipe.load()
    if meta.pop("__type__") != sample_type.__name__:
        raise ValueError(f"shard sample of recipe {recipe.name!r} is not a {sample_type.__name__}")
    lists, tuples = meta.pop("__lists__"), meta.pop("__tuples__")
    values = {k: tuple(v) if k in tuples else v for k, v in meta.items()}
    for f in dataclasses.fields(sample_type):
        if f.name in lists:
            values[f.name] = [_tensor(members[f"{f.name}.{i}.npy"]) for i in range(lists[f.name])]
        elif f"{f.name}.npy" in members:
            values[f.name] = _tensor(members[f"{f.name}.npy"])
    return sample_type(**values)


def _tensor(data: bytes) -> torch.Tensor:
    return torch.from_numpy(np.load(io.BytesIO(data), allow_pickle=False))


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = len(data), 0, 0o644, 0, 0, "", ""
    tar.addfile(info, io.BytesIO(data))


def read_tar(path: str | os.PathLike) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(id, members)`` of every sample of a shard, in order (members keyed by the name after ``<id>.``)."""
    current, members = None, {}
    with tarfile.open(path, "r") as tar:
        for info in tar:
            key, _, suffix = info.name.partition(".")
            if key != current and current is not None:
                yield current, members
                members = {}
            current = key
            members[suffix] = tar.extractfile(info).read()
    if current is not None:
        yield current, members


# --- one video -------------------------------------------------------------------------------------------------

@intra_op_threads(1)  # an in-process run (workers=1) would otherwise spin-wait on torch's default threads
def extract_video(path: str, sample_id: str, recipe: str, options: dict) -> tuple[dict, dict[str, bytes] | None]:
    """The per-video unit of work of every engine: ``(row fields, members)``; members are None on failure.

    Only errors about the video (codecprim errors, and OSError/ValueError from reading it) become failures;
    anything else is a bug and propagates.
    """
    from ..errors import CodecprimError
    from .motion_stats import motion_stats

    chosen = _recipe(recipe)
    function, _ = chosen.load()
    start = time.perf_counter()
    row: dict[str, Any] = dict(id=sample_id, path=path, status="ok", cause="", error_type="", frames=None,
                               frames_sampled=None, inter_frames=None, motion_mean=None, static_share=None)
    try:
        sample = function(path, **options)
        members = encode_sample(sample_id, sample, recipe)
        stats = motion_stats(path)
    except (CodecprimError, OSError, ValueError) as error:
        cause = getattr(error, "cause", None) or str(error)
        row.update(status="failed", cause=cause, error_type=type(error).__name__)
        members = None
    else:
        sampled = torch.cat([getattr(sample, name).reshape(-1) for name in chosen.frame_fields])
        row.update(frames=stats.frames, inter_frames=stats.inter_frames, motion_mean=stats.motion_mean,
                   static_share=stats.static_share, frames_sampled=int(sampled.unique().numel()))
    row["seconds"] = time.perf_counter() - start
    return row, members


# --- the writer ------------------------------------------------------------------------------------------------

class ShardWriter:
    """Plans a corpus and writes it as results arrive, in any order (every engine feeds one of these)."""

    def __init__(self, paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike, *, recipe: str,
                 samples_per_shard: int, name: str, options: dict) -> None:
        if isinstance(paths, (str, os.PathLike)):
            raise ValueError("paths must be a list of videos (codecprim.data.sources.video_paths reads a folder or "
                             "a list file)")
        self.recipe = _recipe(recipe)
        self.recipe.check(options)
        check_positive_int("samples_per_shard", samples_per_shard)
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name or ""):
            raise ValueError(f"name must be letters, digits, '_' or '-'; got {name!r}")
        self.paths = [os.fspath(p) for p in paths]
        self.ids = [video_id(p) for p in self.paths]
        self.positions = {v: i for i, v in enumerate(self.ids)}
        if len(set(self.ids)) != len(self.ids):
            seen: set[str] = set()
            dup = next(p for p, i in zip(self.paths, self.ids) if i in seen or seen.add(i))
            raise ValueError(f"{dup} is listed more than once")
        self.options, self.name, self.per_shard = dict(options), name, samples_per_shard
        self.out = Path(out_dir)
        self.partial = self.out / ".partial"
        self.partial.mkdir(parents=True, exist_ok=True)
        self._check_manifest()
        self.shard_count = -(-len(self.paths) // samples_per_shard)
        self.rows: dict[int, dict] = {}
        self.members: set[int] = set()
        self.resumed = 0
        self._resume()

    def shard_name(self, k: int) -> str:
        return f"{self.name}-{k:06d}.tar"

    def _check_manifest(self) -> None:
        manifest = dict(recipe=self.recipe.name, options=self.options, name=self.name,
                        samples_per_shard=self.per_shard, ids=self.ids)
        try:
            text = json.dumps(manifest, sort_keys=True)
        except TypeError as err:
            raise ValueError(f"recipe options must be JSON values (numbers, strings, lists, dicts): {err}") from err
        path = self.out / "manifest.json"
        if path.exists():
            if json.loads(path.read_text()) != json.loads(text):
                raise ValueError(f"{self.out} holds a corpus made with other videos, recipe or options; use an empty "
                                 "folder or the same arguments to resume")
            return
        write_atomic(path, text.encode())

    def _resume(self) -> None:
        for stale in list(self.out.glob(".*.tmp-*")) + list(self.partial.glob("*.tmp-*")):
            stale.unlink()
        for k in range(self.shard_count):
            if (self.out / self.shard_name(k)).exists():
                for line in (self.out / self.shard_name(k)).with_suffix(".index.jsonl").read_text().splitlines():
                    row = json.loads(line)
                    self.rows[self.positions[row["id"]]] = row
                for i in self._videos(k):
                    for leftover in (self.partial / f"{self.ids[i]}.tar", self.partial / f"{self.ids[i]}.json"):
                        leftover.unlink(missing_ok=True)
        for i, vid in enumerate(self.ids):
            row_path = self.partial / f"{vid}.json"
            if i not in self.rows and row_path.exists():
                self.rows[i] = json.loads(row_path.read_text())
                if self.rows[i]["status"] == "ok":
                    self.members.add(i)
        self.resumed = len(self.rows)

    def _videos(self, k: int) -> range:
        return range(k * self.per_shard, min(len(self.paths), (k + 1) * self.per_shard))

    def todo(self) -> list[tuple[int, str, str]]:
        """``(position, path, id)`` of every video not yet done."""
        return [(i, p, v) for i, (p, v) in enumerate(zip(self.paths, self.ids)) if i not in self.rows]

    def add(self, position: int, row: dict, members: dict[str, bytes] | None) -> IndexRow:
        """Keep one video's result (in ``.partial/``) and write its shard if that completes it."""
        row = dict(row, shard=self.shard_name(position // self.per_shard))
        vid = self.ids[position]
        if members is not None:
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
                for member, data in members.items():
                    _tar_add(tar, member, data)
            write_atomic(self.partial / f"{vid}.tar", buffer.getvalue())
            self.members.add(position)
        write_atomic(self.partial / f"{vid}.json", json.dumps(row, sort_keys=True).encode())
        self.rows[position] = row
        k = position // self.per_shard
        if all(i in self.rows for i in self._videos(k)):
            self._write_shard(k)
        return IndexRow(**row)

    def _write_shard(self, k: int) -> None:
        target = self.out / self.shard_name(k)
        if target.exists():
            return
        lines = "".join(json.dumps(self.rows[i], sort_keys=True) + "\n" for i in self._videos(k))
        write_atomic(target.with_suffix(".index.jsonl"), lines.encode())

        def fill(f) -> None:  # streamed to the temporary file: a shard need not fit in memory
            with tarfile.open(fileobj=f, mode="w", format=tarfile.GNU_FORMAT) as tar:
                for i in self._videos(k):
                    if i in self.members:
                        with tarfile.open(self.partial / f"{self.ids[i]}.tar", "r") as part:
                            for info in part:
                                _tar_add(tar, info.name, part.extractfile(info).read())

        write_atomic(target, fill)  # the shard appears last, complete
        for i in self._videos(k):
            (self.partial / f"{self.ids[i]}.tar").unlink(missing_ok=True)
            (self.partial / f"{self.ids[i]}.json").unlink(missing_ok=True)

    def finish(self, seconds: float) -> WriteSummary:
        for k in range(self.shard_count):
            if all(i in self.rows for i in self._videos(k)):
                self._write_shard(k)
        rows = [self.rows[i] for i in sorted(self.rows)]
        write_atomic(self.out / "index.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())
        ok = sum(r["status"] == "ok" for r in rows)
        return WriteSummary(out_dir=str(self.out), shards=[str(self.out / self.shard_name(k))
                                                           for k in range(self.shard_count)],
                            ok=ok, failed=len(rows) - ok, resumed=self.resumed, seconds=seconds)


def write_atomic(path: Path, data: bytes | Callable[[Any], None]) -> None:
    """Write ``data`` (bytes, or a function filling an open binary file) to ``path`` through a hidden
    temporary file in the same folder, renamed onto ``path`` once flushed to disk."""
    temp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    with open(temp, "wb") as f:
        if callable(data):
            data(f)
        else:
            f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)


def _worker_init() -> None:
    # One intra-op thread per worker process: N workers on N cores, not N x cores threads.
    torch.set_num_threads(1)


def extract_all(jobs: list[tuple[int, str, str]], recipe: str, options: dict,
            workers: int) -> Iterator[tuple[int, dict, dict[str, bytes] | None]]:
    """Results of ``jobs`` from ``workers`` processes as they finish (at most 4 per worker in flight)."""
    if workers == 1:
        for position, path, vid in jobs:
            yield (position, *extract_video(path, vid, recipe, options))
        return
    import multiprocessing

    # spawn: a forked child inherits torch's and FFmpeg's thread pools in whatever state the parent left them.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_init) as pool:
        queue = iter(jobs)
        running: dict = {}
        while True:
            while len(running) < 4 * workers:
                job = next(queue, None)
                if job is None:
                    break
                running[pool.submit(extract_video, job[1], job[2], recipe, options)] = job[0]
            if not running:
                return
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                yield (running.pop(future), *future.result())


def write_shards(paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike, *, recipe: str = "onevision",
                 workers: int = 1, samples_per_shard: int = 256, name: str = "shard",
                 progress: Callable[[IndexRow], None] | None = None, **recipe_options) -> WriteSummary:
    """Extract every video with ``recipe`` into WebDataset shards in ``out_dir`` (see the module docstring).

    Args:
        paths: the videos (a list; :func:`codecprim.data.sources.video_paths` reads folders and list files).
        recipe: ``"onevision"`` or ``"cope"``.
        workers: processes extracting in parallel (1: in this process).
        samples_per_shard: videos per shard (failed ones count: shard ``k`` is always videos ``k*S .. k*S+S-1``).
        name: shard file prefix.
        progress: called with each video's :class:`IndexRow` as it finishes.
        recipe_options: keywords of the recipe's per-video function.
    Returns:
        a :class:`WriteSummary`. Restarting with the same arguments resumes an interrupted run.
    """
    start = time.perf_counter()
    check_positive_int("workers", workers)
    writer = ShardWriter(paths, out_dir, recipe=recipe, samples_per_shard=samples_per_shard, name=name,
                         options=recipe_options)
    for position, row, members in extract_all(writer.todo(), recipe, writer.options, workers):
        done = writer.add(position, row, members)
        if progress is not None:
            progress(done)
    return writer.finish(time.perf_counter() - start)


def shard_index(out_dir: str | os.PathLike) -> list[IndexRow]:
    """Every video of the finished shards in ``out_dir``, in list order."""
    out = Path(out_dir)
    if not out.is_dir():
        raise FileNotFoundError(f"{out}: no such corpus folder")
    rows = []
    for index in sorted(out.glob("*.index.jsonl")):
        if index.with_suffix("").with_suffix(".tar").exists():
            rows.extend(IndexRow(**json.loads(line)) for line in index.read_text().splitlines())
    return rows
