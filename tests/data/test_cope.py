"""The CoPE recipe: CopeSample structure against the reader's own GOP table and frame types, the fusion rules
at delta size (one residual definition, never across an I-frame, B-frames skipped), what several references
do, GOP sampling, and real DataLoaders (0 and 2 workers) with bad files."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import codecprim
from codecprim.data import CopeDataset, CopeSample, Failure, collate_cope, cope_sample
from codecprim.data.cope import plan_cope
from codecprim.ops.dense import dense_field
from codecprim.ops.fusion import field_at_size, fuse_fields, fused_residual
from codecprim.ops.gather import frames_to_rgb
from codecprim.ops.resize import resize_field, resize_plane, resize_yuv

from media import make_not_video, make_truncated

SMALL = dict(image_size=32, delta_size=32)


def anchors_before(types: str, gop, index: int) -> int:
    """The I- or P-frame before ``index`` in its GOP (the decoder's past reference), from the frame types."""
    for j in range(index - 1, gop.first_frame - 1, -1):
        if types[j] != "B":
            return j
    raise AssertionError(f"frame {index} has no anchor before it in its GOP")


def check_structure(sample: CopeSample, types: str, gops, pts: torch.Tensor, fuse: int, kept=None) -> None:
    """Every rule of the layout, checked from the reader's GOP table and frame types alone."""
    keys = sample.keyframe_indices.tolist()
    firsts, lasts = sample.delta_indices.tolist(), sample.delta_last_indices.tolist()
    refs = sample.delta_reference_indices.tolist()
    gop_of = {i: g.index for g in gops for i in range(g.first_frame, g.first_frame + g.num_frames)}
    kept = [g.index for g in gops] if kept is None else kept
    covered = []
    for first, last, ref in zip(firsts, lasts, refs):
        assert gop_of[ref] == gop_of[first] == gop_of[last]  # a group stays in its GOP
        assert ref == anchors_before(types, gops[gop_of[first]], first)
        members = [i for i in range(first, last + 1) if types[i] != "B"]
        assert members and members[0] == first and members[-1] == last and len(members) <= fuse
        assert all(types[i] == "P" for i in members)  # never an I-frame (nor a B-frame) inside a group
        assert not set(members) & set(keys)
        covered += members
    assert keys == sorted(keys) and firsts == sorted(firsts)
    for g in kept:
        gop = gops[g]
        frames = range(gop.first_frame, gop.first_frame + gop.num_frames)
        anchors = [i for i in frames if types[i] != "B"]
        assert anchors[0] in keys and {i for i in frames if types[i] == "I"} <= set(keys)
        # every anchor is shown once: as a keyframe or inside exactly one group
        assert sorted(set(anchors) - set(keys)) == sorted(i for i in covered if gop_of[i] == g)
    assert len(covered) == len(set(covered))
    assert all(types[i] != "B" for i in keys + covered)
    assert torch.equal(sample.keyframe_pts_seconds, pts[sample.keyframe_indices])
    assert torch.equal(sample.delta_pts_seconds, pts[sample.delta_indices])
    k, p = len(keys), len(firsts)
    assert sample.keyframes.shape == (k, 3, 32, 32) and sample.keyframes.dtype == torch.uint8
    assert sample.motion.shape == (p, 32, 32, 2) and sample.motion.dtype == torch.float32
    assert sample.residual.shape == (p, 32, 32) and sample.residual.dtype == torch.int16


@pytest.mark.parametrize("name", ["h264_no_bframes", "h264_bframes", "h264_scenecut", "mpeg4_native_bframes",
                                  "mpeg2", "real:bikes", "real:carphone_pristine"])
def test_structure_matches_the_readers_gop_table_and_frame_types(media, real_clips, name):
    path = real_clips[name[5:]] if name.startswith("real:") else media[name]
    with codecprim.open(path) as reader:
        types, gops, pts = reader.pict_types, reader.gops, reader.pts_seconds
    fuse = 3
    sample = cope_sample(path, fuse=fuse, **SMALL)
    check_structure(sample, types, gops, pts, fuse)
    if "B" in types:  # a P-frame after B-frames steps over them to its anchor
        assert bool((sample.delta_indices - sample.delta_reference_indices > 1).any())


def test_an_iframe_inside_a_gop_is_a_keyframe_and_ends_the_group():
    """Real streams here start a GOP at every I-frame (the parser's table); a non-IDR I-frame inside one is
    planned from the frame types alone."""
    types = "IPPPPPIPPPBBP"
    gops = [codecprim.Gop(index=0, first_frame=0, num_frames=len(types), pts_seconds=0.0)]
    plan = plan_cope(types, gops, fuse=30)
    assert plan.keyframes == (0, 6)
    assert [(g.reference, g.frames) for g in plan.groups] == [(0, (1, 2, 3, 4, 5)), (6, (7, 8, 9, 12))]
    plan = plan_cope(types, gops, fuse=2)
    assert [(g.reference, g.frames) for g in plan.groups] == [
        (0, (1, 2)), (2, (3, 4)), (4, (5,)), (6, (7, 8)), (8, (9, 12))]
    leading = [codecprim.Gop(index=0, first_frame=0, num_frames=4, pts_seconds=0.0, starts_with_iframe=False)]
    assert plan_cope("BPPP", leading, fuse=30).keyframes == (1,)  # a cut stream: its first anchor is shown


def test_keyframes_per_gop_spreads_rgb_frames_over_the_anchors(media):
    path = media["h264_no_bframes"]  # GOPs of 12 anchors
    with codecprim.open(path) as reader:
        types, gops, pts = reader.pict_types, reader.gops, reader.pts_seconds
    sample = cope_sample(path, keyframes_per_gop=3, fuse=30, **SMALL)
    check_structure(sample, types, gops, pts, 30)
    for gop in gops:
        keys = [i for i in sample.keyframe_indices.tolist() if gop.first_frame <= i < gop.first_frame + gop.num_frames]
        n, m = gop.num_frames, min(3, gop.num_frames)
        assert keys == [gop.first_frame + j * n // m for j in range(m)]


def test_keyframes_are_the_rgb_of_their_frames(media):
    """Against PyAV's own decode of the same frame: its YUV planes, area-resized and converted by the one RGB
    converter (ops.gather, checked against float BT.601 in tests/ops), give the keyframe bit for bit."""
    av = pytest.importorskip("av")
    path = media["h264_bframes"]
    sample = cope_sample(path, keyframes_per_gop=3, image_size=64, delta_size=32)
    with av.open(str(path)) as container:
        planes = [f.to_ndarray(format="yuv420p") for f in container.decode(video=0)]  # (H * 3/2, W) each
    assert len(sample.keyframe_indices) >= 4
    for rgb, index in zip(sample.keyframes, sample.keyframe_indices.tolist()):
        yuv = torch.from_numpy(np.ascontiguousarray(planes[index]))
        height, width = yuv.shape[0] * 2 // 3, yuv.shape[1]
        luma = yuv[:height]
        chroma = yuv[height:].reshape(2, height // 2, width // 2)  # (Cb, Cr)
        small_luma, small_chroma = resize_yuv(luma[None], chroma[None], 64)
        assert torch.equal(rgb, frames_to_rgb(small_luma, small_chroma, [0])[0]), index


def test_groups_are_fused_at_delta_size_with_one_residual_definition(media):
    """A group's field is the chain of its frames' fields at delta size; its residual is last minus the warped
    reference, both lumas at delta size: for fuse=1 (s = 1) and fuse=4 (s <= 4) alike."""
    path = media["h264_no_bframes"]
    with codecprim.open(path) as reader:
        frames = {f.index: f for f in reader}
        height, width = reader.info.height, reader.info.width
    for fuse in (1, 4):
        sample = cope_sample(path, fuse=fuse, image_size=32, delta_size=48)
        for p in range(sample.motion.shape[0]):
            first, last = int(sample.delta_indices[p]), int(sample.delta_last_indices[p])
            ref = int(sample.delta_reference_indices[p])
            steps = torch.stack([field_at_size(frames[i].motion_vectors, height, width, 48)[0]
                                 for i in range(first, last + 1)])
            field, _ = fuse_fields(steps)
            assert torch.equal(sample.motion[p], field)
            expected = fused_residual(resize_plane(frames[last].luma, 48), resize_plane(frames[ref].luma, 48), field)
            assert torch.equal(sample.residual[p], expected)
        if fuse == 1:
            assert torch.equal(sample.delta_indices, sample.delta_last_indices)
        else:
            assert int((sample.delta_last_indices - sample.delta_reference_indices).max()) == 4


@pytest.mark.parametrize("name", ["h264_no_bframes", "h264_odd_size", "mpeg4_native_bframes"])
def test_field_at_size_equals_the_full_resolution_field_resized(media, name):
    """The 4-pixel grid shortcut gives the area mean of the full-resolution field (and odd sizes fall back)."""
    with codecprim.open(media[name]) as reader:
        height, width = reader.info.height, reader.info.width
        frames = [f for f in reader if f.pict_type == "P"][:4]
    for frame in frames:
        dense = dense_field(frame.motion_vectors, height, width)
        want = resize_field(dense.field_px, (40, 56), mode="area", mask=dense.mask)
        got, _ = field_at_size(frame.motion_vectors, height, width, (40, 56))
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def _encode_texture_pan(folder, ref: int):
    """A still grain-textured scene panned by (1.5, 1.0) px/frame, H.264 without B-frames, ``ref`` references."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg CLI is needed to encode the test clip")
    path = folder / f"pan_testsrc2_grain_h264_ref{ref}.mp4"
    scene = ("testsrc2=s=1280x960:r=25,noise=alls=40:allf=u,trim=end_frame=1,loop=loop=40:size=1,"
             "setpts=N/25/TB,crop=640:480:x='n*3':y='n*2':exact=1,scale=320:240:flags=area")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", scene, "-frames:v", "32",
                    "-c:v", "libx264", "-threads", "1", "-bf", "0", "-g", "300", "-x264-params", f"ref={ref}",
                    "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def _per_step_motion(sample: CopeSample) -> torch.Tensor:
    steps = (sample.delta_last_indices - sample.delta_reference_indices).float()  # (P,) frames spanned
    inner = sample.motion[:, 8:-8, 8:-8].reshape(len(steps), -1, 2)
    return inner.median(dim=1).values / steps[:, None]  # (P, 2) per-frame motion, delta pixels


def test_fused_field_tracks_a_pan_and_several_references_are_the_documented_approximation(tmp_path):
    """One reference: the fused field is the pan (1.5, 1.0) px/frame scaled to 64x64, for s = 1 and s = 4.
    Three references (x264's default): each vector is read as one frame's motion (FFmpeg exports no reference
    index), so blocks that x264 predicted from an older frame overstate the step; on this clip x264 picks
    t-2 for most blocks and the median per-frame motion doubles. Measured: ref=1 (0.300, 0.267) both s;
    ref=3 (0.590, 0.525); mean |residual| 1.63/1.47 (ref=1, s=1/4) vs 2.30/5.32 (ref=3)."""
    truth = torch.tensor([1.5 * 64 / 320, 1.0 * 64 / 240])
    residuals = {}
    for ref in (1, 3):
        path = _encode_texture_pan(tmp_path, ref)
        for fuse in (1, 4):
            sample = cope_sample(path, fuse=fuse, image_size=32, delta_size=64)
            motion = _per_step_motion(sample)
            if ref == 1:
                torch.testing.assert_close(motion, truth.expand_as(motion), rtol=0, atol=0.02)
            else:
                ratio = motion.median(dim=0).values / truth
                assert bool(((ratio > 1.2) & (ratio < 3.0)).all()), ratio  # k-frame vectors read as one
            residuals[ref, fuse] = float(sample.residual[:, 8:-8, 8:-8].float().abs().mean())
    assert residuals[1, 4] <= 1.3 * residuals[1, 1] + 0.5
    assert residuals[3, 4] > residuals[1, 4]  # the cost of the approximation shows in the residual


def test_max_gops_keeps_one_gop_per_stratum(real_clips):
    path = real_clips["bikes"]  # 6 GOPs
    with codecprim.open(path) as reader:
        types, gops, pts = reader.pict_types, reader.gops, reader.pts_seconds
    assert len(gops) == 6
    assert plan_cope(types, gops, max_gops=3, seed=None).gops == (0, 2, 4)
    drawn = {plan_cope(types, gops, max_gops=3, seed=s).gops for s in range(12)}
    assert all(g[0] in (0, 1) and g[1] in (2, 3) and g[2] in (4, 5) for g in drawn) and len(drawn) > 1
    assert plan_cope(types, gops, max_gops=6, seed=5).gops == tuple(range(6))
    sample = cope_sample(path, max_gops=3, seed=7, fuse=8, **SMALL)
    kept = plan_cope(types, gops, max_gops=3, seed=7).gops
    check_structure(sample, types, gops, pts, 8, kept=kept)
    assert {int(i) for i in sample.keyframe_indices} == {gops[g].first_frame for g in kept}


def test_bad_arguments(media):
    path = media["h264_bframes"]
    with pytest.raises(ValueError, match="b_frames must be one of 'skip'"):
        cope_sample(path, b_frames="keep")
    with pytest.raises(ValueError, match="fuse must be a positive int"):
        CopeDataset([path], fuse=0)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        cope_sample(path, seed=-2)
    with pytest.raises(ValueError, match="motion must be one of 'auto', 'estimated'"):
        CopeDataset([path], motion="codec")


@pytest.fixture(scope="module")
def loader_paths(media, real_clips, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cope_loader")
    return [str(p) for p in (
        media["h264_bframes"], make_not_video(folder), real_clips["bikes"], folder / "missing.mp4",
        media["mpeg4_native_bframes"], make_truncated(folder), media["hevc"],
    )]


@pytest.mark.parametrize("workers, context", [(0, None), (2, "fork"), (2, "spawn")])
def test_loader_equals_the_per_video_function_and_lists_failures(loader_paths, workers, context):
    options = dict(max_gops=2, fuse=4, **SMALL)
    dataset = CopeDataset(loader_paths, seed=3, **options)
    dataset.set_epoch(1)
    expected = {}
    for i, path in enumerate(loader_paths):
        try:
            expected[path] = cope_sample(path, seed=dataset.sample_seed(i), **options)
        except codecprim.CodecprimError as error:
            expected[path] = error
    bad = sorted(p for p, e in expected.items() if isinstance(e, Exception))
    assert set(bad) >= {loader_paths[1], loader_paths[3]}
    assert not isinstance(expected[loader_paths[6]], Exception)  # HEVC: vectors estimated (test_cope_estimated.py)
    loader = DataLoader(dataset, batch_size=3, num_workers=workers, multiprocessing_context=context,
                        collate_fn=collate_cope, timeout=120 if workers else 0)
    failures, seen = [], []
    for batch in loader:
        failures += batch.failures
        for b, path in enumerate(batch.paths):
            want = expected[path]
            rows = batch.keyframe_clip == b
            assert torch.equal(batch.keyframes[rows], want.keyframes)
            deltas = batch.delta_clip == b
            assert torch.equal(batch.motion[deltas], want.motion) and torch.equal(batch.residual[deltas], want.residual)
            assert batch.keyframe_indices[b][batch.keyframe_mask[b]].tolist() == want.keyframe_indices.tolist()
            assert batch.delta_indices[b][batch.delta_mask[b]].tolist() == want.delta_indices.tolist()
            assert bool(batch.truncated[b]) == want.truncated
            seen.append(path)
    assert sorted(p for p, _ in failures) == bad  # each unreadable file once
    assert all((p, expected[p].cause) in failures for p in bad)
    assert sorted(seen) == sorted(set(loader_paths) - set(bad))


def test_dataset_items_and_raise_policy(media, tmp_path):
    good, bad = str(media["h264_no_bframes"]), str(make_not_video(tmp_path))
    dataset = CopeDataset([good, bad], max_gops=1, seed=1, **SMALL)
    assert isinstance(dataset[1], Failure) and dataset[1].path == bad
    item = dataset[0]
    again = cope_sample(good, max_gops=1, seed=dataset.sample_seed(0), **SMALL)
    assert torch.equal(item.keyframes, again.keyframes) and torch.equal(item.motion, again.motion)
    assert "keyframes=(1, 3, 32, 32)" in repr(item)
    with pytest.raises(codecprim.InvalidVideoError):
        CopeDataset([bad], on_error="raise")[0]


def test_truncated_file_sample_says_so(media, tmp_path):
    cut = cope_sample(make_truncated(tmp_path), fuse=4, **SMALL)  # the index promises 20 frames, fewer decode
    assert cut.truncated is True and len(cut.keyframe_indices) >= 1
    with codecprim.open(make_truncated(tmp_path)) as reader:
        types, gops, pts = reader.pict_types, reader.gops, reader.pts_seconds
    assert int(cut.keyframe_indices.max()) < len(types)
    assert torch.equal(cut.keyframe_pts_seconds, pts[cut.keyframe_indices])
    assert all(types[i] == "P" for i in cut.delta_last_indices.tolist())
    assert cope_sample(media["h264_no_bframes"], **SMALL).truncated is False


def test_times_the_container_does_not_store_come_from_the_decoder(tmp_path):
    # MPEG-4 with B-frames in AVI stores no pts for its I/P frames (the index fills them from their neighbours):
    # the sample's times must be the decoded frames' own, not NaN.
    path = tmp_path / "packed_b.avi"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=25", "-t", "1",
                    "-c:v", "mpeg4", "-bf", "2", "-g", "12", str(path)], check=True)
    untimed = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts",
                              "-of", "csv=p=0", str(path)], check=True, capture_output=True, text=True).stdout
    assert "N/A" in untimed
    with codecprim.open(path) as reader:
        assert not reader.pts_seconds.isnan().any()
    sample = cope_sample(path, fuse=2, image_size=32, delta_size=32)
    with codecprim.open(path) as reader:
        decoded = {f.index: f.pts_seconds for f in reader}
    for indices, times in ((sample.keyframe_indices, sample.keyframe_pts_seconds),
                           (sample.delta_indices, sample.delta_pts_seconds)):
        assert times.tolist() == pytest.approx([decoded[i] for i in indices.tolist()], abs=1e-6)


@pytest.mark.parametrize("name", ["mpeg2", "mpeg4_native_bframes"])
def test_the_last_picture_libavcodec_exports_no_vectors_for_is_matched(media, name):
    # The stream's last frame is a P-frame the decoder returns at the end without vectors: its step is block
    # matched against its anchor, as motion="estimated" does it; every other step keeps the codec's vectors.
    from codecprim import open as open_video

    with open_video(media[name]) as reader:
        last = reader[len(reader) - 1]
    assert last.pict_type == "P" and last.motion_vectors.shape[0] == 0
    auto = cope_sample(media[name], fuse=1, image_size=56, delta_size=56)
    matched = cope_sample(media[name], fuse=1, image_size=56, delta_size=56, motion="estimated")
    assert int(auto.delta_last_indices[-1]) == last.index and auto.motion_source == "exported"
    assert torch.equal(auto.motion[-1], matched.motion[-1]) and auto.motion[-1].abs().sum() > 0
    assert not torch.equal(auto.motion[:-1], matched.motion[:-1])
