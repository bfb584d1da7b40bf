"""The Query pane: live search per selected model, dataset queries with judged docs marked,
model states, documents."""

from __future__ import annotations

from embtui.tui.app import EmbtuiApp
from embtui.tui.panes.query import QueryPane
from embtui.tui.testing import screen_text, settle
from embtui.tui.widgets.hit_list import HitList, HitRow

QUERY_5 = "1/2000 in UK have abnormal PrP positivity."
RELEVANT_5 = "13734012"


def make_app(ws, **kw):
    return EmbtuiApp(ws, warmup=False, poll_jobs=False, device_lister=lambda: [], **kw)


def columns(app) -> dict[str, HitList]:
    return {c.model: c for c in app.query(HitList)}


async def test_typing_searches_every_selected_model_once_after_a_pause(ws):
    messages = []
    app = make_app(ws)
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        await settle(pilot)
        assert app.focused is app.query_one("#query-input")
        await pilot.press(*"vitamin d")
        await pilot.pause(0.3)
        await settle(pilot)
        results = [m for m in messages if isinstance(m, QueryPane.ResultsReady)]
        # debounced: the whole word is searched once per model, not once per key
        assert sorted(m.model for m in results) == ["bm25", "tiny"]
        assert all(m.text == "vitamin d" for m in results)
        cols = columns(app)
        assert cols["bm25"].shown_text == "vitamin d"
        # bm25 lists only documents sharing a term with the query (8 here); dense models fill k
        assert 0 < len(cols["bm25"].hits) <= 10 and all(h.score > 0 for h in cols["bm25"].hits)
        assert len(cols["tiny"].hits) == 10
        assert "vitamin" in (cols["bm25"].hits[0].title + cols["bm25"].hits[0].text).lower()
        assert [h.rank for h in cols["tiny"].hits] == list(range(1, 11))
        assert cols["bm25"].state == "ready"
        assert "Vitamin D" in screen_text(app)


