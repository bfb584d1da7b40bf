"""The Jobs pane: every job of the workspace (from any process) with progress; start, cancel, resume."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.events import Resize
from textual.message import Message
from textual.widgets import DataTable, Static

from embtui.tui.actions import bindings
from embtui.tui.panes.base import Pane, focus_now
from embtui.tui.widgets.progress_text import bar, eta, rate

ACTIVE = ("queued", "running")
# Two lines a row, so that every fixed-width field fits a 55-column pane (80 columns with the
# sidebar): (key, header, width). Fixed widths (the longest value + one space): a field is never
# cut and the columns never move with the content; only the free text of "job" is cut to fit.
FIXED: tuple[tuple[str, str, int], ...] = (
    ("state", "state\nprogress", 12),   # "interrupted" / "██████ 100%"
    ("stage", "stage\nrate", 15),       # "encode queries" / "12,345/s"
    ("eta", "eta\ndevice", 8),          # "59m59s" / "cuda:10"
    ("batch", "batch", 5),              # "1024"
)
FREE_MIN = 12
COLUMNS = ("job",) + tuple(key for key, _h, _w in FIXED)
STAGE_SHORT = {"encode documents": "encode docs", "starting": "starting"}


def stage_text(stage: str | None) -> str:
    """A stage in at most 14 characters: 'waiting for cuda:0' reads 'wait cuda:0'."""
    s = str(stage or "")
    if s.startswith("waiting for "):
        s = "wait " + s[len("waiting for "):]
    return STAGE_SHORT.get(s, s)


def error_line(job: Any) -> str:
    """The one line that says why a job failed (the first non-empty line of its error)."""
    text = str(job.error or "")
    return next((line.strip() for line in text.splitlines() if line.strip()), job.state)


class _JobCell(Text):
    """The free-text cell, carrying its job's id (the table sorts rows by it)."""

    def __init__(self, text: Text, job_id: str) -> None:
        super().__init__(no_wrap=True, overflow="crop")
        self.append_text(text)
        self.job_id = job_id


