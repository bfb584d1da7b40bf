"""The Failures pane: failed queries worst first, details, n/p, threshold and text filters,
and another run's ranking beside."""

from __future__ import annotations


from embtui.tui.app import EmbtuiApp
from embtui.tui.screens.pick_run import RunPicker
from embtui.tui.testing import open_failures, screen_text, settle


def expected_failures(store, run_id: int, k: int) -> set[str]:
    """Independently: the scored queries with success@k == 0 (no relevant doc in the top k)."""
    return {q for q, m in store.run_query_metrics(run_id).items() if m[f"success@{k}"] == 0}


async def test_failures_of_a_run_worst_first_with_details(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(160, 48)) as pilot:
        pane = await open_failures(pilot)
        assert app.current_pane == "failures"
        assert {f.query_id for f in pane.failures} == expected_failures(app.store, 2, 10)
        ranks = [f.first_rank for f in pane.failures]
        nones = [r for r in ranks if r is None]
        assert ranks[: len(nones)] == nones  # not found at all: first
        found = ranks[len(nones):]
        assert found == sorted(found, reverse=True)  # then the deepest first relevant rank
        table = pane.query_one("#failures-table")
        assert table.row_count == len(pane.failures)
        first = pane.failures[0]
        detail = pane.detail
        assert detail is not None and detail.query_id == first.query_id
        judged = app.store.qrels("demo", "test")[first.query_id]
        assert {d.doc_id for d in detail.relevant} == {d for d, g in judged.items() if g > 0}
        assert all(d.rank is None for d in detail.relevant)
        assert len(detail.above) == 10  # nothing relevant found: the top 10 are shown
        text = screen_text(app)
        assert "not in top 100" in text and f"query {first.query_id}" in text


async def test_n_and_p_step_through_failures(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(160, 48)) as pilot:
        pane = await open_failures(pilot)
        await pilot.press("n")
        await settle(pilot)
        assert pane.detail.query_id == pane.failures[1].query_id
        await pilot.press("n", "n")
        await settle(pilot)
        assert pane.detail.query_id == pane.failures[3].query_id
        await pilot.press("p")
        await settle(pilot)
        assert pane.detail.query_id == pane.failures[2].query_id


async def test_threshold_and_text_filter(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(160, 48)) as pilot:
        pane = await open_failures(pilot)
        at_10 = len(pane.failures)
        threshold = pane.query_one("#threshold")
        threshold.focus()
        threshold.value = ""
        await pilot.press(*"100")
        await settle(pilot)
        assert pane.threshold == 100
        assert {f.query_id for f in pane.failures} == expected_failures(app.store, 2, 100)
        assert len(pane.failures) < at_10
        await pilot.press("escape")
        await pilot.press("slash")
        assert app.focused is pane.query_one("#failure-filter")
        word = pane.failures[0].text.split()[0].lower()
        await pilot.press(*word)
        await settle(pilot)
        assert pane.failures and all(word in f.text.lower() or word in f.query_id
                                     for f in pane.failures)
        assert f"filter '{word}'" in screen_text(app)


async def test_a_run_without_failures_at_a_loose_threshold_shows_none(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(160, 48)) as pilot:
        pane = await open_failures(pilot, run_id=1)  # bm25
        pane.threshold = 100
        await settle(pilot)
        assert {f.query_id for f in pane.failures} == expected_failures(app.store, 1, 100)


async def test_o_shows_another_runs_ranking_beside(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(160, 48)) as pilot:
        pane = await open_failures(pilot)
        pane.query_one("#failures-table").focus()
        await pilot.press("o")
        await pilot.pause()
        assert isinstance(app.screen, RunPicker)
        await pilot.press("down", "enter")  # "no comparison" is first, then run 1
        await settle(pilot)
        assert pane.compare_run == 1
        assert pane.query_one("#failure-compare").display
        qid = pane.detail.query_id
        other = app.store.run_rankings(1, qid)[qid]
        assert [d.doc_id for d in pane.compare_detail.above] == [d for d, _ in other[:10]]
        assert "other run #1 bm25" in screen_text(app)
        await pilot.press("n")
        await settle(pilot)
        assert pane.compare_detail.query_id == pane.detail.query_id == pane.failures[1].query_id
