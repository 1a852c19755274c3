"""The ``codecprim`` command (also ``python -m codecprim``): info, transcode, extract, select, show, demo.

Thin on purpose: each subcommand parses its arguments and calls the library (codecprim.transcode,
codecprim.data.write_shards, codecprim.integrations.ray, codecprim.pictures, codecprim.demo). Long work shows a
tqdm bar and ends with a summary line (ok / failed, seconds, videos/s). Errors name the file and the cause; with
``--strict`` the exit status is 1 when any video failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

__all__ = ["main"]


def _options(pairs: list[str]) -> dict:
    """``key=value`` pairs; values are read as JSON when they parse (numbers, null, lists), else kept as text."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"options are key=value; got {pair!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _videos(sources: list[str]) -> list[str]:
    from .data.sources import video_paths

    return [p for source in sources for p in video_paths(source)]


def _bar(total: int, unit: str, quiet: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # progress bars are a nicety (the cli extra): the summary line still comes
        return None
    return tqdm(total=total, unit=unit, disable=quiet, file=sys.stderr, dynamic_ncols=True)


def _summary(what: str, ok: int, failed: int, seconds: float, extra: str = "") -> str:
    rate = (ok + failed) / seconds if seconds > 0 else 0.0
    return f"{what}: {ok} ok, {failed} failed in {seconds:.1f} s ({rate:.2f} videos/s){extra}"


def _run_info(args) -> int:
    from .demo import gop_table

    for video in args.videos:
        print(gop_table(video))
    return 0


def _run_transcode(args) -> int:
    from .transcode import transcode

    bar = _bar(None, "frame", args.quiet)

    def progress(done, expected):
        if bar is not None:
            bar.total = expected if expected > 0 else None
            bar.n = done
            bar.refresh()

    result = transcode(args.src, args.dst, recipe=args.recipe, progress=progress, **_options(args.set))
    if bar is not None:
        bar.close()
    print(f"transcode: {args.src} -> {result.path} ({result.codec}, {result.fps} fps, {result.frames_encoded} frames)"
          f" in {result.seconds:.1f} s")
    return 0


def _report(rows, args) -> int:
    failed = [r for r in rows if r.status != "ok"]
    for r in failed:
        print(f"failed: {r.path}: {r.cause}", file=sys.stderr)
    return 1 if failed and args.strict else 0


def _run_extract(args) -> int:
    from .data import shard_index, write_shards

    paths = _videos(args.inputs)
    bar = _bar(len(paths), "video", args.quiet)
    common = dict(recipe=args.recipe, samples_per_shard=args.samples_per_shard,
                  progress=(lambda row: bar.update(1)) if bar is not None else None, **_options(args.option))
    if args.engine == "ray":
        from .integrations.ray import write_shards as ray_write_shards

        summary = ray_write_shards(paths, args.output, concurrency=args.workers, address=args.address, **common)
    else:
        summary = write_shards(paths, args.output, workers=args.workers, **common)
    if bar is not None:
        bar.close()
    resumed = f", {summary.resumed} done by an earlier run" if summary.resumed else ""
    print(_summary("extract", summary.ok, summary.failed, summary.seconds,
                   f"{resumed} -> {len(summary.shards)} shards in {summary.out_dir}"))
    return _report(shard_index(args.output), args)


def _run_select(args) -> int:
    from .data.selection import write_selection

    paths = _videos(args.inputs)
    bar = _bar(len(paths), "video", args.quiet)
    start = time.perf_counter()
    rows = write_selection(paths, args.output, workers=args.workers,
                           progress=(lambda row: bar.update(1)) if bar is not None else None, **_options(args.option))
    if bar is not None:
        bar.close()
    ok = sum(r.status == "ok" for r in rows)
    print(_summary("select", ok, len(rows) - ok, time.perf_counter() - start, f" -> {args.output}"))
    return _report(rows, args)


def _run_show(args) -> int:
    from .pictures import show

    frames = [int(f) for f in args.frames.split(",")] if args.frames else None
    written = show(args.video, args.output, frames=frames, **_options(args.option))
    print(f"show: wrote {len(written)} pictures to {args.output}: " + ", ".join(p.name for p in written))
    return 0


def _run_demo(args) -> int:
    from .demo import run

    run(args.output, video=args.video)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codecprim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ffmpeg-log-level", default="error", help="FFmpeg's own messages (default: error)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="stream info and the GOP table of each video")
    p.add_argument("videos", nargs="+")
    p.set_defaults(run=_run_info)

    p = sub.add_parser("transcode", help="re-encode with a recipe's GOP structure (cope, onevision, onevision-h264)")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--recipe", required=True)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe option (repeatable)")
    p.set_defaults(run=_run_transcode)

    for name, helptext in (("extract", "videos -> resumable WebDataset shards with an index"),
                           ("select", "OneVision stage 1: visible indices, positions and frame ids per video")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("inputs", nargs="+", metavar="VIDEOS|DIR|LIST")
        p.add_argument("-o", "--output", required=True)
        p.add_argument("--workers", type=int, default=1)
        p.add_argument("--option", action="append", metavar="KEY=VALUE",
                       help="a keyword of the recipe's per-video function, e.g. num_frames=16 (repeatable)")
        p.add_argument("--strict", action="store_true", help="exit with status 1 if any video failed")
        if name == "extract":
            p.add_argument("--recipe", default="onevision", choices=("onevision", "cope"))
            p.add_argument("--samples-per-shard", type=int, default=256)
            p.add_argument("--engine", default="process", choices=("process", "ray"))
            p.add_argument("--address", default=None, help="Ray cluster address (--engine ray)")
        p.set_defaults(run=_run_extract if name == "extract" else _run_select)

    p = sub.add_parser("show", help="PNG pictures of a video's vectors, residual, saliency, selection and GOPs")
    p.add_argument("video")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--frames", help="comma-separated frame indices (default: a P-frame a third of the way in)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="a codec_patches keyword (repeatable)")
    p.set_defaults(run=_run_show)

    p = sub.add_parser("demo", help="make a clip, print its GOP table and token budgets, write the pictures")
    p.add_argument("-o", "--output", default="codecprim_demo")
    p.add_argument("--video", help="use this video instead of making one")
    p.set_defaults(run=_run_demo)
    for p in sub.choices.values():
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from . import set_ffmpeg_log_level
    from .errors import CodecprimError

    set_ffmpeg_log_level(args.ffmpeg_log_level)
    try:
        return args.run(args)
    except (CodecprimError, ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"codecprim {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
