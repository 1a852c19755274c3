"""Residuals: bit-exact where the stream allows it, documented approximations elsewhere."""

import subprocess

import numpy as np
import pytest

import codecprim
from media import make_packed_bframes
from reference_mc import h264_block, halfpel_block
from residual_oracle import ffmpeg_y_planes, inter_mask


def _read(path):
    with codecprim.open(path) as reader:
        return reader.info, list(reader)


# -- half-pel codecs: bit-exact against FFmpeg's own prediction ----------------------------------------------

EXACT_P = ["mpeg4_native_gop2", "mpeg4_xvid_gop2", "mpeg4_native_odd_gop2", "mpeg2_gop2", "mpeg1_gop2", "h263_gop2",
           "h263p_gop2"]


def _exact_fraction(path, frame_types, skip_idct, needs_intact_reference):
    info, frames = _read(path)
    predictions = ffmpeg_y_planes(path, info.width, info.height, skip_idct=skip_idct)
    decoded = ffmpeg_y_planes(path, info.width, info.height)
    equal = total = 0
    roundings = set()
    for f in frames:
        np.testing.assert_array_equal(f.luma.numpy(), decoded[f.index])
        if f.pict_type not in frame_types:
            continue
        if needs_intact_reference and frames[f.index - 1].pict_type != "I":
            continue
        if f.residual is None:  # the last picture of a stream with output delay: nothing exported for it
            assert f.index == len(frames) - 1
            continue
        roundings.add(f.rounding)
        mask = inter_mask(f.motion_vectors.numpy(), info.height, info.width)
        ours = f.luma.numpy().astype(np.int32) - f.residual.numpy()
        equal += int((ours[mask] == predictions[f.index][mask]).sum())
        total += int(mask.sum())
    assert total > 10 * info.width * info.height
    return equal / total, roundings


@pytest.mark.parametrize("name", EXACT_P)
def test_pframe_prediction_is_bit_exact(media, name):
    # FFmpeg with skip_idct on non-key pictures outputs the prediction of P-frames whose reference is an I-frame.
    fraction, roundings = _exact_fraction(media[name], ("P",), "nokey", needs_intact_reference=True)
    assert fraction == 1.0
    if name in ("mpeg4_native_gop2", "h263p_gop2"):
        assert roundings == {1}, "these encoders signal no-rounding here: a reader that ignores the bit fails"


def test_mpeg2_bframe_prediction_is_bit_exact(media):
    # skip_idct=bidir skips the residual of B-pictures only, so their references stay intact.
    fraction, _ = _exact_fraction(media["mpeg2"], ("B",), "bidir", needs_intact_reference=False)
    assert fraction == 1.0


def _bframe_residuals_are_the_decoders(path):
    # libavcodec exports no MPEG-4 B-VOP vectors (those it hands out are stale), so the reader takes B-pictures'
    # prediction from a second decoder with their inverse transform skipped: exact on every pixel, which the
    # ffmpeg CLI with -skip_idct bidir shows independently.
    info, frames = _read(path)
    predictions = ffmpeg_y_planes(path, info.width, info.height, skip_idct="bidir")
    bframes = [f for f in frames if f.pict_type == "B"]
    assert len(bframes) >= 10
    for f in bframes:
        np.testing.assert_array_equal(f.luma.numpy().astype(np.int32) - f.residual.numpy(), predictions[f.index])
        assert f.inter_pixels == info.width * info.height
    with codecprim.open(path) as reader:
        list(reader)
        assert reader.stats.frames_predicted_by_decoder == len(bframes)
        assert reader.stats.bframes_without_prediction == 0
        # Seeking flushes the second decoder with the first: a sparse read gives the same residuals.
        wanted = [f.index for f in bframes[-4:]]
        for frame, index in zip(reader.frames_at(wanted), wanted):
            np.testing.assert_array_equal(frame.residual.numpy(), frames[index].residual.numpy())


