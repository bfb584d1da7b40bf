"""Retrieval pipelines: hybrid fusion and rerank cascades, each checked against an independent
computation (plain Python fusion, sentence-transformers rescoring, CrossEncoder.predict) scored by
pytrec_eval on the same inputs; the spec's validation; the CLI; reuse of an identical pipeline run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embtui.api.evaluations import plan_evaluation, run_inline
from embtui.api.pipelines import list_pipelines, make_pipeline
from embtui.errors import EmbtuiError

MEASURES = {"ndcg_cut.10", "recall.100", "recall.20"}


def _run(store, model: str, **request):
    [outcome] = run_inline(plan_evaluation(store, "demo", [model], split="test", device="cpu", **request))
    return outcome.run


def _trec(qrels, run: dict[str, dict[str, float]]) -> dict[str, float]:
    import pytrec_eval

    res = pytrec_eval.RelevanceEvaluator(qrels, MEASURES).evaluate(run)
    return {m: float(np.mean([v[m] for v in res.values()])) for m in ("ndcg_cut_10", "recall_100", "recall_20")}


def _top(scores: dict[str, float], k: int) -> dict[str, float]:
    # score descending, doc id descending (trec_eval's order), cut at k
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], tuple(-ord(c) for c in kv[0])))
    return dict(ranked[:k])


def test_rrf_pipeline_equals_plain_reciprocal_rank_fusion(demo_store, tiny_model: Path) -> None:
    store = demo_store
    n_docs = store.get_project("demo").documents
    full = {m: store.run_rankings(_run(store, m, depth=n_docs).id) for m in ("bm25", str(tiny_model))}
    make_pipeline(store, "hybrid", ["bm25", str(tiny_model)], fuse="rrf")
    run = _run(store, "hybrid")
    assert run.index_config["kind"] == "pipeline"
    stages = run.info["pipeline"]["stages"]
    assert [s["stage"].split()[0] for s in stages] == ["retrieve", "retrieve", "fuse"]
    assert run.info["pipeline"]["describe"].startswith("rrf(k=60)[bm25, ")

    fused: dict[str, dict[str, float]] = {}
    for q in full["bm25"]:
        scores: dict[str, float] = {}
        for ranking in full.values():
            for rank, (doc, _s) in enumerate(ranking.get(q, []), 1):
                scores[doc] = scores.get(doc, 0.0) + 1.0 / (60 + rank)
        fused[q] = _top(scores, 100)
    qrels = store.qrels("demo", "test")
    ref = _trec(qrels, fused)
    assert run.metrics["ndcg@10"] == pytest.approx(ref["ndcg_cut_10"], abs=1e-4)
    assert run.metrics["recall@100"] == pytest.approx(ref["recall_100"], abs=1e-4)
    stored = store.run_rankings(run.id)
    q = next(iter(fused))
    assert [d for d, _ in stored[q]] == list(fused[q])  # the same order, ties included


def test_weighted_fusion_needs_one_weight_per_model(demo_store, tiny_model: Path) -> None:
    with pytest.raises(EmbtuiError, match="1 weight.* for 2 first-stage models"):
        make_pipeline(demo_store, "w", ["bm25", str(tiny_model)], fuse="weighted:1")
    n_docs = demo_store.get_project("demo").documents
    full = [demo_store.run_rankings(_run(demo_store, m, depth=n_docs).id) for m in ("bm25", str(tiny_model))]
    make_pipeline(demo_store, "w", ["bm25", str(tiny_model)], fuse="weighted:0.3,0.7")
    run = _run(demo_store, "w")
    assert run.info["pipeline"]["describe"].startswith("weighted[0.3·bm25, 0.7·")
    assert 0 < run.metrics["ndcg@10"] <= 1
    # independent: per query, each part's scores min-max normalised, weighted and summed
    fused = {}
    for q in full[0]:
        total: dict[str, float] = {}
        for w, ranking in zip((0.3, 0.7), full):
            vals = np.array([s for _d, s in ranking.get(q, [])], dtype=np.float64)
            if not len(vals):
                continue
            span = vals.max() - vals.min()
            norm = np.ones_like(vals) if span == 0 else (vals - vals.min()) / span
            for (d, _s), v in zip(ranking[q], norm):
                total[d] = total.get(d, 0.0) + w * float(v)
        fused[q] = _top(total, 100)
    ref = _trec(demo_store.qrels("demo", "test"), fused)
    assert run.metrics["ndcg@10"] == pytest.approx(ref["ndcg_cut_10"], abs=1e-4)


def test_cascade_equals_sentence_transformers_rescoring_of_the_bm25_candidates(demo_store, tiny_model: Path) -> None:
    from sentence_transformers import SentenceTransformer

    store = demo_store
    bm25 = {q: row[:20] for q, row in store.run_rankings(_run(store, "bm25", depth=20).id).items()}
    make_pipeline(store, "cascade", ["bm25"], rerank=[str(tiny_model)], rerank_depth=[20])
    run = _run(store, "cascade")
    [first, rerank] = run.info["pipeline"]["stages"]
    assert first["depth"] == 20 and rerank["kind"] == "bi-encoder"

    model = SentenceTransformer(str(tiny_model), device="cpu")
    queries = store.queries("demo", "test")
    docs = store.corpus("demo")
    text_of = dict(zip(docs.ids, docs.encode_texts()))
    cand = sorted({d for row in bm25.values() for d, _ in row})
    assert rerank["documents_scored"] == len(cand)  # only the candidates were encoded
    d_vec = dict(zip(cand, model.encode([text_of[d] for d in cand], normalize_embeddings=True)))
    qids = list(bm25)
    q_vec = dict(zip(qids, model.encode([queries[q] for q in qids], normalize_embeddings=True)))
    rescored = {q: _top({d: float(np.dot(q_vec[q], d_vec[d])) for d, _ in bm25[q]}, 20) for q in qids}
    qrels = store.qrels("demo", "test")
    ref = _trec(qrels, rescored)
    assert run.metrics["ndcg@10"] == pytest.approx(ref["ndcg_cut_10"], abs=1e-4)
    # the candidate recall is the ceiling: recall@20 of the bm25 candidates, as trec_eval counts it
    ceiling = _trec(qrels, {q: dict(row) for q, row in bm25.items()})["recall_20"]
    assert rerank["candidate_recall@20"] == pytest.approx(ceiling, abs=1e-6)
    assert run.metrics["recall@100"] == pytest.approx(ceiling, abs=1e-6)


def test_cross_encoder_rerank_equals_its_own_predict(demo_store, tiny_cross_encoder: Path) -> None:
    from sentence_transformers import CrossEncoder

    store = demo_store
    bm25 = {q: row[:10] for q, row in store.run_rankings(_run(store, "bm25", depth=10).id).items()}
    make_pipeline(store, "ce", ["bm25"], cross_encoder=[str(tiny_cross_encoder)], rerank_depth=[10])
    run = _run(store, "ce")
    assert run.info["pipeline"]["stages"][1]["kind"] == "cross-encoder"
    model = CrossEncoder(str(tiny_cross_encoder), device="cpu")
    queries = store.queries("demo", "test")
    docs = store.corpus("demo")
    text_of = dict(zip(docs.ids, docs.encode_texts()))
    ref = {}
    for q, row in bm25.items():
        s = model.predict([(queries[q], text_of[d]) for d, _ in row], show_progress_bar=False)
        ref[q] = _top({d: float(np.float32(v)) for (d, _), v in zip(row, s)}, 10)
    assert run.metrics["ndcg@10"] == pytest.approx(_trec(store.qrels("demo", "test"), ref)["ndcg_cut_10"], abs=1e-4)
    stored = store.run_rankings(run.id)
    q = next(iter(ref))
    assert [d for d, _ in stored[q]] == list(ref[q])


def test_a_bad_pipeline_fails_before_anything_is_saved(demo_store) -> None:
    store = demo_store
    before = store.list_models()
    with pytest.raises(EmbtuiError, match="need a fusion"):
        make_pipeline(store, "p", ["bm25", "bm25"])
    with pytest.raises(EmbtuiError, match="two or more"):
        make_pipeline(store, "p", ["bm25"], fuse="rrf")
    with pytest.raises(EmbtuiError, match="unknown model 'nope/zzz'"):
        make_pipeline(store, "p", ["bm25", "nope/zzz"], fuse="rrf")
    with pytest.raises(EmbtuiError, match="bm25 cannot rerank"):
        make_pipeline(store, "p", ["bm25"], rerank=["bm25"])
    with pytest.raises(EmbtuiError, match="k 'x' is not a whole number"):
        make_pipeline(store, "p", ["bm25", "bm25"], fuse="rrf:x")
    assert store.list_models() == before
    make_pipeline(store, "p", ["bm25", "bm25"], fuse="rrf:10")
    with pytest.raises(EmbtuiError, match="already saved"):
        make_pipeline(store, "p", ["bm25", "bm25"], fuse="rrf")
    assert list_pipelines(store)["p"].rrf_k == 10


def test_an_identical_pipeline_run_is_reused(demo_store) -> None:
    make_pipeline(demo_store, "p", ["bm25", "bm25"], fuse="rrf")
    first = _run(demo_store, "p")
    plan = plan_evaluation(demo_store, "demo", ["p"], split="test", device="cpu")
    assert [r.id for r in plan.reused] == [first.id]


def test_cli_pipelines_add_list_and_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from embtui.cli.main import main
    from tests.conftest import DEMO

    ws = ["--workspace", str(tmp_path / "ws")]
    assert main([*ws, "import", "beir", str(DEMO), "--project", "demo"]) == 0
    assert main([*ws, "pipelines", "add", "twice", "--retrieve", "bm25", "--retrieve", "bm25",
                 "--fuse", "rrf:30"]) == 0
    assert "saved pipeline 'twice': rrf(k=30)[bm25, bm25]" in capsys.readouterr().out
    assert main([*ws, "pipelines", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["pipelines"]
    assert [(p["name"], p["fuse"], p["rrf_k"]) for p in listed] == [("twice", "rrf", 30)]
    assert main([*ws, "eval", "--project", "demo", "--model", "twice", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    bm25_alone = main([*ws, "eval", "--project", "demo", "--model", "bm25", "--json"])
    assert bm25_alone == 0
    alone = json.loads(capsys.readouterr().out)
    # bm25 fused with itself ranks exactly as bm25 does (same order, so the same metrics)
    assert out["runs"][0]["metrics"]["ndcg@10"] == pytest.approx(alone["runs"][0]["metrics"]["ndcg@10"], abs=1e-12)
    assert main([*ws, "pipelines", "remove", "twice"]) == 0
    assert main([*ws, "pipelines", "add", "x"]) == 2
    assert "needs at least one --retrieve" in capsys.readouterr().err
