"""End to end: CopeDataset -> DataLoader(collate_cope) -> image encoder + Δ-encoder -> VideoLLM forward, for a
batch of videos with different GOP layouts and a bad file. The oracle: each clip run alone, unpadded, with its
own frame indices, gives the same logits as its real tokens in the padded batch."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from codecprim.data import CopeDataset, collate_cope
from codecprim.models import (CodecTokens, DeltaEncoder, DeltaEncoderConfig, EfficientNetLite0,
                              EfficientNetLite0Tokens, SmallLM, SmallLMConfig, VideoLLM, VideoLLMConfig)

from media import make_not_video


def tiny_models():
    torch.manual_seed(0)
    image = EfficientNetLite0Tokens(EfficientNetLite0())  # random weights: no download; float32 inputs
    delta = DeltaEncoder(DeltaEncoderConfig(out_dim=EfficientNetLite0Tokens.dim, width=16, depth=1, heads=2,
                                            trunk_base_width=8, motion_queries=2, residual_queries=2)).double().eval()
    lm = SmallLM(SmallLMConfig(vocab_size=50, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=64,
                               max_seq_len=2048))
    llm = VideoLLM(lm, VideoLLMConfig(visual_dim=EfficientNetLite0Tokens.dim)).double()
    return image, delta, llm


def test_loader_to_encoders_to_video_llm_for_different_layouts(media, real_clips, tmp_path):
    paths = [media["h264_no_bframes"], make_not_video(tmp_path), media["h264_bframes"], real_clips["carphone_pristine"]]
    dataset = CopeDataset(paths, max_gops=3, fuse=4, image_size=64, delta_size=64, seed=2)
    (batch,) = list(DataLoader(dataset, batch_size=4, num_workers=0, collate_fn=collate_cope))
    assert len(batch) == 3 and [p for p, _ in batch.failures] == [str(paths[1])]
    layouts = {tuple(batch.keyframe_mask[b].tolist()) + tuple(batch.delta_mask[b].tolist()) for b in range(3)}
    assert len(layouts) == 3  # three different GOP layouts in one batch

    image, delta, llm = tiny_models()
    keyframe_tokens = image(batch.keyframes).double()  # (Kt, 16, 112): one call for every keyframe
    delta_tokens = delta(batch.motion.double(), batch.residual).tokens  # (Pt, 4, 112): one call for every delta
    codec = batch.codec_tokens(keyframe_tokens, delta_tokens)
    prompt = torch.tensor([3, 1, 4, 1, 5])
    logits, stream = llm(codec, prompt)
    assert logits.shape[:2] == (3, stream.length) and stream.attention_mask.shape == (3, stream.length)
    assert torch.isfinite(logits).all()

    for b in range(3):
        keys, deltas = batch.keyframe_clip == b, batch.delta_clip == b
        alone = CodecTokens(keyframe_tokens[keys][None], batch.keyframe_indices[b][batch.keyframe_mask[b]].tolist(),
                            delta_tokens[deltas][None], batch.delta_indices[b][batch.delta_mask[b]].tolist())
        want, alone_stream = llm(alone, prompt)
        real = stream.attention_mask[b]
        assert int(real.sum()) == alone_stream.length
        torch.testing.assert_close(logits[b][real], want[0], rtol=1e-9, atol=1e-9)
        assert torch.equal(stream.token_kind[real.cpu()], alone_stream.token_kind)

    # a training step reaches the Δ-encoder and the projector through the padded batch
    loss = torch.nn.functional.cross_entropy(logits[:, -1], torch.tensor([1, 2, 3]))
    loss.backward()
    assert delta.motion_mlp.fc1.weight.grad is not None and llm.rgb_projector.net[0].weight.grad.abs().sum() > 0


def test_collate_cope_layout_and_empty_batches(media, tmp_path):
    dataset = CopeDataset([media["h264_no_bframes"], media["h264_bframes"], make_not_video(tmp_path)],
                          max_gops=2, fuse=6, image_size=32, delta_size=32)
    a, b, bad = dataset[0], dataset[1], dataset[2]
    batch = collate_cope([a, bad, b])
    assert batch.keyframes.shape[0] == a.keyframes.shape[0] + b.keyframes.shape[0]
    assert batch.motion.shape[0] == a.motion.shape[0] + b.motion.shape[0]
    # the layout: run r's keyframe slot, then the widest run r's delta slots; every clip's order kept
    order = torch.cat([batch.keyframe_positions, batch.delta_positions]).sort().values
    assert torch.equal(order, torch.arange(order.numel()))
    for i, sample in enumerate((a, b)):
        position = torch.cat([batch.keyframe_positions[batch.keyframe_mask[i]], batch.delta_positions[batch.delta_mask[i]]])
        frame = torch.cat([sample.keyframe_indices, sample.delta_indices])
        assert torch.equal(frame[position.argsort()], frame.sort().values)  # stream order = display order
        assert torch.equal(batch.keyframes[batch.keyframe_slot[i][batch.keyframe_mask[i]]], sample.keyframes)
        assert torch.equal(batch.residual[batch.delta_slot[i][batch.delta_mask[i]]], sample.residual)
    assert torch.isnan(batch.keyframe_pts_seconds[~batch.keyframe_mask]).all()
    empty = collate_cope([bad])
    assert len(empty) == 0 and empty.keyframes.shape[0] == 0 and empty.failures == [(bad.path, bad.cause)]
    assert "CopeBatch(keyframes=" in repr(batch)
