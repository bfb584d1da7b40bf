"""Live queries through pipelines rank as the pipeline's run did: RRF of bm25 and a dense model, a
bi-encoder cascade, a cross-encoder cascade — compared with the stored rankings, dataset queries."""

from __future__ import annotations

from pathlib import Path

from embtui.api.evaluations import plan_evaluation, run_inline
from embtui.api.live import LiveSearcher
from embtui.api.pipelines import make_pipeline
from embtui.engine.models import ModelSpec


def _same_as_the_run(store, name: str, n: int = 12) -> None:
    [o] = run_inline(plan_evaluation(store, "demo", [name], split="test", device="cpu"))
    searcher = LiveSearcher(store, "demo", ModelSpec.from_dict(o.run.model_spec), device="cpu")
    assert type(searcher).__name__ == "PipelineLiveSearcher"
    queries = store.queries("demo", "test")
    stored = store.run_rankings(o.run.id)
    for qid in list(queries)[:n]:
        hits = searcher.search(queries[qid], 10)
        assert [h.doc_id for h in hits] == [d for d, _ in stored[qid][:10]], qid
    assert searcher.complete and searcher.missing_docs == 0


def test_live_hybrid(demo_store, tiny_model: Path) -> None:
    make_pipeline(demo_store, "hyb", ["bm25", str(tiny_model)], fuse="rrf")
    _same_as_the_run(demo_store, "hyb")


def test_live_weighted_cascade(demo_store, tiny_model: Path) -> None:
    make_pipeline(demo_store, "wc", ["bm25", str(tiny_model)], fuse="weighted:0.4,0.6",
                  rerank=[str(tiny_model)], rerank_depth=[30])
    _same_as_the_run(demo_store, "wc")


def test_live_cross_encoder_cascade(demo_store, tiny_cross_encoder: Path) -> None:
    make_pipeline(demo_store, "ce", ["bm25"], cross_encoder=[str(tiny_cross_encoder)], rerank_depth=[15])
    _same_as_the_run(demo_store, "ce", n=6)