def test_mpeg4_bframe_residual_is_exact(media):
    _bframe_residuals_are_the_decoders(media["mpeg4_native_bframes"])


def test_mpeg4_packed_bframe_residual_is_exact(tmp_path):
    # libxvid, packed bitstream in AVI (a P-VOP and the next B-VOP in one packet)
    _bframe_residuals_are_the_decoders(make_packed_bframes(tmp_path))


def test_mpeg4_bframe_residual_is_exact_on_real_footage(real_clips, tmp_path):
    # Real motion is where stale vectors showed: re-encoded with B-frames, the rebuilt residual of bikes was as
    # large as the frame difference (mean |r| 2.85 against 0.18).
    out = tmp_path / "bikes_mpeg4_bframes.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(real_clips["bikes"]), "-t", "2", "-an", "-c:v", "mpeg4",
                    "-bf", "2", "-q:v", "4", "-threads", "1", str(out)], check=True, capture_output=True)
    _bframe_residuals_are_the_decoders(out)


def test_only_mpeg4_with_bframes_is_flagged_stale(media):
    # The flag decides the second decoder and codec_patches' motion source: MPEG-4 without B-frames, and H.264
    # with them (its decoder stores B vectors), keep their exported vectors.
    flags = {}
    for name in ("mpeg4_native_bframes", "mpeg4_native_gop2", "h264_bframes", "mpeg2"):
        with codecprim.open(media[name]) as reader:
            flags[name] = reader.info.b_frame_vectors_stale
    assert flags == {"mpeg4_native_bframes": True, "mpeg4_native_gop2": False, "h264_bframes": False,
                     "mpeg2": False}


@pytest.mark.parametrize("name", ["mpeg4_xvid", "mpeg4_native_bframes"])
def test_mpeg4_rounding_type_is_read_per_vop(media, name):
    _, frames = _read(media[name])
    assert {f.rounding for f in frames if f.pict_type == "P"} == {0, 1}
    assert {f.rounding for f in frames if f.pict_type != "P"} == {-1}


def test_rounding_bit_matters(media):
    # Re-predicting with the opposite rounding type breaks exactness: the bit read from the stream is needed.
    path = media["mpeg4_native_gop2"]
    info, frames = _read(path)
    predictions = ffmpeg_y_planes(path, info.width, info.height, skip_idct="nokey")
    frame = next(f for f in frames if f.pict_type == "P" and f.rounding == 1)
    reference = frames[frame.index - 1].luma.numpy()
    wrong = right = 0
    for row in frame.motion_vectors.numpy()[:200]:
        _, w, h, _, _, dst_x, dst_y, mx, my, _ = row
        if (mx & 1) == 0 and (my & 1) == 0:
            continue
        x, y = dst_x - w // 2, dst_y - h // 2
        truth = predictions[frame.index][y:y + h, x:x + w]
        right += np.array_equal(halfpel_block(reference, x, y, mx, my, w, h, no_rounding=True), truth)
        wrong += np.array_equal(halfpel_block(reference, x, y, mx, my, w, h, no_rounding=False), truth)
    assert right > 0 and wrong < right / 2


# -- H.264: bit-exact prediction for single-reference P-frames -------------------------------------------------

