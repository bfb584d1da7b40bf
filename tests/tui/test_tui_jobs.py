"""The Jobs pane with the real job system: evaluate selected models (detached workers), watch
progress, cancel, resume, read the log; finished jobs show up as runs."""

from __future__ import annotations

import asyncio
import time

import pytest

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
        await pilot.press("E")  # bm25 has an identical run (#1): E makes a new one anyway
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
        state = str(table.get_cell(str(job_id), "state")).splitlines()
        assert state[0] == "done" and state[1].endswith("100%")
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
            await pilot.press("E")  # a new run although tiny has an identical one
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


async def test_e_on_an_unchanged_model_reuses_its_run_and_starts_no_job(ws):
    app = make_app(ws)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        await select_only(pilot, "bm25")
        await pilot.press("escape", "4")
        await settle(pilot)
        await pilot.press("e")
        await wait_for(pilot, lambda: any("reused" in n.message for n in app._notifications))
        await settle(pilot)
        note = next(n.message for n in app._notifications if "reused" in n.message)
        assert note.startswith("run #1 is identical (same model, data, split, index); reused")
        assert "shift+e" in note
        assert jobs_api.list_jobs(ws) == [] and len(app.store.list_runs()) == 2


async def test_e_on_an_unknown_model_offline_starts_nothing(ws, monkeypatch):
    from embtui.engine.models import ModelSpec
    from embtui.store import Store

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    Store.open(ws).save_model("typo", ModelSpec("org/no-such-model", name="typo").to_dict())
    app = make_app(ws)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        app.post_message(ModelToggled("typo"))
        await settle(pilot)
        await select_only(pilot, "typo")
        await pilot.press("escape", "4")
        await settle(pilot)
        await pilot.press("e")
        await wait_for(pilot, lambda: any("unknown model" in n.message for n in app._notifications))
        await settle(pilot)
        assert jobs_api.list_jobs(ws) == [] and len(app.store.list_runs()) == 2


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


def _job(n, state, stage, **kw):
    """A job as the watcher reports it, with the widest value of every fixed field."""
    from embtui.jobs.api import JobInfo

    fields = dict(id=f"261202-00000{n}-ab1{n}", kind="eval", state=state, progress=0.52,
                  stage=stage, done=10, total=20, items_per_s=12345.6, eta_s=3599,
                  device="cuda:10", batch_size=1024, pid=None, run_id=None,
                  project="a-long-project-name", model="sentence-transformers/all-MiniLM-L6-v2",
                  split="test", created_at=f"2026-12-02T00:00:0{n}", updated_at="", error=None,
                  peak_rss_mb=None, peak_gpu_mb=None, log_tail="")
    fields.update(kw)
    return JobInfo(**fields)


WIDEST = (("interrupted", "encode queries"), ("running", "encode documents"),
          ("queued", "waiting for cuda:10"), ("cancelled", "encode queries"))


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("sidebar", [True, False], ids=["sidebar", "no-sidebar"])
async def test_fixed_fields_are_never_cut_and_columns_do_not_move(ws, width, sidebar):
    from embtui.tui.panes.jobs import COLUMNS

    app = EmbtuiApp(ws, warmup=False, poll_jobs=False, device_lister=lambda: [])
    async with app.run_test(size=(width, 30)) as pilot:
        await settle(pilot)
        if not sidebar:
            app.action_toggle_sidebar()
        app.action_show_pane("jobs")
        await settle(pilot)
        table = app.pane("jobs").query_one("#jobs-table")
        app.post_message(JobsPolled(tuple(_job(i, s, g) for i, (s, g) in enumerate(WIDEST))))
        await settle(pilot)
        text = screen_text(app)
        for field in ("interrupted", "cancelled", "running", "queued", "encode queries",
                      "encode docs", "wait cuda:10", "12,346/s", "59m59s", "cuda:10", "1024",
                      "███░░░  52%"):
            assert field in text, (field, text)
        assert "sentence-transformers/all-MiniLM-L6-v2"[:10] in text  # free text: cut if need be
        widths = [table.columns[c].width for c in COLUMNS]
        # short values, and one job fewer: not one column moves
        app.post_message(JobsPolled((_job(1, "done", "done", device="cpu", batch_size=8,
                                          items_per_s=2.0, eta_s=None, model="bm25"),)))
        await settle(pilot)
        assert [table.columns[c].width for c in COLUMNS] == widths
        assert "done" in screen_text(app)


async def test_a_failed_job_says_why_in_its_row_and_in_a_notification(ws, tmp_path, tiny_model):
    """A model whose weights are cut short fails in its worker: the row and the detail line
    give the error (not just 'failed'), and the app watching the job notifies."""
    import shutil

    from embtui.engine.models import ModelSpec
    from embtui.store import Store

    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model, broken)
    for weights in broken.rglob("*.safetensors"):
        weights.write_bytes(b"not a safetensors file")
    Store.open(ws).save_model("broken", ModelSpec(str(broken), name="broken").to_dict())
    app = make_app(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.post_message(ModelToggled("broken"))
        await settle(pilot)
        await select_only(pilot, "broken")
        app.action_show_pane("jobs")
        await settle(pilot)
        await pilot.press("e")
        await wait_for(pilot, lambda: len(app.jobs) == 1 and app.jobs[0].state in
                       ("done", "failed", "cancelled", "interrupted"), timeout=180)
        job = app.jobs[0]
        assert job.state == "failed" and job.error
        await settle(pilot)
        reason = job.error.splitlines()[0]
        text = screen_text(app)
        assert "✗ " + reason[:20] in text  # the row: the reason, cut to the column
        detail = str(app.pane("jobs").query_one("#job-detail").render())
        assert f"failed: {reason}" in detail.replace("\n", " ") or "failed: " + reason[:40] in detail
        assert any(n.severity == "error" and reason[:30] in n.message
                   for n in app._notifications), [n.message for n in app._notifications]


async def test_a_running_job_shows_what_its_stage_says_each_devices_throughput(ws):
    """A multi-device or Ray encode reports each device's throughput in its stage message; the
    detail under the table shows it for the job under the cursor."""
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False, device_lister=lambda: [])
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        app.action_show_pane("jobs")
        await settle(pilot)
        line = "cuda:0 1,204/s · cuda:1 1,188/s"
        app.post_message(JobsPolled((_job(1, "running", "encode documents", message=line,
                                          device="cuda:0, cuda:1"),)))
        await settle(pilot)
        assert line in screen_text(app)
        # a finished job no longer shows its last progress message
        app.post_message(JobsPolled((_job(1, "done", "done", message=line),)))
        await settle(pilot)
        assert line not in screen_text(app)
