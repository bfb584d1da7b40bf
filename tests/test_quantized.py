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


@pytest.mark.parametrize("precision", ["int8", "binary"])
@pytest.mark.parametrize("rescore", [1, 4])
def test_a_code_index_equals_usearch_on_the_same_codes_and_finds_the_exact_results(
        precision: str, rescore: int, tmp_path: Path) -> None:
    """A real USearch index over the codes: the same neighbours and distances as USearch used
    directly on the same codes (exact=True, so no graph randomness), and recall@10 against the exact
    quantised search of at least 0.9 (rescored or not), with equal scores where the ids agree."""
    from usearch.index import Index

    from embtui.engine.hnsw import HnswConfig, recall_at_k
    from embtui.engine.quantized import CodeIndex

    rng = np.random.default_rng(3)
    d, q = _unit(rng, 2000, 48), _unit(rng, 60, 48)
    tie = rng.permutation(2000)
    qc = quantize_corpus(d, precision)
    config = HnswConfig(connectivity=16, expansion_search=256)
    index = CodeIndex.build_codes(qc, config)
    path = tmp_path / "codes.usearch"
    index.save(path)
    loaded = CodeIndex.load_codes(path, config, qc)
    got_idx, got_sc = loaded.search_codes(qc, q, 10, rescore=rescore, tie_order=tie)
    assert got_idx.shape == (60, 10) and (got_idx >= 0).all()

    # USearch directly on the same codes: int8 as i8 inner product, binary as packed b1 hamming
    from sentence_transformers.util.quantization import quantize_embeddings

    if precision == "int8":
        rows, q_rows = qc.codes, quantize_embeddings(q, precision="int8", ranges=qc.ranges)
        direct = Index(ndim=48, metric="ip", dtype="i8")
    else:
        rows = (qc.codes.astype(np.int16) + 128).astype(np.uint8)
        q_rows = (quantize_embeddings(q, precision="binary").astype(np.int16) + 128).astype(np.uint8)
        direct = Index(ndim=48, metric="hamming", dtype="b1")
    direct.add(np.arange(2000, dtype=np.uint64), rows)
    mine = loaded._index.search(q_rows, 20, exact=True)
    theirs = direct.search(q_rows, 20, exact=True)
    np.testing.assert_array_equal(np.asarray(mine.distances), np.asarray(theirs.distances))
    # the cheap scores are what the exact numpy path computes (int8 dot; 48 - 2 * hamming)
    if precision == "int8":
        cheap = q_rows.astype(np.int64) @ qc.codes.astype(np.int64).T
        np.testing.assert_array_equal(1 - np.asarray(theirs.distances)[:, :1],
                                      np.take_along_axis(cheap, np.asarray(theirs.keys)[:, :1].astype(np.int64), 1))
    else:
        ham = (_bits(quantize_embeddings(q, precision="binary"))[:, None, :] != _bits(qc.codes)[None]).sum(-1)
        np.testing.assert_array_equal(np.asarray(theirs.distances)[:, :1],
                                      np.take_along_axis(ham, np.asarray(theirs.keys)[:, :1].astype(np.int64), 1))

    ex_idx, ex_sc = quantized_search(q, qc, 10, rescore=rescore, tie_order=tie)
    assert recall_at_k(got_idx, ex_idx, 10) >= 0.9
    same = got_idx == ex_idx
    np.testing.assert_allclose(got_sc[same], ex_sc[same], rtol=0, atol=1e-5)
    assert loaded.precision == precision and len(loaded) == 2000


def test_a_damaged_code_index_is_refused_and_an_hnsw_run_rebuilds_it(demo_store, tiny_model: Path) -> None:
    """A quantised run with --index hnsw builds a USearch index over the codes, records its recall
    against the exact quantised search and its bytes per document, reuses the verified file, and
    rebuilds a damaged one with a warning (the damaged file is never searched)."""
    from embtui.engine.hnsw import HnswConfig
    from embtui.engine.quantized import CodeIndex

    store = demo_store

    def run(precision: str, rescore: int = 1, index: str = "hnsw"):
        [o] = run_inline(plan_evaluation(store, "demo", [str(tiny_model)], split="test", device="cpu",
                                         index=index, force=True,
                                         overrides={"quantize": precision, "rescore": rescore}))
        return o.run

    def overlap(approx_run, exact_run) -> float:  # recall@10 of one run against another, here
        ex_rank, ann_rank = store.run_rankings(exact_run.id), store.run_rankings(approx_run.id)
        return float(np.mean([len({d for d, _ in ann_rank[q][:10]} & {d for d, _ in ex_rank[q][:10]}) / 10
                              for q in ex_rank]))

    exact = run("int8", 4, index="exact")
    first = run("int8", 4)
    assert first.index_config["kind"] == "hnsw" and first.index_config["reused"] is False
    assert first.index_config["code_index"]["dtype"] == "i8" and first.index_config["code_index"]["metric"] == "ip"
    assert first.info["bytes_per_doc"] == 32 and first.info["ann_recall@10"] >= 0.9
    assert first.info["index_bytes_per_doc"] == pytest.approx(first.info["index_bytes"] / 400, abs=0.1)
    assert first.info["ann_recall@10"] == pytest.approx(overlap(first, exact), abs=1e-6)
    again = run("int8", 1)  # another rescoring, the same codes: the same index file
    assert again.index_config["reused"] is True and again.index_config["path"] == first.index_config["path"]

    path = store.ws.root / first.index_config["path"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    qc = quantize_corpus(np.ones((400, 32), dtype=np.float32), "int8")
    with pytest.raises(EmbtuiError, match="index file .* is"):
        CodeIndex.load_codes(path, HnswConfig(), qc)
    fixed = run("int8", 4)
    assert fixed.index_config["reused"] is False
    assert any("rebuilt it" in w for w in fixed.info.get("warnings", []))
    assert store.run_rankings(fixed.id) == store.run_rankings(first.id)  # one thread: the same graph
    # binary: b1 hamming; the tiny random model gives only a few dozen distinct 32-bit codes, a
    # graph of duplicates, so its recall is low here: recorded, warned about, and what it says
    exact_b, binary = run("binary", 4, index="exact"), run("binary", 4)
    assert binary.index_config["code_index"]["dtype"] == "b1" and binary.index_config["code_index"]["metric"] == "hamming"
    assert binary.info["bytes_per_doc"] == 4
    assert binary.info["ann_recall@10"] == pytest.approx(overlap(binary, exact_b), abs=1e-6)


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