def _h264_prediction_agreement(path, blocks_per_frame, seed=0):
    """Fraction of sampled sub-pel inter blocks where ``luma - residual`` equals the standard's 6-tap prediction
    (tests/core/reference_mc.py) from the previous decoded picture, and the fraction ``luma`` alone would reach.

    The stream must have one reference and no weighted prediction, so the previous picture is the reference. At a
    normal QP the residual is far from zero, so a reader returning a zero (or otherwise wrong) residual fails.
    """
    _, frames = _read(path)
    rng = np.random.default_rng(seed)
    equal = luma_only = total = 0
    for prev, f in zip(frames, frames[1:]):
        if f.pict_type != "P":
            continue
        mv = f.motion_vectors.numpy()
        subpel = mv[((mv[:, 7] & 3) != 0) | ((mv[:, 8] & 3) != 0)]
        luma = f.luma.numpy().astype(np.int32)
        ours = luma - f.residual.numpy()
        for _, w, h, _, _, dst_x, dst_y, mx, my, _ in subpel[rng.permutation(len(subpel))[:blocks_per_frame]]:
            x, y = dst_x - w // 2, dst_y - h // 2
            truth = h264_block(prev.luma.numpy(), x, y, mx, my, w, h).astype(np.int32)
            equal += int((ours[y:y + h, x:x + w] == truth).sum())
            luma_only += int((luma[y:y + h, x:x + w] == truth).sum())
            total += w * h
    return equal / max(total, 1), luma_only / max(total, 1), total


def test_h264_prediction_matches_the_standard_at_normal_qp(media):
    # QP 26 over a sub-pixel pan: the residual carries real energy, so luma - residual must be the prediction.
    exact, luma_only, total = _h264_prediction_agreement(media["h264_qp26_one_ref"], blocks_per_frame=3)
    assert total > 20_000
    assert exact == 1.0, f"luma - residual equals the 6-tap prediction on only {exact:.5f} of sampled pixels"
    assert luma_only < 0.95, "the stream must carry residual energy, or the check proves nothing"


def test_h264_prediction_matches_the_standard_on_real_footage(real_clips, tmp_path):
    # The same oracle on real camera content: carphone re-encoded at QP 26 with one reference.
    import subprocess

    path = tmp_path / "carphone_qp26.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(real_clips["carphone_pristine"]), "-frames:v", "30",
                    "-threads", "1", "-c:v", "libx264", "-qp", "26", "-x264-params",
                    "ref=1:weightp=0:bframes=0:keyint=30", str(path)], check=True, capture_output=True)
    exact, luma_only, total = _h264_prediction_agreement(path, blocks_per_frame=4)
    assert total > 10_000
    assert exact == 1.0
    assert luma_only < 0.9


def test_h264_bilinear_would_not_reach_the_oracle(media):
    # The oracle discriminates: plain bilinear quarter-pel interpolation misses it by far.
    from codecprim import _core

    info, frames = _read(media["h264_qp51_oracle"])
    hits = total = 0
    for prev, f in zip(frames, frames[1:]):
        if f.pict_type != "P":
            continue
        ref = prev.luma.numpy()
        for row in f.motion_vectors.numpy():
            _, w, h, _, _, dst_x, dst_y, mx, my, _ = row
            x, y = dst_x - w // 2, dst_y - h // 2
            if x + w > info.width or y + h > info.height or ((mx & 3) == 0 and (my & 3) == 0):
                continue
            pred = _core.predict(ref, x, y, mx, my, w, h, "bilinear_qpel")
            hits += int((pred == f.luma.numpy()[y:y + h, x:x + w]).sum())
            total += w * h
    assert total > 0 and hits / total < 0.97


# -- everything else: the documented approximation stays close -------------------------------------------------

def _inter_ratio(frames, info, types=("P", "B")):
    """Mean |residual| over inter pixels relative to the plain difference to the previous frame."""
    residual = difference = 0.0
    for prev, f in zip(frames, frames[1:]):
        if f.pict_type not in types or f.residual is None:
            continue
        mask = inter_mask(f.motion_vectors.numpy(), info.height, info.width)
        residual += np.abs(f.residual.numpy()[mask]).sum()
        difference += np.abs(f.luma.numpy().astype(int) - prev.luma.numpy().astype(int))[mask].sum()
    return residual / difference


@pytest.mark.parametrize("name", ["mpeg2", "mpeg1", "h263", "h263p", "mpeg4_native_bframes", "mpeg4_xvid",
                                  "h264_bframes", "h264_odd_size", "h264_no_bframes"])
