"""Comparison in the Metrics pane: significance markers against a baseline, the per-query delta
view, and metrics on the corrected judgments (qrels plus the overlay)."""

from __future__ import annotations

from embtui.api.judgments import mark_relevant
from embtui.engine.compare import compare_metrics, compare_runs, corrected_metrics
from embtui.tui.app import EmbtuiApp
from embtui.tui.screens.deltas import DeltaScreen
from embtui.tui.testing import cell, open_metrics, screen_text, settle


async def test_baseline_brings_significance_markers_that_match_the_engine(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(160, 40)) as pilot:
        pane = await open_metrics(pilot)
        table = pane.query_one("#metrics-table")
        table.move_cursor(row=0)  # run 1 (bm25)
        await pilot.press("b")
        await settle(pilot)
        names = ["ndcg@10", "mrr@10", "recall@10", "p@10"]
        comps = compare_metrics(app.store, [1, 2], names, baseline=1, tests=("permutation",))
        marker = comps["ndcg@10"].test_for(2).marker
        assert marker.startswith("▼")  # the tiny random model is far worse than bm25 on the demo
        for name in names:
            expected = comps[name].test_for(2).marker
            text = cell(table, "2", name)
            if expected:
                assert text.endswith(f" {expected}"), (name, text)
            else:
                assert "▲" not in text and "▼" not in text, (name, text)
        assert "▼" not in cell(table, "1", "ndcg@10")  # the baseline itself carries none
        assert "randomization test, Holm across runs" in screen_text(app)
        await pilot.press("b")  # no baseline: no markers
        await settle(pilot)
        assert "▼" not in cell(table, "2", "ndcg@10")


async def test_d_opens_per_query_deltas_sorted_with_the_paired_tests(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(160, 40)) as pilot:
        pane = await open_metrics(pilot)
        table = pane.query_one("#metrics-table")
        await pilot.press("d")  # no baseline yet: a hint, no screen
        await settle(pilot)
        assert not isinstance(app.screen, DeltaScreen)
        table.move_cursor(row=0)
        await pilot.press("b")
        table.move_cursor(row=1, column=2)  # run 2, the ndcg@10 column
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, DeltaScreen)
        comp = compare_runs(app.store, [1, 2], "ndcg@10", baseline=1)
        expected = comp.query_deltas(2)
        delta_table = app.screen.query_one("#delta-table")
        assert delta_table.row_count == len(expected) == len(comp.query_ids)
        order = [str(k.value) for k in delta_table.rows]
        assert order == [d.query_id for d in expected]  # biggest loss first
        deltas = [d.delta for d in expected]
        assert deltas == sorted(deltas)
        r = comp.test_for(2).result
        text = screen_text(app)
        assert f"{r.wins} wins / {r.ties} ties / {r.losses} losses over {r.n} queries" in text
        assert f"mean Δ {r.mean_delta:+.4f}" in text and "randomization" in text
        await pilot.press("r")
        await pilot.pause()
        assert [str(k.value) for k in delta_table.rows] == order[::-1]
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, DeltaScreen)


async def test_c_shows_metrics_on_the_corrected_judgments(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        store = app.store
        stored = store.get_run(2).metrics["ndcg@10"]
        # a query run 2 missed: its top document is declared relevant by hand
        missed = next(q for q, m in sorted(store.run_query_metrics(2).items()) if m["success@10"] == 0)
        top = store.run_rankings(2, missed)[missed][0][0]
        mark_relevant(store, 2, missed, top)
        pane = await open_metrics(pilot)
        table = pane.query_one("#metrics-table")
        assert cell(table, "2", "ndcg@10") == f"{stored:.4f}"
        await pilot.press("c")
        await settle(pilot)
        corrected = corrected_metrics(store, 2)["ndcg@10"]
        assert corrected > stored
        assert cell(table, "2", "ndcg@10") == f"{corrected:.4f}"
        assert "imported qrels plus 1 judgment(s) made by hand" in screen_text(app)
        await pilot.press("c")
        await settle(pilot)
        assert cell(table, "2", "ndcg@10") == f"{stored:.4f}"
