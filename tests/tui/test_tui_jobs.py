"""The Jobs pane with the real job system: evaluate selected models (detached workers), watch
progress, cancel, resume, read the log; finished jobs show up as runs."""

from __future__ import annotations

import asyncio
import time

import embtui.jobs as jobs_api
from embtui.jobs.files import try_slot
from embtui.store.db import Workspace
from embtui.tui.app import EmbtuiApp
from embtui.tui.messages import JobsPolled, ModelToggled
from embtui.tui.screens.job_log import JobLogScreen
from embtui.tui.testing import screen_text, settle



def make_app(ws):
    return EmbtuiApp(ws, warmup=False, poll_jobs=True, job_poll_s=0.2, device_lister=lambda: [])


async def wait_for(pilot, predicate, timeout=90.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs: {[(j.id, j.state, j.stage) for j in pilot.app.jobs]}")
        await asyncio.sleep(0.1)
        await pilot.pause()


async def select_only(pilot, model):
    app = pilot.app
    for m in app.context.models:
        if m != model:
            app.post_message(ModelToggled(m))
    await settle(pilot)
    assert app.context.models == (model,)


async def test_e_evaluates_the_selected_models_and_the_run_appears(ws):
    messages = []
    app = make_app(ws)
    async with app.run_test(size=(140, 40), message_hook=messages.append) as pilot:
        await settle(pilot)
        await select_only(pilot, "bm25")
        await pilot.press("escape", "4")
        await settle(pilot)
        pane = app.pane("jobs")
        await pilot.press("e")
        await wait_for(pilot, lambda: len(app.jobs) == 1)
        job_id = app.jobs[0].id
        assert str(job_id) in pane.query_one("#jobs-table").rows
        await wait_for(pilot, lambda: app.jobs[0].state in ("done", "failed"))
        assert app.jobs[0].state == "done", app.jobs[0].error
        await settle(pilot)
        assert any(isinstance(m, JobsPolled) for m in messages)
        runs = app.store.list_runs("demo", "test")
        assert len(runs) == 3 and runs[-1].model_name == "bm25"
        # the finished job reloaded the workspace: the new run is in the sidebar and Metrics
        assert len(app.workspace_data.runs) == 3
        assert f"#{runs[-1].id} bm25" in screen_text(app)
        table = pane.query_one("#jobs-table")
        assert "100%" in str(table.get_cell(str(job_id), "progress"))
        assert str(table.get_cell(str(job_id), "state")) == "done"
        await pilot.press("l")
        await settle(pilot)
        assert isinstance(app.screen, JobLogScreen)
        await wait_for(pilot, lambda: "submitted" in app.screen.text, timeout=10)
        assert "eval of 'bm25'" in app.screen.text


async def test_cancel_then_resume_a_job(ws):
    app = make_app(ws)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        await select_only(pilot, "tiny")
        await pilot.press("escape", "4")
        await settle(pilot)
        # hold every CPU slot, as another job would: the new job waits in the queue
        held = []
        while (lock := try_slot(Workspace(ws).jobs_dir / "locks", "cpu", 8)) is not None:
            held.append(lock)
        try:
            await pilot.press("e")
            await wait_for(pilot, lambda: len(app.jobs) == 1 and "waiting" in (app.jobs[0].stage or ""))
            assert app.jobs[0].state == "queued"
            await pilot.press("c")
            await wait_for(pilot, lambda: app.jobs[0].state in ("cancelled", "done", "failed"))
            assert app.jobs[0].state == "cancelled"
        finally:
            for lock in held:
                lock.release()
        await pilot.press("r")
        await wait_for(pilot, lambda: app.jobs[0].state in ("done", "failed"))
        assert app.jobs[0].state == "done", app.jobs[0].error
        await settle(pilot)
        assert len(app.store.list_runs("demo", "test", status="done")) == 3


async def test_evaluate_without_a_selection_says_what_to_do(ws):
    app = make_app(ws)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        for m in app.context.models:
            app.post_message(ModelToggled(m))
        await settle(pilot)
        await pilot.press("escape", "4")
        await settle(pilot)
        await pilot.press("e")
        await pilot.pause()
        assert any("select models first" in n.message for n in app._notifications)
        assert jobs_api.list_jobs(ws) == []