def test_motion_compensation_beats_zero_motion(media, name):
    # P-frames against the zero-motion prediction from the same anchor (the previous I/P picture).
    info, frames = _read(media[name])
    residual = zero_motion = 0.0
    anchor = None
    for f in frames:
        if f.pict_type == "P" and anchor is not None and (f.residual is not None or f.index != len(frames) - 1):
            mask = inter_mask(f.motion_vectors.numpy(), info.height, info.width)
            residual += np.abs(f.residual.numpy()[mask]).sum()
            zero_motion += np.abs(f.luma.numpy().astype(int) - anchor.astype(int))[mask].sum()
        if f.pict_type != "B":
            anchor = f.luma.numpy()
    assert residual <= 0.4 * zero_motion


@pytest.mark.parametrize("clip", ["bikes", "bigbuckbunny"])
def test_real_footage_residual_is_a_quarter_of_frame_difference(real_clips, clip):
    # bikes: x264 with 3 references, B-pyramid and weighted prediction; bigbuckbunny: 720p.
    info, frames = _read(real_clips[clip])
    assert _inter_ratio(frames, info) <= 0.25


def test_intra_pixels_get_the_plain_frame_difference(media):
    info, frames = _read(media["h264_no_bframes"])
    for prev, f in zip(frames, frames[1:]):
        if f.pict_type != "P":
            continue
        intra = ~inter_mask(f.motion_vectors.numpy(), info.height, info.width)
        diff = f.luma.numpy().astype(np.int16) - prev.luma.numpy().astype(np.int16)
        np.testing.assert_array_equal(f.residual.numpy()[intra], diff[intra])


def test_iframes_have_no_residual_and_pframes_cover_their_vectors(media):
    _, frames = _read(media["h264_bframes"])
    for f in frames:
        if f.pict_type == "I":
            assert f.residual is None and f.inter_pixels == 0
        else:
            assert f.residual.dtype == codecprim.reader.torch.int16 and f.residual.shape == f.luma.shape
            assert f.inter_pixels > 0


def test_inter_pixel_count_is_over_the_picture_only(media):
    # 330x190: blocks reach into the macroblock padding, which is not part of the picture.
    info, frames = _read(media["mpeg4_native_odd_gop2"])
    for f in frames:
        if f.pict_type == "P":
            assert f.inter_pixels == int(inter_mask(f.motion_vectors.numpy(), info.height, info.width).sum())


# -- the picture libavcodec returns at the end without vectors or quantisers ----------------------------------


@pytest.mark.parametrize("name", ["mpeg4_native_bframes", "mpeg2", "mpeg1"])
def test_last_reference_returned_without_export_gets_no_residual(media, name):
    # MPEG-1/2/4 decoders hold the last reference picture back for reordering and return it at the end of the
    # stream without exporting its vectors or quantisers (PyAV's export has none either); a residual from no
    # vectors would be a plain frame difference.
    import av

    path = media[name]
    with codecprim.open(path) as reader:
        frames = list(reader)
        assert reader.stats.frames_without_export == 1
    with codecprim.open(path) as reader:  # a sparse read alone: only the last GOP decoded, only the last frame kept
        again = reader.frames_at([len(frames) - 1])[0]
        assert reader.stats.frames_without_export == 1
    last = frames[-1]
    assert last.pict_type == "P" and last.residual is None and last.qp is None and last.motion_vectors.shape[0] == 0
    assert last.without_export and again.without_export and not any(f.without_export for f in frames[:-1])
    assert again.residual is None and np.array_equal(again.luma.numpy(), last.luma.numpy())
    assert all(f.residual is not None for f in frames[:-1] if f.pict_type != "I")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        exported = ["MOTION_VECTORS" in str([s.type for s in f.side_data]) for f in container.decode(stream)]
    assert exported[-1] is False and len(exported) == len(frames)
    assert all(exported[i] for i, f in enumerate(frames[:-1]) if f.pict_type != "I" and f.motion_vectors.shape[0] > 0)