async def test_a_dataset_query_marks_judged_relevant_documents(ws):
    app = make_app(ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        pane = app.pane("query")
        await pilot.press("ctrl+o")
        await pilot.pause()
        from embtui.tui.screens.query_picker import QueryPicker

        assert isinstance(app.screen, QueryPicker)
        await pilot.press(*"prp positivity")
        await pilot.pause()
        assert "1 queries" in screen_text(app)
        await pilot.press("enter")
        await settle(pilot)
        assert not isinstance(app.screen, QueryPicker)
        assert app.query_one("#query-input").value == QUERY_5
        assert pane.query_id == "5"
        bm25 = columns(app)["bm25"]
        assert bm25.hits[0].doc_id == RELEVANT_5
        first_row = bm25.query(HitRow).first()
        assert first_row.has_class("-relevant")
        assert not any(r.has_class("-relevant") for r in list(bm25.query(HitRow))[1:])
        assert "✓" in screen_text(app)
        assert "dataset query 5" in screen_text(app)


async def test_cached_dataset_query_needs_no_model_but_free_text_loads_it(ws):
    messages = []
    app = make_app(ws)
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        await settle(pilot)
        pane = app.pane("query")
        pane.set_query(QUERY_5)
        await settle(pilot)
        states = [m.state for m in messages if isinstance(m, QueryPane.ModelState) and m.model == "tiny"]
        assert "loading" not in states  # the query vector came from the embedding cache
        searcher = next(s for k, s in pane._searchers.items() if k[2] == "tiny")
        assert not searcher.model_loaded
        messages.clear()
        pane.set_query("prion protein in blood")
        await settle(pilot)
        tiny = [m for m in messages if getattr(m, "model", None) == "tiny"
                and isinstance(m, (QueryPane.ModelState, QueryPane.ResultsReady))]
        assert isinstance(tiny[0], QueryPane.ModelState) and tiny[0].state == "loading"
        assert isinstance(tiny[-1], QueryPane.ResultsReady)
        assert searcher.model_loaded
        assert columns(app)["tiny"].state == "ready"


async def test_a_model_without_cached_embeddings_says_to_evaluate_it(ws, monkeypatch):
    """Over the on-demand limit (tests/tui/test_tui_live.py has the encode under it)."""
    from embtui.store import Store

    monkeypatch.setenv("EMBTUI_LIVE_ENCODE_MAX_DOCS", "100")

    Store(ws).save_model("all-MiniLM-L6-v2", {"model": "all-MiniLM-L6-v2", "name": "all-MiniLM-L6-v2"})
    app = make_app(ws)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        from embtui.tui.messages import ModelToggled

        app.post_message(ModelToggled("all-MiniLM-L6-v2"))
        await settle(pilot)
        assert "all-MiniLM-L6-v2" in app.context.models
        app.pane("query").set_query(QUERY_5)
        await settle(pilot)
        column = columns(app)["all-MiniLM-L6-v2"]
        assert column.state == "not evaluated"
        assert "evaluate it first" in column.status_message
        assert "cached embeddings for 0 of 400" in screen_text(app)
        assert columns(app)["bm25"].state == "ready"  # the other models still answer


async def test_enter_on_a_hit_opens_the_document(ws):
    from embtui.tui.screens.document import DocumentScreen

    app = make_app(ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.pane("query").set_query(QUERY_5)
        await settle(pilot)
        await pilot.press("enter")  # from the box: focus the first column
        await pilot.pause()
        await pilot.press("enter")  # on the first hit
        await pilot.pause()
        assert isinstance(app.screen, DocumentScreen)
        assert app.screen.doc_id == RELEVANT_5
        text = screen_text(app)
        assert "judged relevant" in text and "rank 1" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, DocumentScreen)


async def test_deselecting_a_model_removes_its_column(ws):
    from embtui.tui.messages import ModelToggled

    app = make_app(ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert set(columns(app)) == {"bm25", "tiny"}
        app.post_message(ModelToggled("tiny"))
        await settle(pilot)
        assert set(columns(app)) == {"bm25"}
        app.post_message(ModelToggled("bm25"))
        await settle(pilot)
        assert columns(app) == {}
        assert "No model selected" in screen_text(app)


async def test_k_shows_more_hits_and_relevant_ones_below_are_named(ws):
    """`k` steps the hits shown per model through 10, 20, 50; a judged-relevant document ranked
    below the shown ones is named with its rank in the column's status line."""
    app = make_app(ws)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        pane = app.pane("query")
        pane.set_query(QUERY_5)
        await settle(pilot)
        tiny = columns(app)["tiny"]
        assert len(tiny.hits) == 10 and len(tiny.ranked) == 100
        assert [h.rank for h in tiny.ranked] == list(range(1, 101))
        relevant = {d for d, g in pane.qrels["5"].items() if g > 0}
        below = [h.rank for h in tiny.ranked[10:] if h.doc_id in relevant]
        missing = len(relevant) - sum(h.doc_id in relevant for h in tiny.ranked)
        assert below or missing  # the tiny random model does not find it in its top 10
        for rank in below:
            assert f"#{rank}" in tiny.status_message
        if missing:
            assert f"{missing} ✓ not in top 100" in tiny.status_message

        await pilot.press("escape", "k")
        await settle(pilot)
        assert pane.top_k == 20
        assert len(tiny.hits) == 20
        assert sum(1 for r in tiny.query(HitRow) if r.display) == 20
        shown = [r.hit.doc_id for r in tiny.query(HitRow) if r.display]
        assert shown == [h.doc_id for h in tiny.ranked[:20]]
        assert all(r.has_class("-relevant") == (r.hit.doc_id in relevant)
                   for r in tiny.query(HitRow) if r.display)
        await pilot.press("k", "k")
        await settle(pilot)
        assert pane.top_k == 10 and len(tiny.hits) == 10
        assert sum(1 for r in tiny.query(HitRow) if r.display) == 10


async def test_a_pipeline_answers_live_queries_beside_its_parts(ws):
    from embtui.api.evaluations import plan_evaluation, run_inline
    from embtui.api.pipelines import make_pipeline
    from embtui.api.workspace import Store
    from embtui.tui.messages import ModelToggled

    store = Store.open(ws)
    make_pipeline(store, "hybrid", ["bm25", "tiny"], fuse="rrf")
    [run] = run_inline(plan_evaluation(store, "demo", ["hybrid"], split="test", device="cpu"))
    queries = store.queries("demo", "test")
    qid = next(iter(queries))
    app = make_app(ws)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        if "hybrid" not in app.context.models:  # selected by default once it has a finished run
            app.post_message(ModelToggled("hybrid"))
            await settle(pilot)
        assert "hybrid" in app.context.models
        app.pane("query").set_query(queries[qid])
        for _ in range(100):  # the pipeline prepares its stages in a worker
            await pilot.pause(0.05)
            cols = columns(app)
            if "hybrid" in cols and cols["hybrid"].hits and cols["hybrid"].shown_text == queries[qid]:
                break
        await settle(pilot)
        hits = columns(app)["hybrid"].hits
        assert [h.doc_id for h in hits] == [d for d, _ in store.run_rankings(run.run.id)[qid][:10]]
