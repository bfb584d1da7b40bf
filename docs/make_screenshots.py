"""Regenerate docs/screenshots/*.svg: every pane of the TUI on the bundled demo project.

Builds a temporary workspace with the demo, evaluates bm25 and all-MiniLM-L6-v2 on the test split
(in process), runs one real background job (bm25 on the train split), then drives the app with a
Pilot and saves an SVG per pane at 160x48 (and the Query pane at 80x24).

Usage: python docs/make_screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QUERY_36 = "A deficiency of vitamin B12 increases blood levels of homocysteine."


async def shoot(ws: Path, out: Path) -> list[Path]:
    from embtui.tui.app import EmbtuiApp
    from embtui.tui.messages import RunChosen
    from embtui.tui.testing import settle, steady_cursors
    from embtui.tui.widgets.hit_list import HitList

    saved: list[Path] = []

    async def save(app, name: str) -> None:
        await settle(app._pilot)
        steady_cursors(app)
        for column in app.query(HitList):  # latencies differ per run: leave them out
            if column.hits:
                column.show_hits(column.ranked, column.grades, column.shown_seq, column.shown_text)
        await app._pilot.pause()
        path = out / f"{name}.svg"
        app.save_screenshot(str(path.name), path=str(out))
        saved.append(path)

    for size, names in (((160, 48), "all"), ((80, 24), "query")):
        app = EmbtuiApp(str(ws), warmup=False, job_poll_s=0.2)
        async with app.run_test(size=size) as pilot:
            app._pilot = pilot
            await settle(pilot)
            suffix = "" if size == (160, 48) else "-80x24"
            app.pane("query").set_query(QUERY_36)
            await save(app, f"query{suffix}")
            if names != "all":
                continue
            await pilot.press("escape", "2")
            await pilot.press("b")
            await save(app, "metrics")
            app.pane("metrics").query_one("#metrics-table").move_cursor(row=1, column=2)
            await pilot.press("d")  # per-query deltas of the other run against the baseline
            await save(app, "deltas")
            await pilot.press("escape")
            minilm = max(r.id for r in app.workspace_data.runs if r.model_name == "all-MiniLM-L6-v2")
            bm25 = min(r.id for r in app.workspace_data.runs if r.model_name == "bm25")
            app.post_message(RunChosen(minilm))
            await settle(pilot)
            app.pane("failures").compare_run = bm25
            await settle(pilot)
            app.pane("failures").query_one("#failures-table").focus()
            await pilot.press("a", *"ambiguous query", "enter")  # tag the worst failure
            await settle(pilot)
            await save(app, "failures")
            await pilot.press("a", *"numbers")
            await save(app, "annotate")
            await pilot.press("escape")
            await pilot.press("escape", "4")
            await pilot.pause(1.0)
            await save(app, "jobs")
            await pilot.press("escape", "5")
            await pilot.pause(0.5)
            await save(app, "models")
            await pilot.press("escape", "6")
            await save(app, "project")
            await pilot.press("escape", "question_mark")
            await save(app, "help")
    return saved


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "screenshots"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from embtui.data.beir import import_beir
    from embtui.engine.demo import DEMO_PATH
    from embtui.engine.evaluate import EvalRequest, run_evaluation
    from embtui.engine.models import ModelSpec
    from embtui.jobs import get_job, submit_eval
    from embtui.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "demo-workspace"
        store = Store.open(ws)
        import_beir(store, DEMO_PATH, "demo")
        for spec in (ModelSpec("bm25"), ModelSpec("all-MiniLM-L6-v2", device="cpu")):
            store.save_model(spec.name, spec.to_dict())
            run_evaluation(store, EvalRequest("demo", spec, device="cpu"))
        job = submit_eval(ws, EvalRequest("demo", ModelSpec("bm25"), split="train"))
        deadline = time.monotonic() + 120
        while not get_job(ws, job).finished and time.monotonic() < deadline:
            time.sleep(0.5)
        for path in asyncio.run(shoot(ws, out)):
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
