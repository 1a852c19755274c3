"""LongVU-style pruning and VQToken-style codebook tokens: the baselines codec-patch selection is compared with."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import codecprim.ops as ops
from codecprim.clustering import kmeans
from codecprim.ops.token_reduction import prune_redundant_tokens, vq_tokens


def _clip(t=10, p=12, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(t, p, d, generator=g)


def test_static_clip_keeps_only_each_windows_first_frame():
    frame = _clip(1)[0]
    tokens = frame.expand(10, -1, -1).clone()
    tokens[7, 5] = -frame[5]  # one token changes: it stays
    kept = prune_redundant_tokens(tokens, window=4, threshold=0.8)
    frames = sorted(set(kept.positions[:, 0].tolist()))
    assert frames == [0, 4, 7, 8]
    for start in (0, 4, 8):
        assert int((kept.positions[:, 0] == start).sum()) == 12  # first frames whole
    assert kept.positions[(kept.positions[:, 0] == 7)].tolist() == [[7, 5]]
    assert torch.equal(kept.indices, kept.positions[:, 0] * 12 + kept.positions[:, 1])


def test_similarity_is_to_the_same_position_of_the_window_start():
    tokens = _clip()
    kept = prune_redundant_tokens(tokens, window=3, threshold=0.0)
    cos = torch.nn.functional.cosine_similarity(tokens[5], tokens[3], dim=-1)
    torch.testing.assert_close(kept.similarity[5], cos)
    assert bool((kept.similarity[[0, 3, 6, 9]] == 1).all())
    later = kept.positions[kept.positions[:, 0] % 3 != 0]
    assert bool((kept.similarity[later[:, 0], later[:, 1]] <= 0).all())


def test_budget_keeps_first_frames_then_the_least_similar():
    tokens = _clip()
    kept = prune_redundant_tokens(tokens, window=5, budget=40)
    assert kept.indices.numel() == 40 and bool((kept.indices[1:] > kept.indices[:-1]).all())
    anchors = (kept.positions[:, 0] % 5 == 0).sum()
    assert int(anchors) == 24
    others = kept.positions[kept.positions[:, 0] % 5 != 0]
    chosen = kept.similarity[others[:, 0], others[:, 1]]
    rest = kept.similarity.clone()
    rest[others[:, 0], others[:, 1]] = float("inf")
    rest[::5] = float("inf")
    assert float(chosen.max()) <= float(rest.min())
    assert prune_redundant_tokens(tokens, window=5, budget=10).indices.numel() == 24  # first frames always kept


def test_vq_tokens_recover_separated_clusters():
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(4, 16, generator=g) * 10
    labels = torch.randint(4, (6, 20), generator=g)
    tokens = centres[labels] + 0.01 * torch.randn(6, 20, 16, generator=g)
    vq = vq_tokens(tokens, 4, seed=0)
    assert vq.codebook.shape == (4, 16) and vq.codes.shape == (6, 20)
    # the same partition as the true labels, up to renaming
    pairs = set(zip(labels.flatten().tolist(), vq.codes.flatten().tolist()))
    assert len(pairs) == 4
    assert float((vq.decode() - tokens).abs().max()) < 0.1


def test_more_codes_reconstruct_better():
    tokens = _clip(8, 16, 8)
    errors = [float(((vq_tokens(tokens, k).decode() - tokens) ** 2).mean()) for k in (2, 16, 64)]
    assert errors[0] > errors[1] > errors[2]


def test_bad_arguments():
    tokens = _clip()
    with pytest.raises(ValueError, match="window must be"):
        prune_redundant_tokens(tokens, window=0)
    with pytest.raises(ValueError, match="threshold must be"):
        prune_redundant_tokens(tokens, threshold=None)
    with pytest.raises(ValueError, match="budget must be"):
        prune_redundant_tokens(tokens, budget=0)
    with pytest.raises(ValueError, match="floating"):
        prune_redundant_tokens(tokens.long())
    with pytest.raises(ValueError, match="k must be"):
        vq_tokens(tokens, 0)
    with pytest.raises(ValueError, match="k must be"):
        vq_tokens(tokens, 121)
    assert {"prune_redundant_tokens", "vq_tokens", "TokenSubset", "VQTokens"} <= set(ops.__all__)


def _reference_prune(tokens, window, threshold=None, budget=None):
    """LongVU's rule written out token by token in float64."""
    t, p, _ = tokens.shape
    rows = tokens.double().tolist()
    sim, keep = {}, set()
    for i in range(t):
        start = i // window * window
        for j in range(p):
            a, b = rows[i][j], rows[start][j]
            na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
            sim[i, j] = 1.0 if i == start else sum(x * y for x, y in zip(a, b)) / max(na * nb, 1e-8)
            if i == start or (budget is None and sim[i, j] <= threshold):
                keep.add(i * p + j)
    if budget is not None:
        rest = sorted((sim[i, j], i * p + j) for i in range(t) for j in range(p) if i % window)
        keep |= {flat for _, flat in rest[: max(0, budget - len(keep))]}
    return sorted(keep), sim


@settings(max_examples=40, deadline=None)
@given(t=st.integers(1, 9), p=st.integers(1, 7), d=st.integers(1, 6), window=st.integers(1, 5),
       threshold=st.floats(-0.9, 0.9), budget=st.one_of(st.none(), st.integers(1, 70)), seed=st.integers(0, 999))
def test_pruning_matches_the_written_out_rule(t, p, d, window, threshold, budget, seed):
    tokens = torch.randn(t, p, d, generator=torch.Generator().manual_seed(seed))
    kept = prune_redundant_tokens(tokens, window=window, threshold=threshold, budget=budget)
    want, sim = _reference_prune(tokens, window, threshold, budget)
    assert kept.indices.tolist() == want
    expected = torch.tensor([[sim[i, j] for j in range(p)] for i in range(t)], dtype=torch.float32)
    torch.testing.assert_close(kept.similarity, expected, atol=1e-5, rtol=0)


@settings(max_examples=25, deadline=None)
@given(t=st.integers(1, 6), p=st.integers(1, 6), k=st.integers(1, 8), seed=st.integers(0, 999))
def test_vq_codebook_is_the_mean_of_its_tokens(t, p, k, seed):
    tokens = torch.randn(t, p, 4, generator=torch.Generator().manual_seed(seed))
    k = min(k, t * p)
    vq = vq_tokens(tokens, k, iters=3, seed=seed)  # few iterations: k-means stops before converging
    flat, codes = tokens.reshape(-1, 4).double(), vq.codes.flatten().tolist()
    for j in set(codes):
        members = [flat[i] for i, c in enumerate(codes) if c == j]
        torch.testing.assert_close(vq.codebook[j].double(), sum(members) / len(members), atol=1e-5, rtol=0)
    # the mean is the best vector for its tokens: never a larger error than k-means' own last centres
    ours = float(((vq.decode().reshape(-1, 4).double() - flat) ** 2).sum())
    centres = kmeans(tokens.reshape(-1, 4), k, iters=3, spherical=False, seed=seed, backend="torch")
    theirs = float(((centres.centroids.double()[centres.assignments] - flat) ** 2).sum())
    assert ours <= theirs + 1e-6
