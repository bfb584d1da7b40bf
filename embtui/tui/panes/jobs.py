"""The Jobs pane: every job of the workspace (from any process) with progress; start, cancel, resume."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.widgets import DataTable, Static

from embtui.tui.actions import bindings
from embtui.tui.panes.base import Pane, focus_now
from embtui.tui.widgets.progress_text import bar, eta, rate

COLUMNS = ("id", "model", "state", "progress", "stage", "rate", "eta", "device", "batch", "split")
ACTIVE = ("queued", "running")


class JobsPane(Pane):
    """Jobs table fed by the app's job watcher (polls every 0.5 s in a thread).

    e: evaluate the selected models on the current project/split (one detached worker each);
    c: cancel; r: resume; l: log.
    """

    PANE_ID = "jobs"
    BINDINGS = bindings("jobs")

    class Submitted(Message, bubble=False):
        """Jobs were started (ids) or could not be (error)."""

        def __init__(self, job_ids: tuple[str, ...], error: str | None = None,
                     verb: str = "started") -> None:
            super().__init__()
            self.job_ids = job_ids
            self.error = error
            self.verb = verb

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.jobs: tuple[Any, ...] = ()
        self.jobs_error: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("e: evaluate the selected models · c: cancel · r: resume · l: log",
                     id="jobs-hint", classes="hint")
        yield DataTable(id="jobs-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="jobs-error", classes="error-area")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for col in COLUMNS:
            table.add_column(col, key=col)
        if self.jobs or self.jobs_error:
            self.show_jobs(self.jobs, self.jobs_error)

    def focus_default(self) -> None:
        focus_now(self.query_one(DataTable))

    def show_jobs(self, jobs: tuple[Any, ...], error: str | None = None) -> None:
        """Update the table in place (the cursor stays on its job)."""
        self.jobs = tuple(sorted(jobs, key=lambda j: str(j.created_at or ""), reverse=True))
        self.jobs_error = error
        if not self.is_mounted:
            return  # shown once the pane mounts
        err = self.query_one("#jobs-error", Static)
        err.update(Text(error or ""))
        err.set_class(bool(error), "-shown")
        table = self.query_one(DataTable)
        seen = set()
        for job in self.jobs:
            seen.add(str(job.id))
            cells = self._cells(job)
            if str(job.id) in table.rows:
                for col, value in zip(COLUMNS, cells):
                    table.update_cell(str(job.id), col, value)
            else:
                table.add_row(*cells, key=str(job.id))
        for key in [k for k in table.rows if k.value not in seen]:
            table.remove_row(key)
        if len(seen) > 1:
            order = {str(j.id): i for i, j in enumerate(self.jobs)}
            table.sort("id", key=lambda cell: order.get(str(cell), 0))

    @staticmethod
    def _cells(job: Any) -> tuple[Any, ...]:
        state = Text(job.state, style={"running": "bold", "failed": "bold red",
                                       "done": "green"}.get(job.state, ""))
        progress = bar(job.progress if job.state != "queued" else None)
        return (str(job.id), Text(str(job.model or ""), overflow="ellipsis"), state, progress,
                Text(str(job.stage or ""), overflow="ellipsis"),
                rate(job.items_per_s) if job.state in ACTIVE else "",
                eta(job.eta_s) if job.state in ACTIVE else "",
                str(job.device or ""), str(job.batch_size or ""), str(job.split or ""))

    def selected_job(self) -> Any:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return next((j for j in self.jobs if str(j.id) == key), None)

    # -- actions ---------------------------------------------------------------------------------
    def action_evaluate(self) -> None:
        ctx = self.context
        if ctx.project is None or self.store is None:
            self.notify("no project yet", severity="warning")
            return
        if not ctx.models:
            self.notify("select models first: space in the sidebar or the Models pane",
                        severity="warning")
            return
        self.submit(ctx.project, ctx.split, ctx.models)

    @work(thread=True, exclusive=False, group="jobs-submit", exit_on_error=False,
          description="start evaluations")
    def submit(self, project: str, split: str, models: tuple[str, ...]) -> None:
        from embtui.engine.evaluate import EvalRequest
        from embtui.engine.models import resolve_spec
        from embtui.errors import EmbtuiError
        from embtui.jobs import submit_eval

        store = self.store
        assert store is not None
        ids: list[str] = []
        try:
            for name in models:
                spec = resolve_spec(name, store)
                ids.append(str(submit_eval(str(store.ws.root), EvalRequest(project, spec, split))))
        except EmbtuiError as exc:
            self.post_message(self.Submitted(tuple(ids), str(exc)))
            return
        self.post_message(self.Submitted(tuple(ids)))

    @on(Submitted)
    def jobs_submitted(self, message: Submitted) -> None:
        if message.job_ids:
            self.notify(f"{message.verb} job(s) {', '.join(message.job_ids)}", timeout=3)
        if message.error:
            self.notify(message.error, title="could not start", severity="error")

    def action_cancel_job(self) -> None:
        job = self.selected_job()
        if job is None or job.state not in ACTIVE:
            self.notify("no running job under the cursor", severity="warning")
            return
        self.job_call("cancel_job", str(job.id))

    def action_resume_job(self) -> None:
        job = self.selected_job()
        if job is None or job.state not in ("interrupted", "cancelled", "failed"):
            self.notify("no interrupted, cancelled or failed job under the cursor",
                        severity="warning")
            return
        self.job_call("resume_job", str(job.id))

    @work(thread=True, group="jobs-control", exit_on_error=False, description="control a job")
    def job_call(self, func: str, job_id: str) -> None:
        import embtui.jobs as jobs
        from embtui.errors import EmbtuiError

        store = self.store
        assert store is not None
        verb = {"cancel_job": "cancelled", "resume_job": "resumed"}[func]
        try:
            result = getattr(jobs, func)(str(store.ws.root), job_id)
        except EmbtuiError as exc:
            self.post_message(self.Submitted((), str(exc)))
            return
        new_id = result if isinstance(result, str) and result else job_id
        self.post_message(self.Submitted((new_id,), verb=verb))

    def action_show_log(self) -> None:
        from embtui.tui.screens.job_log import JobLogScreen

        job = self.selected_job()
        if job is None or self.store is None:
            self.notify("no job under the cursor", severity="warning")
            return
        self.app.push_screen(JobLogScreen(str(self.store.ws.root), str(job.id)))

    @on(DataTable.RowSelected)
    def open_log(self) -> None:
        self.action_show_log()
