"""The Train pane with the real job system: start a fine-tuning job, watch its curves grow, cancel
it, and find the trained model in the Models pane and its test run in Metrics."""

from __future__ import annotations

import asyncio
import time

from textual.widgets import Input, Sparkline, Static

from embtui.tui.app import EmbtuiApp
from embtui.tui.testing import settle


def make_app(ws):
    return EmbtuiApp(ws, warmup=False, poll_jobs=True, job_poll_s=0.2, device_lister=lambda: [])


async def wait_for(pilot, predicate, timeout=240.0, what=""):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: jobs {[(j.id, j.state, j.stage, j.error) for j in pilot.app.jobs]}")
        await asyncio.sleep(0.1)
        await pilot.pause()


async def fill(pilot, pane, **values):
    for fid, value in values.items():
        pane.query_one(f"#{fid}", Input).value = value
    await pilot.pause()


def text_of(pane, wid):
    return str(pane.query_one(f"#{wid}", Static).render())


async def test_train_pane_starts_a_job_draws_curves_and_the_model_lands_in_models_and_metrics(ws):
    app = make_app(ws)
    async with app.run_test(size=(150, 44)) as pilot:
        await settle(pilot)
        await pilot.press("escape", "7")
        await settle(pilot)
        pane = app.pane("train")
        assert app.current_pane == "train"
        assert pane.query_one("#train-base", Input).value == "tiny"  # the selected dense model
        assert pane.query_one("#train-name", Input).value == "tiny-ft"
        assert app.focused is pane and not app.typing()  # pane keys still work on arrival
        await pilot.press("e")  # e moves into the form
        assert app.focused is pane.query_one("#train-base", Input)
        await fill(pilot, pane, **{"train-epochs": "2", "train-batch": "8", "train-maxlen": "32"})
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: pane.job_id is not None, what="job started")
        loss = pane.query_one("#train-loss-curve", Sparkline)
        await wait_for(pilot, lambda: len(list(loss.data or [])) >= 1, what="a loss point")
        first = len(list(loss.data))
        await wait_for(pilot, lambda: len(list(loss.data or [])) > first or pane.job_state == "done",
                       what="the curve to grow")
        await wait_for(pilot, lambda: pane.job_state == "done", what="training done")
        await wait_for(pilot, lambda: "done: model 'tiny-ft'" in text_of(pane, "train-result"), what="result")
        result = text_of(pane, "train-result")
        assert "vs base" in result and "test run" in result
        assert len(list(pane.query_one("#train-dev-curve", Sparkline).data)) >= 1
        assert "base " in str(pane.query_one("#train-dev-label").render())
        await wait_for(pilot, lambda: "tiny-ft" in (app.workspace_data.models if app.workspace_data else {}),
                       what="the model in the workspace")
        await pilot.press("escape", "5")
        await settle(pilot)
        models = app.pane("models")
        table = models.query_one("#model-table")
        await wait_for(pilot, lambda: "tiny-ft" in [str(k.value) for k in table.rows], timeout=20,
                       what="the model row")
        table.move_cursor(row=table.get_row_index("tiny-ft"))
        await settle(pilot)
        lineage = str(models.query_one("#model-lineage").render())
        assert "lineage: fine-tuned from tiny" in lineage and "mnrl lr 2e-05" in lineage
        runs = [r for r in app.workspace_data.runs if r.model_name == "tiny-ft"]
        assert runs and runs[0].split == "test"


async def test_train_pane_cancel_stops_the_job_and_bad_input_names_the_field(ws):
    app = make_app(ws)
    async with app.run_test(size=(150, 44)) as pilot:
        await settle(pilot)
        await pilot.press("escape", "7")
        await settle(pilot)
        pane = app.pane("train")
        await fill(pilot, pane, **{"train-epochs": "x"})
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "epochs: 'x' is not a number" in text_of(pane, "train-status")
        assert pane.job_id is None
        await fill(pilot, pane, **{"train-epochs": "8", "train-batch": "8", "train-maxlen": "32",
                                   "train-name": "tiny-c"})
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: pane.job_id is not None and pane.curves.get("step", 0) >= 1,
                       what="training steps")
        await pilot.press("escape", "c")
        await wait_for(pilot, lambda: pane.job_state == "cancelled", what="cancelled")
        assert "cancelled" in text_of(pane, "train-status")
        assert app.store.get_model("tiny-c") is None
