"""UI-free parts behind the TUI: live search (engine/live.py), demo seeding (engine/demo.py)
and the run analyses (analysis/failures.py, analysis/metrics_table.py)."""

from __future__ import annotations

import numpy as np
import pytest

from embtui.engine.demo import DEMO_PROJECT, ensure_demo
from embtui.engine.evaluate import EvalRequest, run_evaluation
from embtui.engine.live import LiveSearcher, NotEvaluated
from embtui.engine.models import ModelSpec
from embtui.engine.search import exact_search, tie_order_for
from embtui.analysis.failures import failure_detail, find_failures
from embtui.analysis.metrics_table import export_table, metric_columns, run_row

QUERY_5 = "1/2000 in UK have abnormal PrP positivity."


def test_ensure_demo_seeds_an_empty_workspace_once(store):
    assert ensure_demo(store) is True
    info = store.get_project(DEMO_PROJECT)
    assert (info.documents, info.queries) == (400, 150)
    assert set(info.splits) == {"test", "train"}
    assert set(store.list_models()) == {"bm25", "all-MiniLM-L6-v2"}
    assert ensure_demo(store) is False


def test_ensure_demo_leaves_a_workspace_with_projects_alone(demo_store):
    demo_store.delete_project("demo")
    from embtui.data.beir import import_beir
    from embtui.engine.demo import DEMO_PATH

    import_beir(demo_store, DEMO_PATH, "mine")
    assert ensure_demo(demo_store) is False
    assert [p.name for p in demo_store.list_projects()] == ["mine"]


def test_bm25_live_search_ranks_like_the_evaluation(demo_store):
    spec = ModelSpec("bm25")
    result = run_evaluation(demo_store, EvalRequest("demo", spec))
    searcher = LiveSearcher(demo_store, "demo", spec)
    hits = searcher.search(QUERY_5, 10)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert [(h.doc_id, pytest.approx(h.score, rel=1e-5)) for h in hits] == \
        [(d, pytest.approx(s, rel=1e-5)) for d, s in result.rankings["5"][:len(hits)]]
    assert hits[0].doc_id == "13734012" and hits[0].title
    assert searcher.search("   ", 10) == []
    assert searcher.search("the of and", 10) == []  # only stopwords: nothing matches


def test_dense_live_search_ranks_like_the_evaluation(demo_store, tiny_model):
    spec = ModelSpec(str(tiny_model), name="tiny")
    before = LiveSearcher(demo_store, "demo", spec)
    before.prepare()  # nothing cached yet: nothing ranked (the Query pane encodes on demand)
    assert (before.cached_docs, before.total_docs, before.complete) == (0, 400, False)
    assert before.search("prion", 10) == []
    with pytest.raises(NotEvaluated, match="not been downloaded"):
        LiveSearcher(demo_store, "demo", ModelSpec("no-such-org/no-such-model")).prepare()
    result = run_evaluation(demo_store, EvalRequest("demo", spec))
    searcher = LiveSearcher(demo_store, "demo", spec)
    searcher.prepare()
    # a dataset query comes from the query cache: no model load
    assert not searcher.needs_model(QUERY_5)
    hits = searcher.search(QUERY_5, 10)
    assert not searcher.model_loaded
    assert [h.doc_id for h in hits] == [d for d, _ in result.rankings["5"][:10]]
    assert [round(h.score, 5) for h in hits] == [round(s, 5) for _, s in result.rankings["5"][:10]]
    # free text loads the model once, then encodes like the evaluation would
    assert searcher.needs_model("prion disease in the United Kingdom")
    hits = searcher.search("prion disease in the United Kingdom", 5)
    assert searcher.model_loaded and len(hits) == 5
    corpus = demo_store.corpus("demo")
    model = searcher._encoder.model()
    q = model.encode(["prion disease in the United Kingdom"], normalize_embeddings=True)
    docs = model.encode(corpus.encode_texts(), normalize_embeddings=True)
    idx, _ = exact_search(np.asarray(q, np.float32), np.asarray(docs, np.float32), 5, metric="ip",
                          tie_order=tie_order_for(corpus.ids))
    assert [h.doc_id for h in hits] == [corpus.ids[i] for i in idx[0]]


