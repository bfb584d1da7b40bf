"""BM25 built in batches gives bm25s's one-shot scores exactly, and the rankings of a run match."""

from __future__ import annotations

import numpy as np
import pytest

from embtui.engine import bm25 as bm25_mod
from embtui.engine.bm25 import DEFAULTS, BM25Retriever, corpus_batches
from embtui.engine.evaluate import EvalRequest, run_evaluation
from embtui.engine.models import ModelSpec
from embtui.engine.search import tie_order_for, top_k_rows

WORDS = ("running runner runs ran the of and Café CAFÉ naïve straße ÉCOLE école 2024 x1 ab_cd "
         "data-driven retrieval retrieving retrieved embedding embeddings model models "
         "evaluation evaluated BM25 bm25 ranking ranked Zürich 東京 タワー ½ x").split()


def _corpus(n: int, seed: int = 3) -> list[str]:
    rng = np.random.default_rng(seed)
    texts = []
    for i in range(n):
        k = int(rng.integers(0, 40))
        texts.append(" ".join(WORDS[j] for j in rng.integers(0, len(WORDS), size=k)))
    texts[5] = ""  # an empty document
    texts[6] = "the and of"  # stopwords only
    return texts


def _one_shot(texts: list[str], method: str):
    """The index as bm25s builds it in one call (what embtui did before batching)."""
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
    index = bm25s.BM25(k1=DEFAULTS["k1"], b=DEFAULTS["b"], method=method)
    index.index(tokens, show_progress=False)
    return index, stemmer


@pytest.mark.parametrize("method", ["lucene", "robertson", "atire", "bm25l", "bm25+"])
def test_batched_build_scores_equal_the_one_shot_build(method: str) -> None:
    import bm25s

    texts = _corpus(300)
    ref, stemmer = _one_shot(texts, method)
    batched = BM25Retriever(batches=(texts[i:i + 7] for i in range(0, len(texts), 7)),
                            total=len(texts), params={"method": method})
    assert batched.n_docs == len(texts)
    for query in ["running café", "École ZÜRICH 東京", "embeddings models evaluated", "x1 2024",
                  "½ ab_cd", "retrieval", "nothing-here-at-all"]:
        tokens = bm25s.tokenize([query], stopwords="en", stemmer=stemmer, return_ids=False,
                                show_progress=False)[0]
        want = np.asarray(ref.get_scores(tokens), dtype=np.float32)
        assert np.array_equal(batched.scores(query), want), query  # bit for bit


def test_batched_rankings_equal_one_shot_rankings_on_a_corpus_of_many_batches() -> None:
    import bm25s

    texts = _corpus(2_000, seed=11)
    ref, stemmer = _one_shot(texts, "lucene")
    mine = BM25Retriever(batches=(texts[i:i + 128] for i in range(0, len(texts), 128)),
                         total=len(texts))
    queries = [texts[i][:50] or "retrieval" for i in range(0, 2_000, 97)]
    tie_order = np.arange(len(texts))
    idx, scores = mine.search(queries, 50, tie_order)
    for qi, query in enumerate(queries):
        tokens = bm25s.tokenize([query], stopwords="en", stemmer=stemmer, return_ids=False,
                                show_progress=False)[0]
        want = np.asarray(ref.get_scores(tokens), dtype=np.float32)
        want_idx, want_scores = top_k_rows(want[None, :], 50, tie_order)
        assert idx[qi].tolist() == want_idx[0].tolist()
        assert np.array_equal(scores[qi], want_scores[0])


def test_texts_and_batches_build_the_same_index() -> None:
    texts = _corpus(500, seed=5)
    whole = BM25Retriever(texts)
    parts = BM25Retriever(batches=[texts[:1], texts[1:250], texts[250:]], total=len(texts))
    for key in ("data", "indices", "indptr"):
        assert np.array_equal(whole.index.scores[key], parts.index.scores[key])
    assert whole.index.vocab_dict == parts.index.vocab_dict
    assert whole.nbytes == parts.nbytes > 0
    with pytest.raises(TypeError):
        BM25Retriever()


def test_a_bm25_run_streamed_in_batches_ranks_as_the_one_shot_index(demo_store, monkeypatch) -> None:
    corpus = demo_store.corpus("demo")
    monkeypatch.setattr(bm25_mod, "BATCH_TEXTS", max(1, len(corpus) // 7))  # several batches
    assert len(list(corpus_batches(corpus))) > 1
    run = run_evaluation(demo_store, EvalRequest("demo", ModelSpec("bm25"), ks=(10,), depth=20))
    ref, stemmer = _one_shot(corpus.encode_texts(), "lucene")
    import bm25s

    queries = demo_store.queries("demo", "test")
    tie_order = tie_order_for(corpus.ids)
    for qid, text in queries.items():
        tokens = bm25s.tokenize([text], stopwords="en", stemmer=stemmer, return_ids=False,
                                show_progress=False)[0]
        want = (np.asarray(ref.get_scores(tokens), dtype=np.float32) if tokens
                else np.zeros(len(corpus), dtype=np.float32))
        want_idx, _ = top_k_rows(want[None, :], 20, tie_order)
        assert [d for d, _ in run.rankings[qid]] == [corpus.ids[i] for i in want_idx[0]], qid
