"""The embtui Textual app: sidebar, switchable panes, status line, footer, palette; `run_app`.

Imports only Textual and embtui.tui modules at load time: the store (DuckDB, pyarrow), the engine
and torch load in thread workers after the first paint, so the app opens at once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.containers import Horizontal
from textual.lazy import Lazy
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane
from textual.worker import Worker, WorkerState, get_current_worker

from embtui.tui.actions import ACTIONS, PANES, ActionSpec, bindings
from embtui.tui.heap import freeze_heap
from embtui.tui.keys import OrderedKeysMixin
from embtui.tui.workspace_watch import WorkspaceWatchMixin, read_workspace
from embtui.tui.messages import (Context, JobsPolled, ModelToggled, ProjectChosen, RunChosen,
                                 WarmedUp, WorkspaceChanged, WorkspaceData, WorkspaceLoaded)
from embtui.tui.panes.base import Pane
from embtui.tui.panes.failures import FailuresPane
from embtui.tui.panes.jobs import JobsPane
from embtui.tui.panes.metrics import MetricsPane
from embtui.tui.panes.models import ModelsPane
from embtui.tui.panes.project import ProjectPane
from embtui.tui.panes.query import QueryPane
from embtui.tui.panes.drift import DriftPane
from embtui.tui.panes.space import SpacePane
from embtui.tui.panes.train import TrainPane
from embtui.tui.widgets.sidebar import WorkspaceTree
from embtui.tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:  # pragma: no cover
    from embtui.api.workspace import Store

PANE_CLASSES: dict[str, type[Pane]] = {
    "query": QueryPane, "metrics": MetricsPane, "failures": FailuresPane, "jobs": JobsPane,
    "models": ModelsPane, "project": ProjectPane, "train": TrainPane,
    "space": SpacePane, "drift": DriftPane,
}
SHORT_TITLES = {"query": "Query", "metrics": "Metrics", "failures": "Failures", "jobs": "Jobs",
                "models": "Models", "project": "Project", "train": "Train",
                "space": "Space", "drift": "Drift"}
JOB_POLL_S = 0.5



class EmbtuiApp(OrderedKeysMixin, WorkspaceWatchMixin, App[int]):
    """Explore a workspace: pick a project, compare models on real queries, run evaluations."""

    TITLE = "embtui"
    CSS_PATH = "app.tcss"
    BINDINGS = bindings("app")
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]

    context: reactive[Context] = reactive(Context(), init=False)
    """Project, split and selected models; bound down to every pane."""
    current_pane: reactive[str] = reactive("query", init=False)
    """Id of the pane on show."""

    def __init__(self, workspace: str | Path | None = None, *, seed_demo: bool | None = None,
                 warmup: bool = True, poll_jobs: bool = True,
                 device_lister: Callable[[], list[Any]] | None = None,
                 job_poll_s: float = JOB_POLL_S) -> None:
        super().__init__()
        self.workspace_arg = workspace
        self.seed_demo = workspace is None if seed_demo is None else seed_demo
        self.warmup = warmup
        self.poll_jobs = poll_jobs
        self.device_lister = device_lister
        self.job_poll_s = job_poll_s
        self.store: "Store | None" = None
        self.workspace_data: WorkspaceData | None = None
        self.jobs: tuple[Any, ...] = ()
        self.jobs_error: str | None = None
        self.first_paint_s: float | None = None
        self.panes: dict[str, Pane] = {}
        self._selection_set = False
        self._started = time.perf_counter()

    # -- layout ----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Horizontal(id="body"):
            yield WorkspaceTree(id="sidebar")
            with TabbedContent(id="panes", initial="query"):
                for pid, _title, _key in PANES:
                    pane = PANE_CLASSES[pid](id=f"{pid}-pane").data_bind(EmbtuiApp.context)
                    self.panes[pid] = pane
                    with TabPane(SHORT_TITLES[pid], id=pid):
                        # hidden panes mount after the first frame: a faster first paint
                        yield pane if pid == "query" else Lazy(pane)
        yield Footer()

    def on_mount(self) -> None:
        # Kept as references: while a modal is on top, app.query_one would search the modal.
        self.status_bar = self.query_one(StatusBar)
        self.sidebar = self.query_one(WorkspaceTree)
        self.tab_box = self.query_one(TabbedContent)
        self.pane("query").focus_query()  # the first thing people do is type a query
        self.call_after_refresh(self._after_first_paint)

    def _after_first_paint(self) -> None:
        """Everything slow starts here, after the first frame is on screen."""
        self.first_paint_s = time.perf_counter() - self._started
        self.load_workspace(seed=self.seed_demo)
        if self.warmup:
            self.status_bar.engine = "warming up model stack…"
            self.warm_up()

    def on_unmount(self) -> None:
        """Give frozen objects back to the collector so the interpreter can free them at exit
        (else extension types report "leaked instance" on the way out)."""
        import gc

        gc.unfreeze()

    def pane(self, pid: str) -> Pane:
        return self.panes[pid]

    # -- workers ---------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="workspace", exit_on_error=False,
          description="read the workspace")
    def load_workspace(self, seed: bool = False, project: str | None = None) -> None:
        from embtui.api.workspace import Store, default_workspace

        store = self.store
        if store is None:
            root = Path(self.workspace_arg) if self.workspace_arg else default_workspace()
            store = Store.open(root)
        seeded = False
        if seed:
            from embtui.api.projects import ensure_demo

            seeded = ensure_demo(store)
        data = read_workspace(store)
        self.post_message(WorkspaceLoaded(data, seeded_demo=seeded, store=store, project=project))

    @work(thread=True, exclusive=True, group="demo-runs", exit_on_error=False,
          description="score the demo")
    def score_demo(self) -> None:
        """The demo's starter runs, made once after seeding: bm25, and all-MiniLM-L6-v2 from the
        vectors shipped with the demo (no encoding, no torch); they appear when done."""
        from embtui.api.projects import DEMO_PROJECT, evaluate_demo

        assert self.store is not None
        if evaluate_demo(self.store):
            self.post_message(WorkspaceChanged(DEMO_PROJECT))

    @work(thread=True, exclusive=True, group="warmup", exit_on_error=False,
          description="import torch and sentence-transformers")
    def warm_up(self) -> None:
        """Import the model stack in the background so the first model load is not also the
        first import (several seconds)."""
        t0 = time.perf_counter()
        try:
            import sentence_transformers  # noqa: F401
        except Exception as exc:  # noqa: BLE001 - reported in the status line, never fatal
            self.post_message(WarmedUp(time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"))
            return
        freeze_heap()
        self.post_message(WarmedUp(time.perf_counter() - t0))

    @work(thread=True, exclusive=True, group="job-watch", exit_on_error=False,
          description="watch jobs")
    def watch_jobs(self, root: str) -> None:
        """Poll the workspace's jobs (any process may have started them) and post changes."""
        worker = get_current_worker()
        try:
            from embtui.api.jobs import list_jobs
        except ImportError as exc:
            self.post_message(JobsPolled((), error=f"the job system is not available: {exc}"))
            return
        last: Any = None
        while not worker.is_cancelled:
            try:
                jobs = tuple(list_jobs(root))
                error = None
            except Exception as exc:  # noqa: BLE001 - shown in the Jobs pane, polling goes on
                jobs, error = last or (), f"{type(exc).__name__}: {exc}"
            if jobs != last or error:
                last = jobs
                self.post_message(JobsPolled(jobs, error=error))
            time.sleep(self.job_poll_s)

    @on(Worker.StateChanged)
    def report_worker_failure(self, event: Worker.StateChanged) -> None:
        """Loud by default: any worker that fails shows its error (one line, no traceback)."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            err = event.worker.error
            from embtui.errors import EmbtuiError, crash_log, resource_error

            fault = resource_error(err) if isinstance(err, Exception) else None
            if isinstance(err, EmbtuiError) or fault is not None:
                text = str(fault or err)
            else:  # a bug: its traceback goes to a log file, the screen gets one line
                ws = self.store.ws.root if self.store is not None else self.workspace_arg
                log = crash_log(err, ws)
                text = f"internal error: {type(err).__name__}: {err} (traceback in {log})"
            self.notify(text, title=event.worker.description or event.worker.name,
                        severity="error", timeout=8)

    # -- messages --------------------------------------------------------------------------------
    @on(WorkspaceLoaded)
    def show_workspace(self, message: WorkspaceLoaded) -> None:
        first = self.store is None
        self.store = message.store
        data = message.data
        self.workspace_data = data
        if first and self.poll_jobs:
            self.watch_jobs(data.root)
            self.watch_workspace(data.root)  # runs and projects other sessions make appear
        if message.seeded_demo:
            self.notify("Imported the bundled demo project (SciFact, 400 documents); scoring "
                        "bm25 and all-MiniLM-L6-v2 on it…", title="Welcome to embtui", timeout=15)
            self.score_demo()
        old = self.context
        names = [p.name for p in data.projects]
        project = message.project if message.project in names else old.project
        if project not in names:
            project = "demo" if "demo" in names else (names[0] if names else None)
        info = data.project(project)
        splits = list(info.splits) if info else []
        split = old.split if old.split in splits else ("test" if "test" in splits or not splits
                                                      else splits[0])
        known = set(data.model_names())
        models = tuple(m for m in old.models if m in known)
        if not self._selection_set and project is not None:
            split, models = self._restored_view(data, project, split)  # as left last time
            self._selection_set = True
        self.context = Context(project, split, models, old.revision + 1)
        self.status_bar.workspace = Path(data.root).name

    @staticmethod
    def _default_selection(data: WorkspaceData, project: str, split: str) -> tuple[str, ...]:
        """Models with a finished run here (up to 3), else the first two saved specs."""
        ran = list(dict.fromkeys(r.model_name for r in data.runs_of(project, split)
                                 if r.status == "done"))
        return tuple(ran[:3] or list(data.models)[:2])

    def watch_context(self, context: Context) -> None:
        status = self.status_bar
        status.project = context.project or "no project"
        status.split = context.split
        status.models = context.models
        if self.workspace_data is not None:
            self.sidebar.show(self.workspace_data, context)
            self.remember_view(context.project, split=context.split, models=context.models)

    @on(WarmedUp)
    def show_warm(self, message: WarmedUp) -> None:
        status = self.status_bar
        status.engine = "model stack ready" if message.error is None else "no model stack"
        if message.error:
            self.notify(message.error, title="could not import sentence-transformers",
                        severity="warning")

    @on(JobsPolled)
    def show_jobs(self, message: JobsPolled) -> None:
        before = {j.id: j.state for j in self.jobs}
        self.jobs = message.jobs
        self.jobs_error = message.error
        jobs_pane = self.pane("jobs")
        assert isinstance(jobs_pane, JobsPane)
        jobs_pane.show_jobs(message.jobs, message.error)
        running = sum(j.state in ("queued", "running") for j in message.jobs)
        self.status_bar.jobs = f"jobs: {running} running" if running else ""
        finished = [j for j in message.jobs
                    if j.state in ("done", "failed") and before.get(j.id, j.state) != j.state]
        for job in finished:
            what = "fine-tuning" if job.kind == "finetune" else "evaluation"
            if job.state == "done":
                self.notify(f"job {job.id}: {job.model} on {job.project}/{job.split} finished",
                            title=f"{what} done")
            else:
                self.notify(f"job {job.id}: {job.error or 'failed'}", title=f"{what} failed",
                            severity="error")
        if finished:
            self.load_workspace()

    @on(WorkspaceChanged)
    def reload_workspace(self, message: WorkspaceChanged) -> None:
        self.load_workspace(project=message.project)

    @on(ProjectChosen)
    def choose_project(self, message: ProjectChosen) -> None:
        ctx = self.context
        if message.project == ctx.project or self.workspace_data is None:
            return
        info = self.workspace_data.project(message.project)
        splits = list(info.splits) if info else []
        split = ctx.split if ctx.split in splits else ("test" if "test" in splits or not splits
                                                      else splits[0])
        split, models = self._restored_view(self.workspace_data, message.project, split, ctx.models)
        self.context = Context(message.project, split, models, ctx.revision + 1)

    @on(ModelToggled)
    def toggle_model(self, message: ModelToggled) -> None:
        ctx = self.context
        models = tuple(m for m in ctx.models if m != message.model)
        if len(models) == len(ctx.models):
            models = ctx.models + (message.model,)
        self.context = Context(ctx.project, ctx.split, models, ctx.revision)

    @on(RunChosen)
    def show_run(self, message: RunChosen) -> None:
        run = next((r for r in (self.workspace_data.runs if self.workspace_data else ())
                    if r.id == message.run_id), None)
        if run is None:
            return
        ctx = self.context
        if (run.project, run.split) != (ctx.project, ctx.split):
            self.context = Context(run.project, run.split, ctx.models, ctx.revision + 1)
        failures = self.pane("failures")
        assert isinstance(failures, FailuresPane)
        failures.run_id = run.id
        self.action_show_pane(message.pane)

    @on(TabbedContent.TabActivated)
    def pane_shown(self, event: TabbedContent.TabActivated) -> None:
        """The TabbedContent is the one source of truth for the pane on show."""
        pid = event.pane.id or "query"
        if pid != self.current_pane:
            self.current_pane = pid

    def watch_current_pane(self, pid: str) -> None:
        self.pane(pid).activate()

    # -- actions ---------------------------------------------------------------------------------
    def typing(self) -> bool:
        """Whether a text box has focus (there 1-9 and the letters type; alt+1-9 switch panes)."""
        from textual.widgets import Input

        focused = self.focused
        return isinstance(focused, Input) or type(focused).__name__ == "TextArea"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys shown (and active) by where the focus is: the footer says what works right now."""
        if action in ("show_pane", "search"):
            return not self.typing()
        if action in ("jump_pane", "leave_input"):
            return self.typing()
        return True

    def action_show_pane(self, pid: str) -> None:
        if self.tab_box.active != pid:
            # focus must not stay in the pane being hidden: focusing there re-activates its tab
            self.screen.set_focus(None)
            self.tab_box.active = pid
        self.current_pane = pid  # activates (loads) the pane now, before any queued action
        pane = self.pane(pid)
        if not pane.is_mounted:  # panes mount just after the first frame: keys wait for it
            if not pane.focus_on_mount:
                pane.focus_on_mount = True
                self.hold_keys()
            return
        # focus now, not after refresh: keys typed right after the pane key must land there
        pane.focus_default()

    def action_jump_pane(self, pid: str) -> None:
        """alt+1-9: switch panes from inside a text box too."""
        self.action_show_pane(pid)

    def action_search(self) -> None:
        """/: the Query pane with the focus in its box (the slash is not typed)."""
        self.action_show_pane("query")
        query = self.pane("query")
        if query.is_mounted:
            query.focus_query()  # type: ignore[attr-defined]

    def action_help(self) -> None:
        from embtui.tui.screens.help import HelpScreen

        self.push_screen(HelpScreen())

    def action_next_split(self) -> None:
        ctx = self.context
        info = self.workspace_data.project(ctx.project) if self.workspace_data else None
        splits = list(info.splits) if info else []
        if len(splits) < 2:
            self.notify(f"project {ctx.project} has only split {ctx.split}")
            return
        split = splits[(splits.index(ctx.split) + 1) % len(splits)] if ctx.split in splits else splits[0]
        self.context = Context(ctx.project, split, ctx.models, ctx.revision + 1)
        self.notify(f"split: {split}", timeout=2)

    def action_toggle_sidebar(self) -> None:
        self.sidebar.toggle_class("-hidden")

    def action_focus_sidebar(self) -> None:
        tree = self.sidebar
        tree.remove_class("-hidden")
        tree.screen.set_focus(tree)

    def action_leave_input(self) -> None:
        """Escape in a text box: focus the pane's list or table instead, so keys act again."""
        from textual.widgets import Input

        if isinstance(self.focused, Input):
            self.pane(self.current_pane).focus_body()

    def action_reload(self) -> None:
        self.load_workspace()

    async def action_quit(self) -> None:
        self.exit(0)

    # -- command palette ---------------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every registered action, by name (the same registry as the keys and the help)."""
        yield from super().get_system_commands(screen)
        for spec in ACTIONS:
            if not spec.palette:
                continue
            where = "" if spec.scope == "app" else f" ({spec.scope})"
            yield SystemCommand(f"{spec.description}{where}", f"{spec.help} · key {spec.keys_text}",
                                lambda spec=spec: self.run_registered(spec))

    def run_registered(self, spec: ActionSpec) -> None:
        """Run a registry action from the palette: pane actions first show their pane."""
        if spec.scope == "app":
            # called, not run as an action: a pane key picked here works with a text box focused
            from textual.actions import parse

            _namespace, name, params = parse(spec.action)
            self.call_next(getattr(self, f"action_{name}"), *params)
        elif spec.scope == "sidebar":
            self.call_next(self.run_action, spec.action, self.sidebar)
        else:
            self.action_show_pane(spec.scope)
            self.call_after_refresh(self.run_action, spec.action, self.pane(spec.scope))


def run_app(workspace: str | None = None) -> int:
    """Open the TUI on ``workspace`` (default: the default workspace, seeded with the demo)."""
    app = EmbtuiApp(workspace)
    result = app.run()
    return int(result or 0)