def test_failures_and_details_from_rankings():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1, "c": 0}, "q3": {"z": 1}, "q4": {"x": 0}}
    rankings = {"q1": [("a", 0.9), ("b", 0.8)], "q2": [("c", 0.9), ("d", 0.8), ("b", 0.7)],
                "q3": [("a", 0.5)]}
    queries = {"q1": "one", "q2": "two", "q3": "three", "q4": "four"}
    # threshold 2: q1 found at 1 (ok), q2 at 3 (fails), q3 never (fails, worst), q4 has no relevant
    fails = find_failures(rankings, qrels, queries, threshold=2)
    assert [(f.query_id, f.first_rank) for f in fails] == [("q3", None), ("q2", 3)]
    assert [f.query_id for f in find_failures(rankings, qrels, queries, 2, "thr")] == ["q3"]
    docs = {"b": ("B", "bee"), "c": ("C", "see"), "d": ("D", "dee")}
    detail = failure_detail("q2", "two", rankings["q2"], qrels["q2"], docs)
    assert [(d.doc_id, d.rank, d.score) for d in detail.relevant] == [("b", 3, 0.7)]
    assert [(d.doc_id, d.rank, d.grade) for d in detail.above] == [("c", 1, 0), ("d", 2, 0)]
    missing = failure_detail("q3", "three", rankings["q3"], qrels["q3"], {})
    assert missing.relevant[0].rank is None and len(missing.above) == 1


def test_metric_rows_and_exports(demo_store):
    run = run_evaluation(demo_store, EvalRequest("demo", ModelSpec("bm25"))).run
    row = run_row(run, 10)
    assert row["ndcg@10"] == run.metrics["ndcg@10"] and row["emb_bytes"] is None
    cols = metric_columns(10)
    csv_text = export_table([row], cols, "csv")
    assert csv_text.splitlines()[0].startswith("run,model,ndcg@10,mrr@10")
    md = export_table([row], cols, "md")
    assert f"{run.metrics['ndcg@10']:.4f}" in md


# -- the Query pane on a model that is not fully cached (Pilot, real tiny model, real jobs) -------------
SHORT = "tiny-short"  # the tiny model with another max length: a cache key no run has filled


def _short_spec(ws):
    from embtui.store import Store

    store = Store(ws)
    spec = ModelSpec.from_dict(dict(store.get_model("tiny"), name=SHORT, max_seq_length=32))
    store.save_model(SHORT, spec.to_dict())
    return store, spec


def _cache_rows(store, spec, rows):
    from embtui.engine.encode import Encoder

    texts = store.corpus("demo").encode_texts()
    Encoder(spec, store.ws.cache_dir, store=store, device="cpu").encode([texts[i] for i in rows],
                                                                         "document")


async def _only(pilot, model):
    from embtui.tui.messages import ModelToggled
    from embtui.tui.testing import settle

    app = pilot.app
    await settle(pilot)
    for m in set(app.context.models) ^ {model}:
        app.post_message(ModelToggled(m))
    await settle(pilot)
    assert app.context.models == (model,)


async def _wait(pilot, predicate, what, timeout=120.0):
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)
        await pilot.pause()


def _column(app, model):
    from embtui.tui.widgets.hit_list import HitList

    return next(c for c in app.query(HitList) if c.model == model)


async def test_query_pane_encodes_a_small_uncached_corpus_on_demand(ws):
    from embtui.engine.cache import hash_texts
    from embtui.engine.encode import Encoder
    from embtui.jobs import list_jobs
    from embtui.tui.app import EmbtuiApp
    from embtui.tui.panes.query import QueryPane
    from embtui.tui.testing import screen_text

    store, spec = _short_spec(ws)
    messages = []
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False, device_lister=lambda: [])
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        await _only(pilot, SHORT)
        app.pane("query").set_query(QUERY_5)
        column = _column(app, SHORT)
        await _wait(pilot, lambda: column.state in ("ready", "error", "not evaluated"),
                    f"on-demand encode: {column.state} {column.status_message}")
        assert column.state == "ready", column.status_message
        states = [m for m in messages if isinstance(m, QueryPane.ModelState) and m.model == SHORT]
        assert any(m.state == "encoding" and "on demand" in m.message for m in states)
        assert any("of 400" in m.message for m in states)
        assert "searching" not in column.status_message  # the whole corpus is ranked
        assert len(column.hits) == 10
        await _wait(pilot, lambda: any("encoded 400 documents" in n.message
                                       for n in app._notifications), "notification")
        assert "1/2000 in UK" not in column.status_message and "hits" in screen_text(app)
    # committed to the embedding cache through the Encoder: an evaluation encodes nothing again
    cache = Encoder(spec, store.ws.cache_dir, store=store).cache("document")
    assert cache.missing(hash_texts(store.corpus("demo").encode_texts())) == []
    result = run_evaluation(store, EvalRequest("demo", spec, device="cpu"))
    assert result.run.info["encode"]["documents"]["encoded"] == 0
    assert [h.doc_id for h in column.hits] == [d for d, _ in result.rankings["5"][:10]]
    assert not list_jobs(ws)  # encoded in the app, no job


