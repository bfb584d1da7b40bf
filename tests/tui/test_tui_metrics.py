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


# -- runs you can manage, views that stay fresh and remember (issue 11, items 5 and 7) ----------
async def _wait_for(pilot, condition, timeout: float = 120.0, what: str = "condition") -> None:
    """Wait (no fixed sleep) until ``condition()`` holds, pumping the app's messages."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause()
        await asyncio.sleep(0.05)


async def test_delete_key_asks_then_deletes_the_run_and_its_rows(ws):
    from embtui.tui.screens.confirm import ConfirmScreen

    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(160, 40)) as pilot:
        pane = await open_metrics(pilot)
        table = pane.query_one("#metrics-table")
        table.move_cursor(row=[r["run"] for r in pane.rows].index(2))
        await pilot.press("delete")
        await _wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        assert "Delete run #2 (tiny on demo/test" in screen_text(app)
        await pilot.press("n")  # no: nothing happens
        await settle(pilot)
        assert {r.id for r in app.store.list_runs()} == {1, 2}
        await pilot.press("delete")
        await _wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        await pilot.press("y")
        await _wait_for(pilot, lambda: "2" not in table.rows, what="row #2 to go")
        await settle(pilot)
        assert {r.id for r in app.store.list_runs()} == {1}
        assert app.store.run_rankings(2) == {}
        assert set(table.rows) == {"1"}
        assert all(node.data != ("run", 2) for node in _tree_nodes(app.sidebar))


def _tree_nodes(tree):
    stack = [tree.root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.children)


async def test_baseline_and_k_survive_a_restart(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(160, 40)) as pilot:
        pane = await open_metrics(pilot)
        pane.query_one("#metrics-table").move_cursor(row=0)
        await pilot.press("b", "k")
        assert pane.baseline == 1 and pane.k == 100
        await settle(pilot)
    assert app.store.view_states()["demo"]["baseline"] == {"test": 1}
    again = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with again.run_test(size=(160, 40)) as pilot:
        pane = await open_metrics(pilot)
        assert pane.baseline == 1 and pane.k == 100
        assert "◆#1" in screen_text(again) and "baseline #1" in screen_text(again)


async def test_split_and_selected_models_survive_a_restart(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await pilot.press("escape", "2", "t")  # next split: train
        await settle(pilot)
        assert app.context.split == "train"
        from embtui.tui.messages import ModelToggled

        app.post_message(ModelToggled("bm25"))
        await settle(pilot)
        chosen = app.context.models
    again = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with again.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        assert again.context.split == "train" and again.context.models == chosen


async def test_runs_made_by_another_process_appear_without_a_key(ws):
    import subprocess
    import sys

    app = EmbtuiApp(ws, warmup=False, poll_jobs=True)
    app.workspace_watch_s = 0.2
    async with app.run_test(size=(160, 40)) as pilot:
        pane = await open_metrics(pilot)
        table = pane.query_one("#metrics-table")
        assert set(table.rows) == {"1", "2"}
        # another session: a new project and a new run, written by separate processes
        from tests.conftest import DEMO

        for argv in (["import", "beir", str(DEMO), "--project", "other"],
                     ["eval", "--project", "demo", "--model", "bm25", "--force", "--k", "10"]):
            proc = subprocess.run([sys.executable, "-m", "embtui", "--workspace", str(ws), *argv],
                                  capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, proc.stderr
        new_run = max(r.id for r in app.store.list_runs())
        await _wait_for(pilot, lambda: str(new_run) in table.rows, what=f"run #{new_run} in Metrics")
        await _wait_for(pilot, lambda: any(n.data == ("project", "other") for n in _tree_nodes(app.sidebar)),
                        what="project 'other' in the sidebar")
        assert any(n.data == ("run", new_run) for n in _tree_nodes(app.sidebar))


async def test_a_failed_run_is_deleted_from_the_sidebar(ws):
    from embtui.engine.evaluate import versions
    from embtui.store import Store
    from embtui.tui.screens.confirm import ConfirmScreen

    store = Store(ws)
    failed = store.create_run("demo", "test", "typo", model_spec={"model": "typo"}, model_fingerprint=None,
                              device="cpu", index_config={}, versions=versions())
    store.fail_run(failed, "could not load model 'typo'")
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        tree = app.sidebar
        # a name that only left a failed run behind is not listed as a model
        assert all(n.data != ("model", "typo") for n in _tree_nodes(tree))
        node = next(n for n in _tree_nodes(tree) if n.data == ("run", failed))
        await pilot.press("escape", "0")
        tree.move_cursor(node)
        await pilot.pause()
        await pilot.press("delete")
        await _wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        await pilot.press("enter")  # the Delete button has the focus
        await _wait_for(pilot, lambda: all(n.data != ("run", failed) for n in _tree_nodes(app.sidebar)),
                        what=f"run #{failed} to leave the sidebar")
        await settle(pilot)
        assert failed not in {r.id for r in app.store.list_runs()}


async def test_the_frontier_view_and_its_constraint_filter(ws):
    from embtui.tui.screens.frontier import FrontierScreen

    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(150, 60)) as pilot:
        await settle(pilot)
        await pilot.press("escape", "2")
        await settle(pilot)
        runs = {r.model_name: r for r in app.store.list_runs(status="done")}
        # a profile for bm25 only: the dense run shows without latency, bm25 on the frontier
        from embtui.engine.profile import Profile

        prof = Profile("bm25", "bm25", "cpu", "float32", 400, 0.3, 20.0,
                       {"p50": 0.2, "p95": 0.3, "p99": 0.4, "mean": 0.2, "n": 10},
                       {"exact": {"docs": 400, "ms": 0.2}}, {"index": 900.0})
        app.store.save_profile("demo", "bm25", "cpu", "float32", {"model": "bm25"}, prof.to_dict())
        await pilot.press("f")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, FrontierScreen)
        body = str(screen.query_one("#frontier-body").render())
        assert "p99 latency" in body and "bytes per document" in body
        assert f"#{runs['bm25'].id} bm25" in body and "no profile (no latency) for: tiny" in body
        assert screen.view.on_latency == frozenset({runs["bm25"].id})  # the only run with a latency
        await pilot.press(*"1", "enter")  # p99 <= 1 ms: only bm25 qualifies
        await settle(pilot)
        answer = str(screen.query_one("#frontier-answer").render())
        assert f"best: #{runs['bm25'].id} bm25" in answer and "the only run that meets" in answer
        await pilot.press("tab", *"x", "enter")  # a bad number is refused in one line
        await settle(pilot)
        assert "'x' is not a number" in str(screen.query_one("#frontier-answer").render())
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, FrontierScreen)
