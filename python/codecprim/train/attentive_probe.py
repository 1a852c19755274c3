"""The attentive probe of V-JEPA / OneVision-Encoder evaluations: a fresh attentive-pool classifier fitted on a
frozen encoder's tokens. Used by the codec ViT recipe (:mod:`codecprim.train.codec_vit`) and the motion probe
task (:mod:`codecprim.train.probe_task`)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..models.layers.attention import packed_to_padded
from ..models.layers.attentive_pool import AttentivePool

__all__ = ["fit_attentive_probe"]


def fit_attentive_probe(train: Sequence[torch.Tensor], y_train: torch.Tensor, test: Sequence[torch.Tensor],
                        y_test: torch.Tensor, *, num_classes: int, num_heads: int, steps: int, seed: int,
                        lr: float = 1e-3) -> float:
    """Accuracy on ``test`` of a fresh :class:`AttentivePool` + linear classifier fitted (full batch, AdamW) on
    ``train``; each item is one clip's ``(K_i, D)`` frozen tokens, any K_i."""

    def padded(items: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        cu = torch.tensor([0] + [len(x) for x in items], device=items[0].device).cumsum(0)
        return packed_to_padded(torch.cat(list(items)), cu)  # (N, K_max, D), (N, K_max)

    x_tr, v_tr = padded(train)
    x_te, v_te = padded(test)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = AttentivePool(x_tr.shape[-1], num_heads, out_dim=num_classes).to(x_tr.device)
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=1e-4)
    for _ in range(steps):
        loss = F.cross_entropy(probe(x_tr, valid=v_tr), y_train.to(x_tr.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float((probe(x_te, valid=v_te).argmax(dim=1) == y_test.to(x_te.device)).float().mean())
