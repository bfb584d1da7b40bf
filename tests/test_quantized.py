"""Cheaper embeddings from the cached float32 vectors: truncation equal to sentence-transformers'
``truncate_dim``, int8 and binary codes searched exactly with and without rescoring, each checked
against a plain numpy computation (sentence-transformers' ``quantize_embeddings`` for the codes,
pytrec_eval for the metrics) on the same inputs, with trec_eval's tie rule; bytes per document and
retention against the float32 run of the same model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embtui.api.evaluations import plan_evaluation, run_inline
from embtui.engine.encode import Encoder
from embtui.engine.models import ModelSpec
from embtui.engine.quantized import bytes_per_doc, quantize_corpus, quantized_search
from embtui.errors import EmbtuiError


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _bits(codes: np.ndarray) -> np.ndarray:
    return np.unpackbits((codes.astype(np.int16) + 128).astype(np.uint8), axis=1)


def _reference(q: np.ndarray, d: np.ndarray, precision: str, k: int, rescore: int,
               tie: np.ndarray) -> list[list[int]]:
    """Plain numpy: the codes from sentence-transformers, full score matrices, one query at a time."""
    from sentence_transformers.util.quantization import quantize_embeddings

    ranges = np.vstack((d.min(0), d.max(0))) if precision == "int8" else None
    dc = quantize_embeddings(d, precision=precision, ranges=ranges)
    qc = quantize_embeddings(q, precision=precision, ranges=ranges)
    if precision == "int8":
        cheap = qc.astype(np.int64) @ dc.astype(np.int64).T
    else:  # minus the hamming distance
        cheap = -(_bits(qc)[:, None, :] != _bits(dc)[None, :, :]).sum(-1)
    out = []
    for i in range(len(q)):
        order = np.lexsort((tie, -cheap[i]))
        if rescore == 1:
            out.append(order[:k].tolist())
            continue
        cand = order[:k * rescore]
        if precision == "int8":
            steps = (ranges[1] - ranges[0]) / 255
            vecs = (dc[cand].astype(np.float64) + 128) * steps + ranges[0]
        else:
            vecs = _bits(dc[cand]).astype(np.float64)
        s = (vecs @ q[i].astype(np.float64)).astype(np.float32)
        out.append(cand[np.lexsort((tie[cand], -s))][:k].tolist())
    return out


@pytest.mark.parametrize("precision", ["int8", "binary"])
@pytest.mark.parametrize("rescore", [1, 4])
def test_quantized_search_equals_plain_numpy(precision: str, rescore: int) -> None:
    rng = np.random.default_rng(3)
    d, q = _unit(rng, 2500, 48), _unit(rng, 40, 48)
    tie = rng.permutation(len(d))  # any tie order is followed exactly
    idx, scores = quantized_search(q, quantize_corpus(d, precision), 10, rescore=rescore, tie_order=tie)
    assert idx.tolist() == _reference(q, d, precision, 10, rescore, tie)
    assert np.all(np.diff(scores, axis=1) <= 0)
    if precision == "binary" and rescore == 1:  # integer scores tie: the tie rule decided
        assert any(len(set(row)) < len(row) for row in scores.tolist())


def test_search_in_blocks_equals_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    import embtui.engine.quantized as quantized

    rng = np.random.default_rng(5)
    d, q = _unit(rng, 1000, 32), _unit(rng, 7, 32)
    qc = quantize_corpus(d, "binary")
    whole = quantized_search(q, qc, 25, rescore=2)
    monkeypatch.setattr(quantized, "_BLOCK_BYTES", 4 * 32 * 37)  # 37 documents per block
    assert np.array_equal(quantized_search(q, qc, 25, rescore=2)[0], whole[0])


def test_bytes_per_doc() -> None:
    assert [bytes_per_doc(384, p) for p in (None, "int8", "binary")] == [1536, 384, 48]
    assert bytes_per_doc(100, "binary") == 13 and bytes_per_doc(384, None, "float16") == 768


def test_spec_checks_its_cheaper_fields() -> None:
    with pytest.raises(EmbtuiError, match="unknown quantization 'int4'"):
        ModelSpec("m", quantize="int4")
    with pytest.raises(EmbtuiError, match="rescoring needs quantised embeddings"):
        ModelSpec("m", rescore=4)
    assert "quantize" not in ModelSpec("m").to_dict()  # older specs keep their dict (run reuse)
    assert ModelSpec("m", quantize="int8", rescore=4).to_dict()["rescore"] == 4


def test_truncation_from_the_cache_equals_sentence_transformers(tiny_model: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    texts = [f"document number {i} about topic {i % 7}" for i in range(40)]
    full, stats = Encoder(ModelSpec(str(tiny_model)), tmp_path).encode(texts, "document")
    assert stats.encoded == 40
    cut, stats = Encoder(ModelSpec(str(tiny_model), truncate_dim=8), tmp_path).encode(texts, "document")
    assert stats.encoded == 0 and cut.shape == (40, 8)  # nothing encoded again
    ref = SentenceTransformer(str(tiny_model), device="cpu", truncate_dim=8).encode(
        texts, normalize_embeddings=True)
    np.testing.assert_allclose(cut, ref, atol=1e-5)
    assert full.shape[1] == 32


def _trec(qrels, run) -> float:
    import pytrec_eval

    res = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    return float(np.mean([v["ndcg_cut_10"] for v in res.values()]))


def test_an_int8_run_with_rescoring_equals_numpy_and_reports_bytes_and_retention(demo_store,
                                                                                 tiny_model: Path) -> None:
    store = demo_store

    def run(**overrides):
        [o] = run_inline(plan_evaluation(store, "demo", [str(tiny_model)], split="test", device="cpu",
                                         overrides=overrides))
        return o.run

    full = run()
    cheap = run(quantize="int8", rescore=4, truncate_dim=16)
    assert cheap.model_spec["quantize"] == "int8" and cheap.index_config["rescore"] == 4
    assert cheap.info["bytes_per_doc"] == 16 and full.info["bytes_per_doc"] == 32 * 4
    assert cheap.info["encode"]["documents"]["encoded"] == 0  # all from the cache
    retention = cheap.info["retention"]
    assert retention["against_run"] == full.id
    assert retention["ndcg@10"] == pytest.approx(cheap.metrics["ndcg@10"] / full.metrics["ndcg@10"], abs=1e-6)

    # independent, on the same inputs (the full cached vectors): truncated and normalised in
    # numpy, quantised by quantize_embeddings, searched in plain numpy, scored by pytrec_eval
    corpus = store.corpus("demo")
    queries = store.queries("demo", "test")
    qids = list(queries)
    enc = Encoder(ModelSpec(str(tiny_model)), store.ws.cache_dir, store=store)
    d = enc.encode(corpus.encode_texts(), "document")[0][:, :16]
    q = enc.encode([queries[x] for x in qids], "query")[0][:, :16]
    d, q = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (d, q))
    order = sorted(range(len(corpus.ids)), key=corpus.ids.__getitem__, reverse=True)
    tie = np.empty(len(order), dtype=np.int64)
    tie[order] = np.arange(len(order))
    ref_idx = _reference(q, d, "int8", 100, 4, tie)
    ref = {qid: {corpus.ids[i]: float(100 - r) for r, i in enumerate(row)} for qid, row in zip(qids, ref_idx)}
    assert cheap.metrics["ndcg@10"] == pytest.approx(_trec(store.qrels("demo", "test"), ref), abs=1e-4)


def test_quantised_search_refuses_hnsw(demo_store, tiny_model: Path) -> None:
    with pytest.raises(EmbtuiError, match="quantised \\(binary\\) search is exact"):
        run_inline(plan_evaluation(demo_store, "demo", [str(tiny_model)], split="test", device="cpu",
                                   index="hnsw", overrides={"quantize": "binary"}))


@pytest.mark.parametrize("overrides", [{"truncate_dim": 16}, {"quantize": "binary"},
                                       {"quantize": "int8", "rescore": 4, "truncate_dim": 24}])
def test_live_search_ranks_as_the_cheaper_run_did(demo_store, tiny_model: Path, overrides) -> None:
    from embtui.api.live import LiveSearcher

    store = demo_store
    [o] = run_inline(plan_evaluation(store, "demo", [str(tiny_model)], split="test", device="cpu",
                                     overrides=overrides))
    searcher = LiveSearcher(store, "demo", ModelSpec.from_dict(o.run.model_spec), device="cpu")
    queries = store.queries("demo", "test")
    stored = store.run_rankings(o.run.id)
    for qid in list(queries)[:15]:
        hits = searcher.search(queries[qid], 10)
        assert [h.doc_id for h in hits] == [d for d, _ in stored[qid][:10]], qid