async def test_query_pane_searches_the_chunks_a_job_has_committed_and_follows_it(ws):
    import embtui.jobs as jobs_api
    from embtui.jobs.files import try_slot
    from embtui.store.db import Workspace
    from embtui.tui.app import EmbtuiApp

    store, spec = _short_spec(ws)
    first = list(range(0, 400, 3))  # 134 documents, as if a job had committed them
    _cache_rows(store, spec, first)
    ids = store.corpus("demo").ids
    held = []  # every CPU slot, as another job would hold them: the job waits in the queue
    while (lock := try_slot(Workspace(ws).jobs_dir / "locks", "cpu", 8)) is not None:
        held.append(lock)
    app = EmbtuiApp(ws, warmup=False, poll_jobs=True, job_poll_s=0.2, device_lister=lambda: [])
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            await _only(pilot, SHORT)
            job_id = jobs_api.submit_eval(ws, EvalRequest("demo", spec, device="cpu"), chunk_texts=64)
            await _wait(pilot, lambda: any(j.id == job_id for j in app.jobs), "job listed")
            app.pane("query").set_query(QUERY_5)
            column = _column(app, SHORT)
            await _wait(pilot, lambda: column.state == "ready", f"partial: {column.status_message}")
            assert column.status_message.startswith("searching 134 of 400 documents")
            assert f"job {job_id}" in column.status_message
            assert len(column.hits) == 10 and all(h.doc_id in {ids[i] for i in first}
                                                  for h in column.hits)
            for lock in held:  # the job runs, commits the rest; the column follows it
                lock.release()
            held = []
            await _wait(pilot, lambda: column.state == "ready" and
                        "searching" not in column.status_message, f"full: {column.status_message}")
            assert [j.state for j in app.jobs if j.id == job_id] in (["done"], ["running"])
            done = await _wait(pilot, lambda: all(j.state == "done" for j in app.jobs), "job done")
            assert done is None
            run = [r for r in store.list_runs("demo", status="done") if r.model_name == SHORT][0]
            assert [h.doc_id for h in column.hits] == [d for d, _ in store.run_rankings(run.id)["5"][:10]]
    finally:
        for lock in held:
            lock.release()


async def test_query_pane_over_the_on_demand_limit_searches_what_is_cached(ws, monkeypatch):
    from embtui.tui.app import EmbtuiApp

    monkeypatch.setenv("EMBTUI_LIVE_ENCODE_MAX_DOCS", "100")
    store, spec = _short_spec(ws)
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False, device_lister=lambda: [])
    async with app.run_test(size=(140, 40)) as pilot:
        await _only(pilot, SHORT)
        app.pane("query").set_query(QUERY_5)
        column = _column(app, SHORT)
        await _wait(pilot, lambda: column.state not in ("idle", "preparing"), column.state)
        assert column.state == "not evaluated"
        assert "cached embeddings for 0 of 400" in column.status_message
        assert "evaluate it first" in column.status_message
        _cache_rows(store, spec, range(200))
        app.pane("query").set_query("prion disease")
        await _wait(pilot, lambda: column.state == "ready", column.status_message)
        assert column.status_message.startswith("searching 200 of 400 documents (evaluate it")
        first = set(store.corpus("demo").ids[:200])
        assert all(h.doc_id in first for h in column.hits)
