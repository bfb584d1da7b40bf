"""The Metrics pane: runs x metrics at a chosen k, sortable, with a baseline's deltas and export."""

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
from embtui.tui.analysis import (INFO_COLUMNS, Column, export_table, ks_of, metric_columns,
                                 run_row, sort_rows)
from embtui.tui.panes.base import Pane, focus_now
from embtui.tui.widgets.progress_text import rate, size


class MetricsPane(Pane):
    """Every finished run of the project and split, one row each.

    Enter on a cell sorts by its column (again: reverse); s cycles the sort column; k or the
    Select picks the cutoff; b makes the run under the cursor the baseline; x exports.
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

    class Exported(Message, bubble=False):
        def __init__(self, paths: tuple[str, ...]) -> None:
            super().__init__()
            self.paths = paths

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runs: list[Any] = []
        self.rows: list[dict[str, Any]] = []
        self.columns: list[Column] = []

    def compose(self) -> ComposeResult:
        with Horizontal(id="metrics-bar"):
            yield Label("k", classes="form-label")
            yield Select([("10", 10)], value=10, allow_blank=False, id="k-select")
            yield Static(id="metrics-sort", classes="hint")
        yield DataTable(id="metrics-table", cursor_type="cell", zebra_stripes=True)
        yield Static(id="metrics-note", classes="hint")

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
        if self.baseline is not None and all(r.id != self.baseline for r in self.runs):
            self.baseline = None
        self.show_table()

    # -- rendering -------------------------------------------------------------------------------
    def show_table(self) -> None:
        table = self.query_one(DataTable)
        cursor = table.cursor_coordinate
        cursor_run = self._cursor_run()
        table.clear(columns=True)
        self.columns = metric_columns(self.k) + list(INFO_COLUMNS)
        rows = [run_row(r, self.k) for r in self.runs]
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
                cells.append(self._cell(col, r, base))
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
        self.query_one("#metrics-sort", Static).update(Text(
            f"{sort}{base_txt} · {len(rows)} run(s) on {self.context.project}/{self.context.split}"))

    @staticmethod
    def _cell(col: Column, row: dict[str, Any], base: dict[str, Any] | None) -> Text:
        value = row.get(col.key)
        if value is None:
            return Text("–", style="dim")
        if col.kind == "metric":
            text = Text(f"{value:.4f}")
            if base is not None and base is not row and base.get(col.key) is not None:
                delta = value - base[col.key]
                style = "green" if delta > 0 else ("red" if delta < 0 else "dim")
                text.append(f" {delta:+.3f}", style=style)
            return text
        if col.fmt == "bytes":
            return Text(size(value))
        if col.kind == "rate":
            return Text(rate(value))
        return Text(col.fmt.format(value))

    def _cursor_run(self) -> int | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return int(key) if key and key.isdigit() else None

    def watch_k(self) -> None:
        self.show_table()

    def watch_sort_key(self) -> None:
        self.show_table()

    def watch_sort_reverse(self) -> None:
        self.show_table()

    def watch_baseline(self) -> None:
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
        self.query_one("#metrics-note", Static).update(Text("exported: " + ", ".join(
            Path(p).name for p in message.paths)))
