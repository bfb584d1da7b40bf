"""Live search on a model that is not fully evaluated: the chunks cached so far, picked up as more
land, and the rest encoded on demand into the cache an evaluation then reuses."""

from __future__ import annotations

import numpy as np
import pytest

from embtui.engine.encode import Encoder
from embtui.engine.evaluate import EvalRequest, run_evaluation
from embtui.engine.live import LiveSearcher
from embtui.engine.models import ModelSpec
from embtui.engine.progress import CancelToken
from embtui.engine.search import exact_search, tie_order_for
from embtui.errors import Cancelled

QUERY = "prion disease in the United Kingdom"


def _spec(tiny_model):
    return ModelSpec(str(tiny_model), name="tiny", device="cpu")


def _encode_some(store, spec, rows):
    """Cache the documents at ``rows`` as a job would have committed them so far."""
    texts = store.corpus("demo").encode_texts()
    Encoder(spec, store.ws.cache_dir, store=store, device="cpu").encode([texts[i] for i in rows],
                                                                         "document")


def _expected(searcher, rows, k):
    """Exact search over just ``rows`` of the corpus, with the same tie rule."""
    corpus = searcher.corpus
    enc = searcher._encoder
    model = enc.model()
    docs = np.asarray(model.encode([corpus.encode_texts()[i] for i in rows],
                                   normalize_embeddings=True), np.float32)
    q = searcher.encode_query(QUERY)[None, :]
    tie = tie_order_for(corpus.ids)[np.asarray(rows)]
    idx, _ = exact_search(q, docs, k, metric="ip", tie_order=tie)
    return [corpus.ids[rows[i]] for i in idx[0]]


def test_partial_cache_searches_the_cached_documents_and_picks_up_new_chunks(demo_store, tiny_model):
    spec = _spec(tiny_model)
    first = list(range(0, 400, 3))  # 134 documents committed so far
    _encode_some(demo_store, spec, first)
    searcher = LiveSearcher(demo_store, "demo", spec)
    searcher.prepare()
    assert (searcher.cached_docs, searcher.total_docs, searcher.complete) == (134, 400, False)
    assert searcher.missing_docs == 266
    hits = searcher.search(QUERY, 20)
    ids = demo_store.corpus("demo").ids
    cached_ids = {ids[i] for i in first}
    assert len(hits) == 20 and all(h.doc_id in cached_ids for h in hits)
    assert [h.doc_id for h in hits] == _expected(searcher, first, 20)
    assert searcher.refresh() is False  # nothing new committed
    more = sorted(set(first) | set(range(1, 400, 3)))
    _encode_some(demo_store, spec, more)
    assert searcher.refresh() is True
    assert searcher.cached_docs == len(more) == 267
    hits = searcher.search(QUERY, 20)
    assert [h.doc_id for h in hits] == _expected(searcher, more, 20)
    assert any(h.doc_id not in cached_ids for h in hits)


def test_on_demand_encode_fills_the_cache_that_an_evaluation_reuses(demo_store, tiny_model):
    spec = _spec(tiny_model)
    searcher = LiveSearcher(demo_store, "demo", spec)
    searcher.prepare()
    assert (searcher.cached_docs, searcher.complete) == (0, False)
    assert searcher.search(QUERY, 10) == []  # nothing cached: nothing to rank
    events = []
    assert searcher.encode_documents(progress=events.append) == 400
    assert searcher.complete and searcher.cached_docs == 400
    assert events and events[-1].done == events[-1].total == 400
    assert all(b.done >= a.done for a, b in zip(events, events[1:]))
    hits = searcher.search(QUERY, 10)
    result = run_evaluation(demo_store, EvalRequest("demo", spec, device="cpu"))
    assert result.run.info["encode"]["documents"]["encoded"] == 0  # all reused
    # the live ranking is the evaluation's ranking, for a query of the dataset too
    fresh = LiveSearcher(demo_store, "demo", spec)
    query5 = demo_store.queries("demo")["5"]
    assert [h.doc_id for h in fresh.search(query5, 10)] == [d for d, _ in result.rankings["5"][:10]]
    assert [h.doc_id for h in fresh.search(QUERY, 10)] == [h.doc_id for h in hits]


def test_a_cancelled_on_demand_encode_keeps_its_committed_chunks(demo_store, tiny_model):
    spec = _spec(tiny_model)
    searcher = LiveSearcher(demo_store, "demo", spec)
    cache = Encoder(spec, demo_store.ws.cache_dir, store=demo_store).cache("document")

    class CancelOnceAChunkIsCommitted(CancelToken):
        def check(self) -> None:  # as a user pressing stop right after the first chunk landed
            if cache.chunk_ids():
                self.cancel()
            super().check()

    with pytest.raises(Cancelled):
        searcher.encode_documents(cancel=CancelOnceAChunkIsCommitted())
    assert searcher.cached_docs == 64 and not searcher.complete  # one on-demand chunk
    assert len(searcher.search(QUERY, 10)) == 10
    assert searcher.encode_documents() == 400 - 64  # the rest, nothing twice
    assert searcher.complete
