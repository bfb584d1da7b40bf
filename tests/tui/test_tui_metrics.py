"""The Metrics pane: runs x metrics, sorting, k, baseline deltas, timings, export."""

from __future__ import annotations

import csv

import pytest

from embtui.tui.app import EmbtuiApp
from embtui.tui.testing import cell, open_metrics, screen_text, settle


async def test_table_shows_each_run_with_its_stored_metrics_and_timings(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(160, 40)) as pilot:
        pane = await open_metrics(pilot)
        table = pane.query_one("#metrics-table")
        runs = {r.id: r for r in app.store.list_runs("demo", "test")}
        assert set(table.rows) == {str(i) for i in runs}
        for rid, run in runs.items():
            assert cell(table, str(rid), "ndcg@10") == f"{run.metrics['ndcg@10']:.4f}"
            assert cell(table, str(rid), "recall@10") == f"{run.metrics['recall@10']:.4f}"
        # timings and memory from RunInfo.timings/info
        assert cell(table, "2", "docs_per_s") == "2,000/s"
        assert cell(table, "2", "latency_ms") == "0.10"
        assert cell(table, "2", "emb_bytes") == "50.0 KiB"  # 400 docs x 32 dims x 4 bytes
        assert cell(table, "1", "emb_bytes") == "–"  # bm25 has no embeddings
        assert "ndcg@10" in screen_text(app)


async def test_s_cycles_the_sort_column_and_enter_sorts_by_the_cursor_column(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(160, 40)) as pilot:
        pane = await open_metrics(pilot)
        table = pane.query_one("#metrics-table")
        assert [r["run"] for r in pane.rows] == [1, 2]
        await pilot.press("s")  # first metric column, best first
        assert pane.sort_key == "ndcg@10" and pane.sort_reverse
        assert [r["run"] for r in pane.rows] == [1, 2]  # bm25 beats the random tiny model
        await pilot.press("s")
        assert pane.sort_key == "mrr@10"
        # enter on the model column sorts by it (ascending), again reverses
        table.move_cursor(column=1)
        await pilot.press("enter")
        assert pane.sort_key == "model" and not pane.sort_reverse
        assert [r["model"] for r in pane.rows] == ["bm25", "tiny"]
        await pilot.press("enter")
        assert pane.sort_reverse
        assert [r["model"] for r in pane.rows] == ["tiny", "bm25"]
        assert "model ▼" in screen_text(app)


async def test_k_switches_the_cutoff(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(160, 40)) as pilot:
        pane = await open_metrics(pilot)
        assert pane.k == 10
        await pilot.press("k")
        assert pane.k == 100
        table = pane.query_one("#metrics-table")
        run = app.store.get_run(1)
        assert cell(table, "1", "ndcg@100") == f"{run.metrics['ndcg@100']:.4f}"
        assert pane.query_one("#k-select").value == 100
        await pilot.press("k")
        assert pane.k == 1


async def test_baseline_shows_deltas_in_other_rows(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(160, 40)) as pilot:
        pane = await open_metrics(pilot)
        table = pane.query_one("#metrics-table")
        table.move_cursor(row=0)  # run 1 (bm25)
        await pilot.press("b")
        assert pane.baseline == 1
        base, other = app.store.get_run(1), app.store.get_run(2)
        delta = other.metrics["ndcg@10"] - base.metrics["ndcg@10"]
        # (a significance marker may follow once the tests ran: see test_tui_compare.py)
        assert cell(table, "2", "ndcg@10").startswith(f"{other.metrics['ndcg@10']:.4f} {delta:+.3f}")
        assert cell(table, "1", "ndcg@10") == f"{base.metrics['ndcg@10']:.4f}"  # no delta on itself
        assert "◆#1" in screen_text(app)
        await pilot.press("b")
        assert pane.baseline is None


async def test_x_exports_csv_and_markdown_into_the_workspace(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(160, 40)) as pilot:
        pane = await open_metrics(pilot)
        await pilot.press("x")
        await settle(pilot)
        folder = app.store.ws.root / "exports"
        rows = list(csv.DictReader(open(folder / "metrics-demo-test-k10.csv")))
        assert [r["model"] for r in rows] == ["bm25", "tiny"]
        run = app.store.get_run(1)
        assert float(rows[0]["ndcg@10"]) == pytest.approx(run.metrics["ndcg@10"])
        md = (folder / "metrics-demo-test-k10.md").read_text()
        assert md.startswith("| run | model | ndcg@10")
        assert f"| {run.metrics['ndcg@10']:.4f} |" in md
        assert any("metrics-demo-test-k10.csv" in n.message for n in app._notifications)
        assert "exported" in pane.query_one("#metrics-note").render().plain
