"""The Metrics pane: runs x metrics at a chosen k, sortable, with a baseline's deltas, significance and export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable, Label, Select, Static

from embtui.tui.actions import bindings
from embtui.analysis.metrics_table import (INFO_COLUMNS, Column, export_table, ks_of,
                                           metric_columns, run_row, sort_rows)
from embtui.api.views import CorrectedView, SignificanceView, load_corrected_view, load_significance_view
from embtui.tui.panes.base import Pane, focus_now
from embtui.tui.widgets.progress_text import rate, size
from embtui.tui.widgets.run_card import RunCard


class MetricsPane(Pane):
    """Every finished run of the project and split, one row each.

    Enter on a cell sorts by its column (again: reverse); s cycles the sort column; k or the
    Select picks the cutoff; b makes the run under the cursor the baseline: every other row then
    shows its delta and ▲/▼ with stars where the difference is significant (randomization test,
    Holm-adjusted across runs); d opens the per-query deltas of the run under the cursor; c shows
    the metrics on the corrected judgments (qrels plus the overlay); x exports.
    """

    PANE_ID = "metrics"
    BINDINGS = bindings("metrics")

    k: reactive[int] = reactive(10, init=False)
    """The cutoff shown."""
    sort_key: reactive[str] = reactive("", init=False)
    """Column key the rows are sorted by ('' = run order)."""
    sort_reverse: reactive[bool] = reactive(True, init=False)
    """Descending when True."""
    baseline: reactive[int | None] = reactive(None, init=False)
    """Run id whose values the other rows are compared with."""
    corrected: reactive[bool] = reactive(False, init=False)
    """Show metrics on the imported qrels plus the hand-made overlay."""

    class CorrectedLoaded(Message, bubble=False):
        def __init__(self, key: tuple[Any, ...], view: CorrectedView) -> None:
            super().__init__()
            self.key = key
            self.view = view

    class SignificanceLoaded(Message, bubble=False):
        def __init__(self, key: tuple[Any, ...], view: SignificanceView) -> None:
            super().__init__()
            self.key = key
            self.view = view

    class DeltasLoaded(Message, bubble=False):
        def __init__(self, comparison: Any, run_id: int) -> None:
            super().__init__()
            self.comparison = comparison
            self.run_id = run_id

    class Exported(Message, bubble=False):
        def __init__(self, paths: tuple[str, ...]) -> None:
            super().__init__()
            self.paths = paths

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runs: list[Any] = []
        self.rows: list[dict[str, Any]] = []
        self.columns: list[Column] = []
        self.corrected_values: dict[int, dict[str, float]] = {}
        self.corrected_key: tuple[Any, ...] | None = None
        self.overlay_count = 0
        self.marks: dict[tuple[int, str], str] = {}
        self.marks_key: tuple[Any, ...] | None = None
        self.marks_error = ""
        self.pending: dict[str, tuple[Any, ...] | None] = {"corrected": None, "marks": None}
        self.export_note = ""
        self._view: tuple[Any, ...] | None = None  # (project, split) whose saved state is applied

    def compose(self) -> ComposeResult:
        with Horizontal(id="metrics-bar"):
            yield Label("k", classes="form-label")
            yield Select([("10", 10)], value=10, allow_blank=False, id="k-select")
            yield Static(id="metrics-sort", classes="hint")
        yield DataTable(id="metrics-table", cursor_type="cell", zebra_stripes=True)
        yield Static(id="metrics-note", classes="hint")
        yield RunCard(id="run-card")  # how the run under the cursor was made

    def focus_default(self) -> None:
        focus_now(self.query_one(DataTable))

    def reload(self) -> None:
        """Runs come from the app's workspace read; no extra DB work here."""
        data = self.data
        ctx = self.context
        self.runs = [r for r in (data.runs_of(ctx.project, ctx.split) if data else [])
                     if r.status == "done"]
        ks = ks_of(self.runs) or [10]
        select = self.query_one("#k-select", Select)
        with select.prevent(Select.Changed):
            select.set_options([(str(k), k) for k in ks])
            if self.k not in ks:
                self.k = 10 if 10 in ks else ks[-1]
            select.value = self.k
        view = (ctx.project, ctx.split)
        if view != self._view:  # another project or split: its saved k and baseline
            self._view = view
            saved = self._saved()
            saved_k = saved.get("k")
            if isinstance(saved_k, int) and saved_k in ks and saved_k != self.k:
                self.set_reactive(MetricsPane.k, saved_k)
                with select.prevent(Select.Changed):
                    select.value = saved_k
            base = (saved.get("baseline") or {}).get(ctx.split)
            self.set_reactive(MetricsPane.baseline,
                              base if any(r.id == base for r in self.runs) else None)
        if self.baseline is not None and all(r.id != self.baseline for r in self.runs):
            self.baseline = None
        # runs or judgments may have changed: compute again
        self.corrected_key = self.marks_key = None
        self.pending = {"corrected": None, "marks": None}
        self.show_table()

    # -- rendering -------------------------------------------------------------------------------
    def show_table(self) -> None:
        table = self.query_one(DataTable)
        cursor = table.cursor_coordinate
        cursor_run = self._cursor_run()
        table.clear(columns=True)
        self.columns = metric_columns(self.k) + list(INFO_COLUMNS)
        rows = [run_row(r, self.k) for r in self.runs]
        self.refresh_derived()
        if self.corrected:  # until the re-scored values arrive, show none rather than stale ones
            ready = self.corrected_key == self._corrected_key()
            for r in rows:
                values = self.corrected_values.get(r["run"], {}) if ready else {}
                for col in metric_columns(self.k):
                    r[col.key] = values.get(col.key)
        if self.sort_key:
            rows = sort_rows(rows, self.sort_key, self.sort_reverse)
        self.rows = rows
        arrow = " ▼" if self.sort_reverse else " ▲"
        table.add_column("run" + (arrow if self.sort_key == "run" else ""), key="run")
        table.add_column("model" + (arrow if self.sort_key == "model" else ""), key="model")
        for col in self.columns:
            table.add_column(col.label + (arrow if self.sort_key == col.key else ""), key=col.key)
        base = next((r for r in rows if r["run"] == self.baseline), None)
        for r in rows:
            marker = "◆" if r["run"] == self.baseline else " "
            cells: list[Any] = [Text(f"{marker}#{r['run']}"), Text(r["model"], overflow="ellipsis")]
            for col in self.columns:
                cells.append(self._cell(col, r, base, self.marks.get((r["run"], col.key), "")))
            table.add_row(*cells, key=str(r["run"]))
        if not rows:
            table.add_row("", Text("no finished runs: evaluate models in Jobs (e)", style="dim"),
                          *([""] * len(self.columns)), key="empty")
        if cursor_run is not None and str(cursor_run) in table.rows:
            table.move_cursor(row=table.get_row_index(str(cursor_run)), column=cursor.column)
        else:
            table.move_cursor(row=0, column=cursor.column)
        sort = f"sorted by {self.sort_key} {'desc' if self.sort_reverse else 'asc'}" \
            if self.sort_key else "run order"
        base_txt = f" · baseline #{self.baseline}" if self.baseline is not None else ""
        judged = " · corrected judgments" if self.corrected else ""
        self.query_one("#metrics-sort", Static).update(Text(
            f"{sort}{base_txt}{judged} · {len(rows)} run(s) on {self.context.project}/{self.context.split}"))
        self.query_one("#metrics-note", Static).update(self._note())

    def _note(self) -> Text:
        parts = [self.export_note] if self.export_note else []
        if self.corrected:
            if self.corrected_key != self._corrected_key():
                parts.append("re-scoring on the corrected judgments …")
            else:
                parts.append(f"metrics on the imported qrels plus {self.overlay_count} judgment(s) "
                             "made by hand (c: imported)")
        if self.baseline is not None and len(self.runs) > 1:
            if self.marks_error:
                parts.append(f"significance: {self.marks_error}")
            elif self.marks_key != self._marks_key():
                parts.append("testing significance against the baseline …")
            else:
                parts.append("▲/▼ significant vs baseline: randomization test, Holm across runs; "
                             "* p<.05 ** p<.01 *** p<.001 · d: per-query deltas")
        return Text(" · ".join(parts), style="dim")

    # -- derived values, computed off the UI thread ---------------------------------------------
    def _corrected_key(self) -> tuple[Any, ...]:
        return (self.context.project, self.context.split, tuple(r.id for r in self.runs))

    def _marks_key(self) -> tuple[Any, ...]:
        return (self.context.project, self.context.split, tuple(r.id for r in self.runs), self.baseline,
                self.k, self.corrected)

    def refresh_derived(self) -> None:
        """Start the workers for what the table needs and does not have yet."""
        if self.store is None or not self.runs:
            return
        want = self._corrected_key()
        if self.corrected and self.corrected_key != want and self.pending["corrected"] != want:
            self.pending["corrected"] = want
            self.load_corrected(want, [r.id for r in self.runs])
        want = self._marks_key()
        if self.baseline is None or len(self.runs) < 2:
            self.marks, self.marks_error = {}, ""
        elif self.marks_key != want and self.pending["marks"] != want:
            self.pending["marks"] = want
            self.marks, self.marks_error = {}, ""
            metrics = [c.key for c in metric_columns(self.k)
                       if all(c.key in r.metrics for r in self.runs)]
            others = [r.id for r in self.runs if r.id != self.baseline]
            self.load_significance(self._marks_key(), [self.baseline, *others], metrics, self.corrected)

    @work(thread=True, exclusive=True, group="metrics-corrected", exit_on_error=False,
          description="re-score runs on corrected judgments")
    def load_corrected(self, key: tuple[Any, ...], run_ids: list[int]) -> None:
        assert self.store is not None
        self.post_message(self.CorrectedLoaded(key, load_corrected_view(self.store, key[0], key[1], run_ids)))

    @on(CorrectedLoaded)
    def show_corrected(self, message: CorrectedLoaded) -> None:
        self.corrected_values, self.corrected_key = dict(message.view.values), message.key
        self.overlay_count = message.view.overlay
        self.show_table()

    @work(thread=True, exclusive=True, group="metrics-significance", exit_on_error=False,
          description="paired significance tests")
    def load_significance(self, key: tuple[Any, ...], run_ids: list[int], metrics: list[str],
                          corrected: bool) -> None:
        assert self.store is not None
        self.post_message(self.SignificanceLoaded(key, load_significance_view(self.store, run_ids, metrics,
                                                                              corrected)))

    @on(SignificanceLoaded)
    def show_significance(self, message: SignificanceLoaded) -> None:
        if message.key != self._marks_key():
            return
        self.marks, self.marks_key = dict(message.view.marks), message.key
        self.marks_error = message.view.error
        self.show_table()

    @staticmethod
    def _cell(col: Column, row: dict[str, Any], base: dict[str, Any] | None, mark: str = "") -> Text:
        value = row.get(col.key)
        if value is None:
            return Text("–", style="dim")
        if col.kind == "metric":
            text = Text(f"{value:.4f}")
            if base is not None and base is not row and base.get(col.key) is not None:
                delta = value - base[col.key]
                style = "green" if delta > 0 else ("red" if delta < 0 else "dim")
                text.append(f" {delta:+.3f}", style=style)
                if mark:
                    text.append(f" {mark}", style="bold " + ("green" if mark.startswith("▲") else "red"))
            return text
        if col.fmt == "bytes":
            return Text(size(value))
        if col.kind == "rate":
            return Text(rate(value))
        return Text(col.fmt.format(value))

    @on(DataTable.CellHighlighted, "#metrics-table")
    def _show_run_card(self) -> None:
        run_id = self._cursor_run()
        self.query_one(RunCard).show(next((r for r in self.runs if r.id == run_id), None))

    def _cursor_run(self) -> int | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return int(key) if key and key.isdigit() else None

    def _saved(self) -> dict[str, Any]:
        saved_view = getattr(self.app, "saved_view", None)
        return saved_view(self.context.project) if saved_view is not None else {}

    def _remember(self, **changes: Any) -> None:
        remember = getattr(self.app, "remember_view", None)
        if remember is not None and self._view == (self.context.project, self.context.split):
            remember(self.context.project, **changes)

    def watch_k(self) -> None:
        self._remember(k=self.k)
        self.show_table()

    def watch_sort_key(self) -> None:
        self.show_table()

    def watch_sort_reverse(self) -> None:
        self.show_table()

    def watch_baseline(self) -> None:
        self._remember(baseline=(self.context.split, self.baseline))  # survives a restart
        self.show_table()

    def watch_corrected(self) -> None:
        self.show_table()

    # -- interaction -----------------------------------------------------------------------------
    @on(Select.Changed, "#k-select")
    def k_chosen(self, event: Select.Changed) -> None:
        if isinstance(event.value, int):
            self.k = event.value

    def action_next_k(self) -> None:
        ks = ks_of(self.runs) or [10]
        self.k = ks[(ks.index(self.k) + 1) % len(ks)] if self.k in ks else ks[0]
        select = self.query_one("#k-select", Select)
        with select.prevent(Select.Changed):
            select.value = self.k

    def sortable_keys(self) -> list[str]:
        return ["run", "model"] + [c.key for c in self.columns]

    def sort_by(self, key: str) -> None:
        """Sort by ``key``; the same key again flips the direction."""
        if key == self.sort_key:
            self.sort_reverse = not self.sort_reverse
            return
        kind = next((c.kind for c in self.columns if c.key == key), "text")
        self.set_reactive(MetricsPane.sort_reverse, kind in ("metric", "rate"))
        self.sort_key = key

    def action_sort_next(self) -> None:
        keys = self.sortable_keys()
        if self.sort_key in keys:
            key = keys[(keys.index(self.sort_key) + 1) % len(keys)]
        else:
            key = keys[2] if len(keys) > 2 else keys[0]
        self.sort_by(key)

    @on(DataTable.CellSelected)
    def sort_by_cell_column(self, event: DataTable.CellSelected) -> None:
        keys = self.sortable_keys()
        if 0 <= event.coordinate.column < len(keys):
            self.sort_by(keys[event.coordinate.column])

    @on(DataTable.HeaderSelected)
    def sort_by_header(self, event: DataTable.HeaderSelected) -> None:
        self.sort_by(str(event.column_key.value))

    def action_toggle_baseline(self) -> None:
        run = self._cursor_run()
        if run is None:
            return
        self.baseline = None if run == self.baseline else run

    def action_toggle_corrected(self) -> None:
        self.corrected = not self.corrected

    def _cursor_metric(self) -> str:
        table = self.query_one(DataTable)
        keys = self.sortable_keys()
        col = table.cursor_coordinate.column
        key = keys[col] if 0 <= col < len(keys) else ""
        return key if any(c.key == key and c.kind == "metric" for c in self.columns) else f"ndcg@{self.k}"

    def action_deltas(self) -> None:
        run = self._cursor_run()
        if self.baseline is None:
            self.notify("pick a baseline first: b on its row", severity="warning")
            return
        if run is None or run == self.baseline:
            self.notify("move the cursor to a run other than the baseline", severity="warning")
            return
        self.notify(f"comparing run #{run} with #{self.baseline} on {self._cursor_metric()} …", timeout=2)
        self.load_deltas(self.baseline, run, self._cursor_metric(), self.corrected)

    @work(thread=True, exclusive=True, group="metrics-deltas", exit_on_error=False,
          description="per-query deltas and paired tests")
    def load_deltas(self, baseline: int, run_id: int, metric: str, corrected: bool) -> None:
        from embtui.api.compare import compare_runs
        from embtui.errors import EmbtuiError

        store = self.store
        assert store is not None
        try:
            comp = compare_runs(store, [baseline, run_id], metric, baseline=baseline, qrels_overlay=corrected)
        except EmbtuiError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.post_message(self.DeltasLoaded(comp, run_id))

    @on(DeltasLoaded)
    def show_deltas(self, message: DeltasLoaded) -> None:
        from embtui.tui.screens.deltas import DeltaScreen

        self.app.push_screen(DeltaScreen(message.comparison, message.run_id))

    def action_delete_run(self) -> None:
        """del: delete the run under the cursor, after a confirmation."""
        from embtui.tui.run_delete import confirm_delete_run

        rid = self._cursor_run()
        run = next((r for r in self.runs if r.id == rid), None)
        if run is None or self.store is None:
            self.notify("no run under the cursor", severity="warning")
            return
        confirm_delete_run(self, run)

    def action_frontier(self) -> None:
        from embtui.tui.screens.frontier import FrontierScreen

        ctx = self.context
        if self.store is None or ctx.project is None or ctx.split is None:
            self.notify("open a project first", severity="warning")
            return
        self.app.push_screen(FrontierScreen(self.store, ctx.project, ctx.split))

    def action_export(self) -> None:
        if self.store is None or self.context.project is None:
            return
        name = f"metrics-{self.context.project}-{self.context.split}-k{self.k}"
        folder = self.store.ws.root / "exports"
        self.write_exports(folder, name, export_table(self.rows, self.columns, "csv"),
                           export_table(self.rows, self.columns, "md"))

    @work(thread=True, exclusive=True, group="export", exit_on_error=False,
          description="export metrics")
    def write_exports(self, folder: Path, name: str, csv_text: str, md_text: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for ext, text in (("csv", csv_text), ("md", md_text)):
            path = folder / f"{name}.{ext}"
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
            paths.append(str(path))
        self.post_message(self.Exported(tuple(paths)))

    @on(Exported)
    def show_exported(self, message: Exported) -> None:
        self.notify("\n".join(message.paths), title="exported", timeout=6)
        self.export_note = "exported: " + ", ".join(Path(p).name for p in message.paths)
        self.query_one("#metrics-note", Static).update(self._note())