@pytest.mark.parametrize("name", ["mpeg4_native_gop2", "mpeg4_xvid", "h263", "h264_bframes"])
def test_streams_without_output_delay_export_every_picture(media, name):
    with codecprim.open(media[name]) as reader:
        frames = list(reader)
        assert reader.stats.frames_without_export == 0
    assert all(f.residual is not None and not f.without_export for f in frames if f.pict_type != "I")


# -- the reference search on multi-reference H.264: the rule, tile by tile --------------------------------------

_STEP_TIMES_16 = (10, 11, 13, 14, 16, 18)  # H.264 Qstep * 16 for QP 0..5


def _sad_explained_per_pixel(qp):
    """What residual.cpp accepts at once: an eighth of the quantiser step per pixel, at least one level."""
    qp = min(max(int(qp), 0), 51)
    return max(1, (_STEP_TIMES_16[qp % 6] << (qp // 6)) // 128)


def test_reference_search_takes_the_candidate_its_rule_names(tmp_path):
    # P-only H.264 with three references and fresh noise in every frame, so the nearest reference is often not
    # good enough and the search goes on. For every macroblock predicted by one 16x16 vector, the residual must be
    # the one of the candidate the documented rule picks: the nearest when its SAD against the decoded block is
    # within what the QP explains, else the least SAD, nearest first on ties, stopping at the first that is within.
    from codecprim import MV, _core

    path = tmp_path / "three_references_noise.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=s=160x128:r=25:d=1,noise=alls=24:allf=t", "-c:v", "libx264", "-bf", "0", "-g", "100",
                    "-x264-params", "ref=3", "-pix_fmt", "yuv420p", str(path)], check=True, capture_output=True)
    with codecprim.open(path) as reader:
        frames = [f for f in reader]
        stats = reader.stats
    assert [f.pict_type for f in frames[1:]] == ["P"] * (len(frames) - 1)
    assert stats.reference_searches > 0

    checked = beyond_nearest = 0
    for k in range(3, len(frames)):
        f = frames[k]
        cur = f.luma.numpy().astype(np.int32)
        residual = f.residual.numpy()
        candidates = [frames[k - d].luma.numpy() for d in (1, 2, 3)]  # nearest first
        rows = f.motion_vectors.numpy()
        tiles = {}
        for r in rows:
            x, y = int(r[MV.dst_x] - r[MV.w] // 2), int(r[MV.dst_y] - r[MV.h] // 2)
            tiles.setdefault((y // 16, x // 16), []).append((r, x, y))
        for (ty, tx), blocks in tiles.items():
            if len(blocks) != 1:
                continue
            r, x, y = blocks[0]
            if r[MV.w] != 16 or r[MV.h] != 16 or x % 16 or y % 16 or r[MV.source] >= 0 or r[MV.motion_scale] != 4:
                continue
            enough = _sad_explained_per_pixel(f.qp[ty, tx]) * 256
            block = cur[y:y + 16, x:x + 16]
            best = best_sad = None
            for i, ref in enumerate(candidates):
                mv_x, mv_y = int(r[MV.motion_x]), int(r[MV.motion_y])
                pred = _core.predict(ref, x, y, mv_x, mv_y, 16, 16, "h264").astype(np.int32)
                sad = int(np.abs(block - pred).sum())
                if best is None or sad < best_sad:
                    best, best_sad, chosen = pred, sad, i
                if best_sad <= enough:
                    break
            np.testing.assert_array_equal(residual[y:y + 16, x:x + 16], block - best,
                                          err_msg=f"frame {k} tile {ty},{tx}")
            checked += 1
            beyond_nearest += chosen > 0
    assert checked > 100 and beyond_nearest > 10, (checked, beyond_nearest)
