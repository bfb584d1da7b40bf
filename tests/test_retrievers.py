"""Retrievers behind one protocol: evaluation asks the registry, holds no kind-specific branch,
and a new kind of retriever plugs in without touching engine/evaluate.py."""

from __future__ import annotations

import numpy as np
import pytest

from embtui.engine import retrievers
from embtui.engine.evaluate import EvalRequest, run_evaluation
from embtui.engine.metrics import evaluate
from embtui.engine.models import ModelSpec
from embtui.engine.retrievers import Retrieval, RetrievalContext, retriever_for
from embtui.engine.retrievers.dense import DenseRetriever
from embtui.engine.retrievers.lexical import LexicalRetriever


def test_the_registry_picks_the_retriever_by_spec(tiny_model):
    assert isinstance(retriever_for(ModelSpec("bm25")), LexicalRetriever)
    dense = retriever_for(ModelSpec(str(tiny_model)))
    assert isinstance(dense, DenseRetriever)
    assert dense.uses_model_device and not retriever_for(ModelSpec("bm25")).uses_model_device


class ReversedBm25:
    """A made-up kind: BM25's ranking of the top 20, reversed (a stand-in for a reranker)."""

    kind = "reversed-bm25"
    uses_model_device = False

    def retrieve(self, ctx: RetrievalContext) -> Retrieval:
        inner = LexicalRetriever(ModelSpec("bm25")).retrieve(ctx)
        idx = inner.idx[:, :20][:, ::-1].copy()
        scores = np.tile(np.arange(20, 0, -1, dtype=np.float32), (len(idx), 1))
        ctx.index_config["kind"] = self.kind
        return Retrieval(idx, scores, fingerprint="reversed-" + str(inner.fingerprint), device="cpu")


def test_a_new_kind_of_retriever_plugs_in_without_a_branch(demo_store, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(retrievers, "RETRIEVERS",
                        [lambda spec: ReversedBm25() if spec.name == "rev" else None,
                         *retrievers.RETRIEVERS])
    plain = run_evaluation(demo_store, EvalRequest("demo", ModelSpec("bm25"), ks=(10,), depth=20))
    rev = run_evaluation(demo_store, EvalRequest("demo", ModelSpec("bm25", name="rev"), ks=(10,),
                                                 depth=20))
    assert rev.run.index_config["kind"] == "reversed-bm25"
    assert rev.run.model_fingerprint.startswith("reversed-bm25s-")
    # the stored ranking is the plain one's top 20 reversed, scored like any other run
    for q, row in plain.rankings.items():
        assert [d for d, _ in rev.rankings[q]] == [d for d, _ in row[:20]][::-1]
    qrels = demo_store.qrels("demo", "test")
    again = evaluate(qrels, rev.rankings, ks=(10,))
    assert rev.run.metrics["ndcg@10"] == pytest.approx(again.aggregate["ndcg@10"], abs=1e-12)
    assert rev.run.metrics["ndcg@10"] < plain.run.metrics["ndcg@10"]
