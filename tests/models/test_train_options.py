"""The training entry points' GPU options: --dtype and --compile reach the run config, bad values are refused."""

import pytest

from codecprim.train import codec_vit


def test_codec_vit_parses_dtype_and_compile(monkeypatch):
    seen = {}
    monkeypatch.setattr(codec_vit, "run", lambda cfg: seen.update(cfg=cfg) or {})
    codec_vit.main(["--dtype", "bf16", "--compile", "--device", "cpu"])
    assert seen["cfg"].dtype == "bf16" and seen["cfg"].compile is True and seen["cfg"].device == "cpu"
    codec_vit.main([])
    assert seen["cfg"].dtype == "fp32" and seen["cfg"].compile is False


def test_codec_vit_refuses_unknown_dtype():
    with pytest.raises(ValueError, match="dtype must be one of"):
        codec_vit.RunConfig(dtype="fp16")
