"""Helpers for driving the app in tests, scripts and benchmarks (Pilot settle, screen as text)."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

from textual.worker import WorkerState

# Workers that run for the app's lifetime, never "complete".
BACKGROUND_GROUPS = ("job-watch", "workspace-watch")


async def settle(pilot: Any, timeout: float = 20.0, extra_groups: tuple[str, ...] = ()) -> None:
    """Wait until every worker (other than the lifelong job watcher) has finished, and the
    messages they posted have been handled and painted."""
    app = pilot.app
    deadline = time.monotonic() + timeout
    skip = BACKGROUND_GROUPS + extra_groups
    quiet = 0
    # a handled message may start a new worker: wait for a few quiet rounds in a row
    while quiet < 3:
        await pilot.pause()
        busy = [w for w in app.workers
                if w.group not in skip and w.state in (WorkerState.PENDING, WorkerState.RUNNING)]
        if busy:
            quiet = 0
            if time.monotonic() > deadline:
                raise TimeoutError(f"workers still busy: {busy}")
            await asyncio.sleep(0.02)
        else:
            quiet += 1
    await pilot.pause()


async def open_metrics(pilot: Any) -> Any:
    """Settle, switch to the Metrics pane (leaving any text box first) and return it."""
    await settle(pilot)
    await pilot.press("escape", "2")
    await settle(pilot)
    return pilot.app.pane("metrics")


async def open_failures(pilot: Any, run_id: int = 2) -> Any:
    """Settle, open the Failures pane on ``run_id`` (as the sidebar's enter on a run does), return it."""
    from embtui.tui.messages import RunChosen

    await settle(pilot)
    pilot.app.post_message(RunChosen(run_id))
    await settle(pilot)
    return pilot.app.pane("failures")


def cell(table: Any, row_key: str, col_key: str) -> str:
    """A DataTable cell as plain text."""
    return str(table.get_cell(row_key, col_key))


def steady_cursors(app: Any) -> None:
    """Stop text cursors blinking (a screenshot must not depend on when it is taken)."""
    from textual.widgets import Input

    for screen in app.screen_stack:
        for box in screen.query(Input):
            box.cursor_blink = False


def screen_text(app: Any) -> str:
    """The current screen as plain text (what a user would read)."""
    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system=None, record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True,
                                                       screen_stack=app._background_screens))
    return console.export_text()


# -- fixed workspaces for tests, screenshots and benchmarks ------------------------------------------
FROZEN_TIMINGS = {"encode_documents_s": 0.25, "encode_queries_s": 0.01, "search_s": 0.01,
                  "query_latency_ms": 0.1, "total_s": 0.5, "load_data_s": 0.03, "metrics_s": 0.01}


def build_demo_workspace(root: Any, dense_model: Any = None, *, dense_name: str = "tiny",
                         freeze: bool = True) -> Any:
    """A workspace with the demo project, saved specs for bm25 (and ``dense_model`` as
    ``dense_name``), and one real evaluation run of each on the test split.

    ``freeze`` rewrites the runs' timings and peak memory with fixed values (same metrics and
    rankings), so screenshots do not change from one machine or run to the next.
    """
    from pathlib import Path

    from embtui.api.evaluations import plan_evaluation, run_inline
    from embtui.api.models import ModelSpec
    from embtui.api.projects import DEMO_PATH, import_beir
    from embtui.api.workspace import Store

    store = Store.open(Path(root))
    import_beir(store, DEMO_PATH, "demo")
    specs = [ModelSpec("bm25")]
    if dense_model is not None:
        specs.append(ModelSpec(str(dense_model), name=dense_name, device="cpu"))
    for spec in specs:
        store.save_model(spec.name, spec.to_dict())
        [outcome] = run_inline(plan_evaluation(store, "demo", [spec.name], split="test", device="cpu",
                                               force=True))
        if not freeze:
            continue
        run = outcome.run
        qm = store.run_query_metrics(run.id)
        rk = store.run_rankings(run.id)
        info = dict(run.info, peak_rss_mb=500.0)
        if "encode" in info:
            info["encode"] = {role: dict(v, seconds=0.2, items_per_s=2000.0 if role == "documents"
                                         else 5000.0) for role, v in info["encode"].items()}
        store.finish_run(
            run.id, metrics=run.metrics,
            query_metrics=qm, rankings=rk,
            timings={k: FROZEN_TIMINGS.get(k, 0.05) for k in run.timings},
            info=info, device="cpu", model_fingerprint=run.model_fingerprint)
    return store


def fixed_devices() -> list[Any]:
    """A device list that is the same everywhere (for screenshots)."""
    from embtui.api.models import DeviceInfo

    return [DeviceInfo("cpu", "Example CPU (16 cores)", 64 * 2**30, 48 * 2**30, 12.0),
            DeviceInfo("cuda:0", "NVIDIA H100 80GB HBM3", 80 * 2**30, 71 * 2**30, 35.0)]


def template_workspace(base: Any, tiny_model: Any) -> Any:
    """Build (once per ``base`` folder) ``base/ws``: the demo with bm25 and tiny runs.

    The tiny model is copied to ``base/models/tiny`` so its path reads the same in every run.
    Returns ``base/ws``; copy it before changing it.
    """
    import shutil
    from pathlib import Path

    base = Path(base)
    ws = base / "ws"
    if not (ws / "embtui.duckdb").exists():
        model = base / "models" / "tiny"
        if not model.exists():
            shutil.copytree(tiny_model, model)
        build_demo_workspace(ws, model)
    return ws


def copy_workspace(template: Any, dest: Any) -> str:
    import shutil

    shutil.copytree(template, dest)
    return str(dest)
