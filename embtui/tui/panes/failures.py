"""The Failures pane: queries a run failed, worst first; the relevant docs and what outranked them."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable, Input, Label, Select, Static

from embtui.tui.actions import bindings
from embtui.analysis.failures import Failure, FailureDetail, find_failures
from embtui.api.views import FailureView, JudgmentsView, RunView, load_failure_view
from embtui.tui.panes.base import Pane, focus_now
from embtui.tui.widgets.failure_detail import failures_summary, render_compare, render_detail, snippet


class FailuresPane(Pane):
    """Failed queries of one run (no relevant doc in the top ``threshold``), worst first.

    n/p step through them; o shows another run's ranking of the same query beside it;
    / filters by text, l by annotation label; the threshold box sets the rank that counts as a
    failure. a tags the query or one of its documents; r marks a retrieved document actually
    relevant (the qrels overlay); c switches between the imported and the corrected judgments.
    """

    PANE_ID = "failures"
    BINDINGS = bindings("failures")

    run_id: reactive[int | None] = reactive(None, init=False)
    """The run analysed."""
    compare_run: reactive[int | None] = reactive(None, init=False)
    """Another run whose ranking is shown beside (None: no comparison)."""
    threshold: reactive[int] = reactive(10, init=False)
    """A query fails when its first relevant doc ranks below this."""
    text_filter: reactive[str] = reactive("", init=False)
    """Only failures whose query text (or id) contains this."""
    label_filter: reactive[str] = reactive("", init=False)
    """Only failures whose query (or one of its documents) carries this label ('' = any)."""
    corrected: reactive[bool] = reactive(False, init=False)
    """Judge failures on the imported qrels plus the hand-made overlay."""

    class RunLoaded(Message, bubble=False):
        def __init__(self, view: RunView) -> None:
            super().__init__()
            self.view = view

    class AnnotationsLoaded(Message, bubble=False):
        def __init__(self, view: JudgmentsView, notice: str = "") -> None:
            super().__init__()
            self.view = view
            self.notice = notice

    class DetailLoaded(Message, bubble=False):
        def __init__(self, view: FailureView) -> None:
            super().__init__()
            self.view = view

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_view = RunView()  # the run analysed, as loaded (whole, by one worker)
        self.notes = JudgmentsView()  # the project's annotations and the split's overlay
        self.tags: dict[str, tuple[str, ...]] = {}
        self.label_options: list[str] = []
        self.failures: list[Failure] = []
        self.detail: FailureDetail | None = None
        self.compare_detail: FailureDetail | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="failures-bar"):
            yield Select([], prompt="run", id="run-select")
            yield Label("fail if rank >", classes="form-label")
            yield Input("10", id="threshold", type="integer", classes="short-input")
            yield Input(placeholder="filter text", id="failure-filter")
            yield Select([], prompt="any label", id="label-filter")
        yield Static(id="failures-summary", classes="hint")
        yield DataTable(id="failures-table", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="failure-detail-row"):
            with VerticalScroll(id="failure-detail"):
                yield Static(id="detail-text")
            with VerticalScroll(id="failure-compare"):
                yield Static(id="compare-text")

    def on_mount(self) -> None:
        table = self.query_one("#failures-table", DataTable)
        self._add_columns(table, 40)
        self.query_one("#failure-compare").display = False

    @staticmethod
    def _add_columns(table: DataTable, text_width: int) -> None:
        # fixed widths: measured widths of long texts vary with when a row is first laid out
        table.add_column("query", key="query", width=8)
        table.add_column("1st rel", key="first", width=7)
        table.add_column("tags", key="tags", width=16)
        table.add_column("text", key="text", width=text_width)

    def focus_default(self) -> None:
        focus_now(self.query_one("#failures-table", DataTable))

    def runs(self) -> list[Any]:
        data = self.data
        ctx = self.context
        return [r for r in (data.runs_of(ctx.project, ctx.split) if data else []) if r.status == "done"]

    def reload(self) -> None:
        runs = self.runs()
        select = self.query_one("#run-select", Select)
        ids = [r.id for r in runs]
        with select.prevent(Select.Changed):
            select.set_options([(f"#{r.id} {r.model_name}", r.id) for r in runs])
            if self.run_id not in ids:
                self.set_reactive(FailuresPane.run_id, ids[-1] if ids else None)
            if self.run_id is not None:
                select.value = self.run_id
        if self.compare_run not in ids:
            self.set_reactive(FailuresPane.compare_run, None)
        self.load_run_if_needed(force=True)

    def watch_run_id(self) -> None:
        self.stale = True
        if self.shown:
            self.activate()

    def load_run_if_needed(self, force: bool = False) -> None:
        ctx = self.context
        if self.run_id is None or ctx.project is None:
            self.run_view = RunView()
            self.show_failures()
            return
        if force or self.run_view.run_id != self.run_id:
            self.query_one("#failures-summary", Static).update(Text(f"loading run #{self.run_id} …"))
            self.load_run(self.run_id, ctx.project, ctx.split)

    @work(thread=True, exclusive=True, group="failures-run", exit_on_error=False,
          description="read a run's rankings")
    def load_run(self, run_id: int, project: str, split: str) -> None:
        from embtui.api.views import load_run_view

        store = self.store
        assert store is not None
        view = load_run_view(store, run_id, project, split)
        self.read_annotations(project, split)
        self.post_message(self.RunLoaded(view))

    def read_annotations(self, project: str, split: str, notice: str = "") -> None:
        """Read the project's annotations and the split's overlay (on a worker thread) and post them."""
        from embtui.api.views import load_judgments_view

        store = self.store
        assert store is not None
        self.post_message(self.AnnotationsLoaded(load_judgments_view(store, project, split), notice))

    @on(AnnotationsLoaded)
    def show_annotations(self, message: AnnotationsLoaded) -> None:
        if message.view.project != self.context.project:
            return
        self.notes = message.view
        self.tags = self.notes.tags()
        select = self.query_one("#label-filter", Select)
        labels = self.used_labels()
        if self.label_filter and self.label_filter not in labels:
            labels.append(self.label_filter)
        counts = {label: sum(1 for t in self.tags.values() if label in t) for label in labels}
        self.label_options = labels
        with select.prevent(Select.Changed):
            select.set_options([(f"{label} ({counts[label]})", label) for label in labels])
            if self.label_filter:
                select.value = self.label_filter
        if message.notice:
            self.notify(message.notice, timeout=4)
        self.show_failures()

    @on(RunLoaded)
    def show_run(self, message: RunLoaded) -> None:
        if message.view.run_id != self.run_id:
            return
        self.run_view = message.view
        self.show_failures()

    def watch_threshold(self) -> None:
        self.show_failures()

    def watch_text_filter(self) -> None:
        self.show_failures()

    def watch_label_filter(self) -> None:
        select = self.query_one("#label-filter", Select)
        with select.prevent(Select.Changed):
            if self.label_filter:
                if self.label_filter in self.label_options:
                    select.value = self.label_filter
            else:
                select.clear()
        self.show_failures()

    def watch_corrected(self) -> None:
        self.show_failures()

    def judgments(self) -> dict[str, dict[str, int]]:
        """The qrels failures are judged on: imported, or with the overlay on top (``corrected``)."""
        notes, view = self.notes, self.run_view
        return notes.corrected_qrels if self.corrected and notes.corrected_qrels else view.qrels

    def used_labels(self) -> list[str]:
        """Labels carried by at least one annotation of the project, sorted."""
        return self.notes.labels

    def watch_compare_run(self) -> None:
        self.query_one("#failure-compare").display = self.compare_run is not None
        self.load_current_detail()

    def show_failures(self) -> None:
        table = self.query_one("#failures-table", DataTable)
        previous = self.current_failure()
        qrels = self.judgments()
        failures = find_failures(self.run_view.rankings, qrels, self.run_view.queries, self.threshold,
                                 self.text_filter)
        if self.label_filter:
            failures = [f for f in failures if self.label_filter in self.tags.get(f.query_id, ())]
        self.failures = failures
        table.clear(columns=True)
        self._add_columns(table, max([len(snippet(f.text, 200)) for f in self.failures] + [20]))
        for f in self.failures:
            first = "none" if f.first_rank is None else str(f.first_rank)
            tags = ", ".join(self.tags.get(f.query_id, ()))
            table.add_row(Text(f.query_id), first, Text(tags, style="yellow", overflow="ellipsis"),
                          Text(snippet(f.text, 200)), key=f.query_id)
        summary = failures_summary(self.run_id, len(self.failures), qrels, self.tags, self.threshold,
                                   self.run_view.depth, label_filter=self.label_filter,
                                   text_filter=self.text_filter, corrected=self.corrected,
                                   by_hand=sum(len(v) for v in self.notes.overlay.values()))
        self.query_one("#failures-summary", Static).update(Text(summary))
        if previous is not None and previous.query_id in table.rows:
            table.move_cursor(row=table.get_row_index(previous.query_id))
        if not self.failures:
            self.detail = None
            self.query_one("#detail-text", Static).update("")
            self.query_one("#compare-text", Static).update("")
        else:
            self.load_current_detail()

    def current_failure(self) -> Failure | None:
        table = self.query_one("#failures-table", DataTable)
        if not table.row_count or not self.failures:
            return None
        row = table.cursor_row
        return self.failures[row] if 0 <= row < len(self.failures) else None

    @on(DataTable.RowHighlighted, "#failures-table")
    def failure_highlighted(self) -> None:
        self.load_current_detail()

    def load_current_detail(self) -> None:
        failure = self.current_failure()
        ctx = self.context
        if failure is None or ctx.project is None:
            return
        self.load_detail(failure.query_id, failure.text, ctx.project, self.compare_run,
                         self.run_view.rankings.get(failure.query_id, []),
                         self.judgments().get(failure.query_id, {}))

    @work(thread=True, exclusive=True, group="failures-detail", exit_on_error=False,
          description="read a failed query")
    def load_detail(self, query_id: str, text: str, project: str, compare_run: int | None,
                    ranking: list[tuple[str, float]], judged: dict[str, int]) -> None:
        """Thread worker: everything it reads from the pane comes in as arguments (read on the UI
        thread), so a reactive changing meanwhile cannot mix two states."""
        store = self.store
        assert store is not None
        self.post_message(self.DetailLoaded(load_failure_view(
            store, project, query_id, text, ranking, judged, compare_run=compare_run)))

    @on(DetailLoaded)
    def show_detail(self, message: DetailLoaded) -> None:
        view = message.view
        self.detail = view.detail
        self.compare_detail = view.compare
        self.query_one("#detail-text", Static).update(
            render_detail(view.detail, self.notes.annotations, self.notes.hand_marked))
        if view.compare is not None:
            run = next((r for r in self.runs() if r.id == view.compare_run), None)
            name = f"#{view.compare_run} {run.model_name if run else ''}"
            self.query_one("#compare-text", Static).update(render_compare(view.compare, name))
        else:
            self.query_one("#compare-text", Static).update("")

    # -- interaction -----------------------------------------------------------------------------
    @on(Select.Changed, "#run-select")
    def run_chosen(self, event: Select.Changed) -> None:
        if isinstance(event.value, int):
            self.run_id = event.value

    @on(Input.Changed, "#threshold")
    def threshold_changed(self, event: Input.Changed) -> None:
        try:
            value = int(event.value)
        except ValueError:
            return
        if value >= 1:
            self.threshold = value

    @on(Input.Changed, "#failure-filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.text_filter = event.value

    @on(Input.Submitted)
    def back_to_table(self) -> None:
        focus_now(self.query_one("#failures-table", DataTable))

    def action_next_failure(self) -> None:
        self.query_one("#failures-table", DataTable).action_cursor_down()

    def action_previous_failure(self) -> None:
        self.query_one("#failures-table", DataTable).action_cursor_up()

    def action_focus_filter(self) -> None:
        focus_now(self.query_one("#failure-filter", Input))

    @on(Select.Changed, "#label-filter")
    def label_chosen(self, event: Select.Changed) -> None:
        self.label_filter = "" if event.value is Select.BLANK else str(event.value)

    def action_next_label(self) -> None:
        """Cycle the label filter: any label, then each label in use, then any again."""
        labels = self.used_labels()
        if not labels:
            self.notify("no annotations yet: tag a failure with a", severity="warning")
            return
        order = ["", *labels]
        at = order.index(self.label_filter) if self.label_filter in order else 0
        self.label_filter = order[(at + 1) % len(order)]

    def action_toggle_corrected(self) -> None:
        self.corrected = not self.corrected

    def _targets(self) -> list[Any]:
        from embtui.tui.screens.annotate import Target

        detail = self.detail
        assert detail is not None
        targets = [Target(None, f"the query {detail.query_id}")]
        seen = set()
        for d in (*detail.relevant, *detail.above):
            if d.doc_id in seen:
                continue
            seen.add(d.doc_id)
            where = f"#{d.rank}" if d.rank is not None else "not ranked"
            kind = "relevant" if d.grade > 0 else "retrieved"
            targets.append(Target(d.doc_id, f"{kind} {where} {d.doc_id} {(d.title or '')[:40]}"))
        return targets

    def action_annotate(self) -> None:
        from embtui.api.judgments import BUILTIN_LABELS
        from embtui.tui.screens.annotate import AnnotateScreen

        detail, project = self.detail, self.context.project
        if detail is None or project is None:
            self.notify("no failure selected", severity="warning")
            return
        current = [f"{a.label} ({'doc ' + a.doc_id if a.doc_id else 'query'})"
                   for a in self.notes.annotations if a.query_id == detail.query_id]
        labels = [*BUILTIN_LABELS, *self.used_labels()]
        query_id, run_id, split = detail.query_id, self.run_id, self.context.split

        def done(result: Any) -> None:
            if result is not None:
                self.save_annotation(project, split, query_id, result, run_id)

        self.app.push_screen(AnnotateScreen(query_id, self._targets(), labels, current), done)

    @work(thread=True, group="annotate", exit_on_error=False, description="save an annotation")
    def save_annotation(self, project: str, split: str, query_id: str, result: Any,
                        run_id: int | None) -> None:
        from embtui.api.judgments import add_tag
        from embtui.errors import EmbtuiError

        store = self.store
        assert store is not None
        try:
            ann = add_tag(store, project, query_id, result.label, doc_id=result.doc_id,
                          note=result.note, run_id=run_id)
        except EmbtuiError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        where = f"doc {ann.doc_id}" if ann.doc_id else f"query {query_id}"
        self.read_annotations(project, split, f"tagged {where}: {ann.label}")

    def action_mark_relevant(self) -> None:
        from embtui.tui.screens.annotate import MarkRelevantScreen

        detail, project = self.detail, self.context.project
        if detail is None or project is None or self.run_id is None:
            self.notify("no failure selected", severity="warning")
            return
        docs = [(d.doc_id, d.rank or 0, d.title or "", self.notes.hand_marked(detail.query_id, d.doc_id))
                for d in detail.above if d.grade <= 0 or self.notes.hand_marked(detail.query_id, d.doc_id)]
        if not docs:
            self.notify("nothing ranked above the relevant document", severity="warning")
            return
        query_id, run_id, split = detail.query_id, self.run_id, self.context.split

        def done(doc_id: str | None) -> None:
            if doc_id:
                self.toggle_relevant(project, split, run_id, query_id, doc_id,
                                     self.notes.hand_marked(query_id, doc_id))

        self.app.push_screen(MarkRelevantScreen(query_id, docs), done)

    @work(thread=True, group="annotate", exit_on_error=False, description="judge a document")
    def toggle_relevant(self, project: str, split: str, run_id: int, query_id: str, doc_id: str,
                        marked: bool) -> None:
        from embtui.api.judgments import mark_relevant, unmark_relevant
        from embtui.errors import EmbtuiError

        store = self.store
        assert store is not None
        try:
            if marked:
                unmark_relevant(store, run_id, query_id, doc_id)
                notice = f"doc {doc_id} no longer marked relevant for query {query_id}"
            else:
                mark_relevant(store, run_id, query_id, doc_id)
                notice = (f"doc {doc_id} marked relevant for query {query_id} "
                          "(qrels overlay; c shows corrected judgments)")
        except EmbtuiError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.read_annotations(project, split, notice)

    def action_compare(self) -> None:
        from embtui.tui.screens.pick_run import RunPicker

        others = [r for r in self.runs() if r.id != self.run_id]
        if not others:
            self.notify("no other finished run on this project and split", severity="warning")
            return

        def chosen(run_id: int | None) -> None:
            self.compare_run = run_id

        self.app.push_screen(RunPicker(others, self.compare_run), chosen)
