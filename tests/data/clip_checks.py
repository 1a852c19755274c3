"""Comparing CodecClips field by field."""

from __future__ import annotations

from dataclasses import fields

import torch


def assert_same_clip(a, b) -> None:
    """Every field equal: tensors bit for bit (same dtype and shape), the rest by value."""
    assert type(a) is type(b)
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y), f.name
        else:
            assert x == y, f.name
