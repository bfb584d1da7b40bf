"""HNSW with exact rescoring: fetch rescore x k candidates from the graph (f32, f16 or i8) and
order them by their float score — checked against USearch and numpy directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embtui.engine.hnsw import HnswConfig, HnswIndex, exact_candidate_scores, recall_at_k
from embtui.engine.search import exact_search
from embtui.errors import EmbtuiError


def _clustered(n: int, q: int, d: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, d)).astype(np.float32)
    docs = centres[rng.integers(0, 40, n)] + 0.35 * rng.normal(size=(n, d)).astype(np.float32)
    queries = centres[rng.integers(0, 40, q)] + 0.35 * rng.normal(size=(q, d)).astype(np.float32)
    return docs.astype(np.float32), queries.astype(np.float32)


@pytest.mark.parametrize("metric", ["cos", "ip", "l2sq"])
def test_candidate_scores_equal_numpy(metric: str) -> None:
    docs, queries = _clustered(300, 7)
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 300, size=(7, 12))
    valid = np.ones_like(idx, dtype=bool)
    valid[3, 9:] = False
    got = exact_candidate_scores(queries, docs.astype(np.float16), idx, valid, metric, block_bytes=2_000)
    d = docs.astype(np.float16).astype(np.float64)
    q = queries.astype(np.float64)
    for i in range(7):
        for j in range(12):
            if not valid[i, j]:
                assert got[i, j] == -np.inf
                continue
            v = d[idx[i, j]]
            want = {"cos": q[i] @ v / np.linalg.norm(q[i]) / np.linalg.norm(v), "ip": q[i] @ v,
                    "l2sq": -np.sum((q[i] - v) ** 2)}[metric]
            assert got[i, j] == pytest.approx(want, rel=1e-4, abs=1e-4)


def test_i8_graph_with_rescoring_ranks_its_candidates_exactly_and_recovers_recall() -> None:
    """The rescored result is the exact-score order (numpy) of the candidates USearch itself returns
    for rescore x k, and lifts the i8 graph's recall against exact float search."""
    from usearch.index import Index

    docs, queries = _clustered(3_000, 60)
    k = 10
    exact_idx, _ = exact_search(queries, docs, k, metric="cos")
    plain = HnswIndex.build(docs, HnswConfig(dtype="i8", expansion_search=64))
    rescored = HnswIndex(plain._index, HnswConfig(dtype="i8", expansion_search=64, rescore=4), docs.shape[1])
    p_idx, _ = plain.search(queries, k)
    r_idx, r_scores = rescored.search(queries, k, docs=docs)
    assert recall_at_k(r_idx, exact_idx, k) > recall_at_k(p_idx, exact_idx, k)
    assert recall_at_k(r_idx, exact_idx, k) >= 0.99
    # independent: USearch's own 40 candidates, scored with numpy, best 10
    raw = plain._index.search(queries, 4 * k, threads=1)
    assert isinstance(plain._index, Index)
    unit = docs / np.linalg.norm(docs, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    for i in range(len(queries)):
        cand = np.asarray(raw.keys[i][: raw.counts[i]], dtype=np.int64)
        s = unit[cand] @ qn[i]
        want = cand[np.lexsort((cand, -s))][:k]
        assert set(r_idx[i].tolist()) == set(want.tolist()), i
        np.testing.assert_allclose(r_scores[i], np.sort(s)[::-1][:k], atol=1e-5)


def test_rescoring_needs_the_vectors_and_a_whole_factor() -> None:
    docs, queries = _clustered(200, 3)
    index = HnswIndex.build(docs, HnswConfig())
    with pytest.raises(EmbtuiError, match="needs the document vectors"):
        HnswIndex(index._index, HnswConfig(rescore=2), docs.shape[1]).search(queries, 5)
    for bad in (0, 1.5, True):
        with pytest.raises(EmbtuiError, match="rescore"):
            HnswConfig(rescore=bad)  # type: ignore[arg-type]
    assert "rescore" not in HnswConfig().to_dict()  # older runs' records and index keys unchanged
    assert HnswConfig(rescore=2).graph_dict() == HnswConfig().graph_dict()


def test_eval_with_an_i8_graph_and_rescoring_reuses_the_graph(demo_store, tiny_model: Path) -> None:
    """`eval --index hnsw --hnsw-dtype i8 --hnsw-rescore 4`: the run records its setting and its
    recall against exact search, and a second rescore factor reuses the same saved graph."""
    from embtui.engine.evaluate import EvalRequest, run_evaluation
    from embtui.engine.models import ModelSpec

    spec = ModelSpec(model=str(tiny_model), name="tiny")
    exact = run_evaluation(demo_store, EvalRequest("demo", spec, index="exact"))
    first = run_evaluation(demo_store, EvalRequest("demo", spec, index="hnsw",
                                                   hnsw=HnswConfig(dtype="i8", rescore=4)))
    again = run_evaluation(demo_store, EvalRequest("demo", spec, index="hnsw",
                                                   hnsw=HnswConfig(dtype="i8", rescore=2)))
    assert first.run.index_config["hnsw"]["rescore"] == 4 and first.run.index_config["reused"] is False
    assert again.run.index_config["reused"] is True
    assert again.run.index_config["path"] == first.run.index_config["path"]
    assert first.run.info["ann_recall@10"] >= 0.97
    assert first.metrics.aggregate["ndcg@10"] == pytest.approx(exact.metrics.aggregate["ndcg@10"], abs=0.01)


def test_cli_hnsw_rescore_is_recorded_and_refused_when_bad(demo_store, tiny_model: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from embtui.cli import main

    ws = str(demo_store.ws.root)
    code = main(["--workspace", ws, "eval", "--project", "demo", "--model", str(tiny_model), "--index", "hnsw",
                 "--hnsw-dtype", "i8", "--hnsw-rescore", "3", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    run = demo_store.list_runs("demo")[-1]
    assert run.index_config["hnsw"] == {**HnswConfig(dtype="i8", rescore=3).to_dict(), "metric": "cos"}
    code = main(["--workspace", ws, "eval", "--project", "demo", "--model", str(tiny_model), "--index", "hnsw",
                 "--hnsw-rescore", "0"])
    err = capsys.readouterr().err
    assert code != 0 and "rescore must be a whole number of at least 1" in err
    assert "Traceback" not in err
    code = main(["--workspace", ws, "eval", "--project", "demo", "--model", str(tiny_model), "--index", "hnsw",
                 "--hnsw-connectivity", "0"])  # 0 was taken as "not given" and silently became 32
    assert code != 0 and "connectivity must be positive" in capsys.readouterr().err