class JobsPane(Pane):
    """Jobs table fed by the app's job watcher (polls every 0.5 s in a thread).

    e: evaluate the selected models on the current project/split (one detached worker each);
    c: cancel; r: resume; l: log. Below the table: the job under the cursor in full (id, and why
    it failed).
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
        self.free_width = FREE_MIN

    def compose(self) -> ComposeResult:
        yield Static("e: evaluate · c: cancel · r: resume · ⏎: log",
                     id="jobs-hint", classes="hint")
        yield DataTable(id="jobs-table", cursor_type="row", zebra_stripes=True, cell_padding=0,
                        header_height=2)
        yield Static(id="job-detail")
        yield Static(id="jobs-error", classes="error-area")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column(self._free_header(FREE_MIN), key="job", width=FREE_MIN)
        for key, header, width in FIXED:
            table.add_column(Text(header), key=key, width=width)
        self._fit_free_column()
        self.show_detail()
        if self.jobs or self.jobs_error:
            self.show_jobs(self.jobs, self.jobs_error)

    def on_resize(self, event: Resize) -> None:
        self._fit_free_column()

    def _fit_free_column(self) -> None:
        """Give the free-text column what the fixed ones leave (a scrollbar's width spared)."""
        table = self.query_one(DataTable)
        room = max(table.size.width or self.size.width, 40)
        width = max(FREE_MIN, room - sum(w for _k, _h, w in FIXED) - 2)
        column = table.columns.get(next(k for k in table.columns if k.value == "job"))
        if column is not None and column.width != width:
            column.width = self.free_width = width
            column.label = self._free_header(width)
            table._require_update_dimensions = True  # no public API to re-size a column
            table.refresh(layout=True)
            if self.jobs:
                self.show_jobs(self.jobs, self.jobs_error)

    @staticmethod
    def _free_header(width: int) -> Text:
        lines = [Text("model  project/split"), Text("job id, or why it failed")]
        for line in lines:
            line.truncate(max(width - 1, 4), overflow="ellipsis")
        return Text("\n").join(lines)

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
            cells = self.cells(job)
            if str(job.id) in table.rows:
                for col, value in zip(COLUMNS, cells):
                    table.update_cell(str(job.id), col, value)
            else:
                table.add_row(*cells, key=str(job.id), height=2)
        for key in [k for k in table.rows if k.value not in seen]:
            table.remove_row(key)
        if len(seen) > 1:
            order = {str(j.id): i for i, j in enumerate(self.jobs)}
            table.sort("job", key=lambda cell: order.get(getattr(cell, "job_id", ""), 0))
        self.show_detail()

    def cells(self, job: Any) -> tuple[Any, ...]:
        """The row of a job: two lines per cell, each line one field; free text cut to fit."""
        active = job.state in ACTIVE
        width = max(self.free_width - 1, 4)  # one space before the next column
        head = Text.assemble(str(job.model or "?"), "  ", (f"{job.project}/{job.split}", "dim"))
        second = (Text("✗ " + error_line(job), "red") if job.state == "failed"
                  else Text(str(job.id), "dim"))
        for line in (head, second):
            line.truncate(width, overflow="ellipsis")
        job_cell = _JobCell(Text("\n").join((head, second)), str(job.id))
        state = Text.assemble(
            (job.state, {"running": "bold", "failed": "bold red", "interrupted": "yellow",
                         "done": "green"}.get(job.state, "")),
            "\n", bar(job.progress if job.state != "queued" else None, width=6),
            no_wrap=True, overflow="crop")
        stage = Text.assemble(stage_text(job.stage), "\n",
                              (rate(job.items_per_s) if active else "", "dim"),
                              no_wrap=True, overflow="crop")
        timing = Text.assemble(eta(job.eta_s) if active else "", "\n", str(job.device or ""),
                               no_wrap=True, overflow="crop")
        return (job_cell, state, stage, timing, Text(str(job.batch_size or ""), no_wrap=True))

    def selected_job(self) -> Any:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return next((j for j in self.jobs if str(j.id) == key), None)

    def show_detail(self) -> None:
        """The job under the cursor in full: id, model, project, and a failed job's reason."""
        job = self.selected_job()
        detail = self.query_one("#job-detail", Static)
        detail.display = job is not None  # no empty bar under the table
        if job is None:
            detail.update("")
            return
        text = Text.assemble(("job ", "dim"), str(job.id), ("  ", ""), str(job.model or "?"),
                             (" on ", "dim"), f"{job.project}/{job.split}")
        if job.run_id is not None:
            text.append_text(Text.assemble(("  run ", "dim"), f"#{job.run_id}"))
        if job.state == "failed":
            text.append_text(Text.assemble("\n", ("failed: ", "bold red"), error_line(job)))
        elif job.state in ("cancelled", "interrupted") and job.error:
            text.append_text(Text.assemble("\n", (f"{job.state}: ", "yellow"), error_line(job)))
        elif job.state in ACTIVE and getattr(job, "message", ""):
            # what the stage says now: cached texts found on resume, or each device's
            # throughput while a multi-device or Ray encode runs
            text.append_text(Text.assemble("\n", (f"{stage_text(job.stage)}: ", "dim"), job.message))
        detail.update(text)

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self.show_detail()

    # -- actions ---------------------------------------------------------------------------------
    def action_evaluate_force(self) -> None:
        """E: evaluate even where an identical finished run exists (a new run each time)."""
        self.action_evaluate(force=True)

    def action_evaluate(self, force: bool = False) -> None:
        ctx = self.context
        if ctx.project is None or self.store is None:
            self.notify("no project yet", severity="warning")
            return
        if not ctx.models:
            self.notify("select models first: space in the sidebar or the Models pane",
                        severity="warning")
            return
        self.submit(ctx.project, ctx.split, ctx.models, force)

    @work(thread=True, exclusive=False, group="jobs-submit", exit_on_error=False,
          description="start evaluations")
    def submit(self, project: str, split: str, models: tuple[str, ...], force: bool = False) -> None:
        from embtui.api.evaluations import plan_evaluation, submit_jobs
        from embtui.api.runs import identical_note
        from embtui.errors import EmbtuiError

        store = self.store
        assert store is not None
        ids: list[str] = []
        try:
            for name in models:  # one plan per model: a bad one leaves the ones before it started
                plan = plan_evaluation(store, project, (name,), split=split, force=force)
                for same in plan.reused:  # nothing would change: say so instead of a duplicate run
                    self.app.call_from_thread(self.notify, identical_note(same, "E (shift+e)"),
                                              title=name, timeout=6)
                ids += [str(job_id) for job_id in submit_jobs(plan)]
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
        import embtui.api.jobs as jobs
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
