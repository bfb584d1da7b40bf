"""The Space and Drift panes and the Project pane's data profile, on the demo with the tiny model:
points drawn and walked with the keys, a document opened, relevance colouring, a query log's drift
measured and raised as an alert, the profile written into the pane."""

from __future__ import annotations

from textual.widgets import Input, Static

from embtui.tui.app import EmbtuiApp
from embtui.tui.testing import settle
from embtui.tui.widgets.scatter import Scatter
from tests.conftest import REPO

NQ = REPO / "tests" / "data" / "nq_questions.txt"


async def until(pilot, predicate, timeout=30.0):
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)
        await settle(pilot)


def make_app(ws):
    return EmbtuiApp(ws, warmup=False, poll_jobs=False, device_lister=lambda: [])


def text_of(pane, wid):
    return str(pane.query_one(f"#{wid}", Static).render())


async def test_space_pane_draws_walks_opens_and_colours_by_relevance(ws):
    app = make_app(ws)
    async with app.run_test(size=(140, 44)) as pilot:
        await settle(pilot)
        await pilot.press("escape", "8")
        await settle(pilot, timeout=60)
        pane = app.pane("space")
        plot = pane.query_one(Scatter)
        assert app.current_pane == "space" and app.focused is plot
        assert len(plot.coords) == 500  # 400 documents + the test split's 100 queries
        drawn = str(plot.render())
        assert sum(0x2800 < ord(c) <= 0x28FF for c in drawn) > 50 and "◆" in drawn
        assert "anisotropy" in text_of(pane, "space-stats") and "silhouette" in text_of(pane, "space-stats")
        first = plot.cursor
        await pilot.press("right")
        assert plot.cursor != first
        assert plot.coords[plot.cursor, 0] > plot.coords[first, 0]  # right is right on screen
        assert "document" in text_of(pane, "space-point") or "query" in text_of(pane, "space-point")
        await pilot.press("c")  # by annotation label: none yet, and the pane says how to add some
        await pilot.pause()
        assert pane.color_by == "label" and "no annotation labels yet" in text_of(pane, "space-point")
        assert set(plot.point_colors.tolist()) == {-1}
        await pilot.press("c")  # relevance: the cursor jumps to a query, its documents light up
        await pilot.pause()
        q = pane.focus_query
        assert q is not None and pane.space.view.kinds[plot.cursor] == "query"
        rel = {d for d, g in pane.space.qrels[q].items() if g > 0}
        ids = pane.space.view.ids
        assert {ids[i] for i in plot.emphasis["relevant"]} == rel
        assert ids[int(plot.emphasis["query"][0])] == q
        assert "its relevant documents" in text_of(pane, "space-point")
        await pilot.press("enter")
        await pilot.pause()
        from embtui.tui.screens.document import DocumentScreen

        assert isinstance(app.screen, DocumentScreen) and app.screen.doc_id == q
        await pilot.press("escape")
        await pilot.press("k")  # 8 -> 16 clusters, computed again in a worker
        await settle(pilot, timeout=60)
        assert pane.space.view.stats.clustering.k == 16


async def test_drift_pane_measures_a_log_and_raises_the_alert(ws):
    from embtui.api.workspace import Store

    store = Store.open(ws)
    nq = [line.strip() for line in NQ.read_text().splitlines() if line.strip()]
    store.save_query_log("demo", "web", nq[:120], [None] * 120)
    app = make_app(ws)
    async with app.run_test(size=(140, 44)) as pilot:
        await settle(pilot)
        await pilot.press("escape", "9")
        await settle(pilot)
        pane = app.pane("drift")
        assert pane.query_one("#drift-current", Input).value == "log:web"
        assert pane.query_one("#drift-reference", Input).value == "test"
        assert app.focused is pane and not app.typing()
        await pilot.press("ctrl+s")
        await settle(pilot, timeout=120)
        result = text_of(pane, "drift-result")
        assert "DRIFTED" in result and "MMD" in result and "classifier AUC" in result
        assert "⚠ log:web drifted from test" in text_of(pane, "drift-alert")
        await pilot.press("e")
        assert app.focused is pane.query_one("#drift-reference", Input)
    app = make_app(ws)  # a new session shows the latest drift without measuring again
    async with app.run_test(size=(140, 44)) as pilot:
        await settle(pilot)
        await pilot.press("escape", "9")
        await settle(pilot)
        assert "⚠ log:web drifted" in text_of(app.pane("drift"), "drift-alert")
        assert "⚠ drift" in str(app.sidebar.root.children[0].label)  # the sidebar says so too


async def test_project_pane_profiles_the_data_with_the_selected_models_tokenizer(ws):
    app = make_app(ws)
    async with app.run_test(size=(140, 44)) as pilot:
        await settle(pilot)
        await pilot.press("escape", "6", "p")
        await settle(pilot, timeout=60)
        text = text_of(app.pane("project"), "project-profile")
        assert "400 documents" in text and "lexical overlap test" in text
        assert "tiny (max length 64 tokens)" in text and "truncated:" in text and "│" in text


async def test_query_pane_tokenizer_view_shows_each_models_pieces(ws):
    app = make_app(ws)
    async with app.run_test(size=(140, 44)) as pilot:
        await settle(pilot)
        pane = app.pane("query")
        box = pane.query_one("#query-tokens", Static)
        assert not box.display
        await pilot.press("ctrl+t", *"pembrolizumab works")
        await until(pilot, lambda: "works" in str(box.render()))  # after the typing debounce
        text = str(box.render())
        assert box.display and "tiny" in text and "pe ##mb ##rol ##iz ##uma ##b" in text
        assert "[CLS]" in text and "tokens" in text and "bm25" not in text
        await pilot.press("ctrl+t")
        assert not box.display


async def test_space_pane_colours_by_annotation_label_and_scores_clusters_against_it(ws):
    from embtui.api.workspace import Store

    store = Store.open(ws)
    corpus = store.corpus("demo")
    q = next(iter(store.queries("demo", "test")))
    for d in corpus.ids[:40]:
        store.annotations.add("demo", q, "early" if d < corpus.ids[20] else "late", doc_id=d)
    app = make_app(ws)
    async with app.run_test(size=(140, 44)) as pilot:
        await settle(pilot)
        await pilot.press("escape", "8")
        await settle(pilot, timeout=60)
        pane = app.pane("space")
        c = pane.space.view.stats.clustering
        assert c.n_labelled == 40 and c.purity is not None and "purity" in text_of(pane, "space-stats")
        await pilot.press("c")
        await pilot.pause()
        plot = pane.query_one(Scatter)
        ids = pane.space.view.ids
        colours = dict(zip(ids, plot.point_colors.tolist()))
        assert {colours[d] for d in corpus.ids[:20]} == {0} and {colours[d] for d in corpus.ids[20:40]} == {1}
        assert colours[corpus.ids[100]] == -1  # unlabelled: grey
        assert "early" in text_of(pane, "space-point") and "late" in text_of(pane, "space-point")


async def test_drift_pane_measures_when_ctrl_s_comes_before_its_defaults(ws):
    """9 and ctrl+s in one burst (as typed in tmux): the measurement waits for the pane's
    defaults instead of saying the current set is missing."""
    from tests.tui.test_tui_keys import type_at_once

    app = make_app(ws)
    async with app.run_test(size=(140, 44)) as pilot:
        await settle(pilot)
        type_at_once(app, "escape", "9", "ctrl+s")
        await settle(pilot, timeout=120)
        pane = app.pane("drift")
        result = text_of(pane, "drift-result")
        assert "queries@half2" in result and "centroid shift" in result, text_of(pane, "drift-status")
