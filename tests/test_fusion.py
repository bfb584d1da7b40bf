"""Fusion against independent computations: a numpy matrix formulation of RRF and of the weighted
min-max sum over the same inputs, and trec_eval's tie order."""

from __future__ import annotations

import random

import numpy as np
import pytest

from embtui.analysis.fusion import rrf, weighted_sum
from embtui.errors import EmbtuiError


def _random_runs(seed: int, n_runs: int = 3, n_docs: int = 40, depth: int = 15):
    rng = random.Random(seed)
    docs = [f"d{i:02d}" for i in range(n_docs)]
    runs = []
    for _ in range(n_runs):
        run = {}
        for q in ("q1", "q2", "q3"):
            picked = rng.sample(docs, depth)
            scores = sorted((rng.random() for _ in picked), reverse=True)
            run[q] = list(zip(picked, scores))
        runs.append(run)
    return docs, runs


def _matrix(runs, docs, q, fill):
    """(runs x docs) of rank or score, ``fill`` where a run misses the doc."""
    m = np.full((len(runs), len(docs)), fill, dtype=np.float64)
    col = {d: i for i, d in enumerate(docs)}
    return m, col


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rrf_equals_a_matrix_computation(seed):
    docs, runs = _random_runs(seed)
    fused = rrf(runs, k=60)
    for q in ("q1", "q2", "q3"):
        ranks, col = _matrix(runs, docs, q, np.inf)
        for i, run in enumerate(runs):
            for r, (d, _s) in enumerate(run[q], 1):
                ranks[i, col[d]] = r
        expected = (1.0 / (60 + ranks)).sum(axis=0)  # 1/inf = 0 for missing docs
        got = dict(fused[q])
        assert set(got) == {d for d, v in zip(docs, expected) if v > 0}
        for d, v in got.items():
            assert v == pytest.approx(expected[col[d]], abs=1e-15)
        values = [v for _d, v in fused[q]]
        assert values == sorted(values, reverse=True)


@pytest.mark.parametrize("seed", [3, 4])
def test_weighted_sum_equals_a_matrix_computation(seed):
    docs, runs = _random_runs(seed)
    w = np.array([0.2, 0.5, 0.3])
    fused = weighted_sum(runs, list(w))
    for q in ("q1", "q2", "q3"):
        norm, col = _matrix(runs, docs, q, 0.0)
        for i, run in enumerate(runs):
            s = np.array([v for _d, v in run[q]])
            n = (s - s.min()) / (s.max() - s.min())
            for (d, _v), x in zip(run[q], n):
                norm[i, col[d]] = x
        expected = (w[:, None] * norm).sum(axis=0)
        for d, v in fused[q]:
            assert v == pytest.approx(expected[col[d]], abs=1e-12)


def test_ties_follow_trec_eval_and_depth_cuts():
    a = {"q": [("d1", 3.0), ("d2", 2.0)]}
    b = {"q": [("d2", 3.0), ("d1", 2.0)]}
    fused = rrf([a, b], k=0)  # d1 and d2 both 1 + 1/2: a tie, broken by doc id descending
    assert [d for d, _ in fused["q"]] == ["d2", "d1"]
    assert rrf([a, b], k=0, depth=1)["q"] == [("d2", 1.5)]
    assert rrf([a, {"other": [("x", 1.0)]}])["other"] == [("x", 1 / 61)]  # every query kept
    equal = weighted_sum([{"q": [("a", 5.0), ("b", 5.0)]}], [1.0])  # all equal: each counts 1
    assert equal["q"] == [("b", 1.0), ("a", 1.0)]


def test_bad_parameters_are_one_line_errors():
    with pytest.raises(EmbtuiError, match="whole number"):
        rrf([{"q": []}], k=-1)
    with pytest.raises(EmbtuiError, match="one weight per ranking"):
        weighted_sum([{"q": []}, {"q": []}], [1.0])
    with pytest.raises(EmbtuiError, match="at least one"):
        rrf([])
