"""The Project pane: what the current project holds, and importing datasets (BEIR or pairs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Checkbox, DataTable, Input, Label, Select, Static

from embtui.tui.actions import bindings
from embtui.tui.messages import WorkspaceChanged
from embtui.tui.panes.base import Pane, focus_now
from embtui.tui.widgets.path_suggester import PathSuggester, path_matches

KINDS = [("BEIR folder", "beir"), ("pairs file (JSONL/CSV/Parquet)", "pairs"),
         ("query log into this project", "queries")]


class MarkedCheckbox(Checkbox):
    """A checkbox that reads without colour: ``X`` when checked, blank when not (Textual draws
    an ``X`` in both states and tells them apart by colour only)."""

    @property
    def _button(self):  # type: ignore[override]
        self.BUTTON_INNER = "X" if self.value else " "
        return super()._button


class ProjectPane(Pane):
    """Project facts and the import form; imports run in a thread and report errors verbatim."""

    PANE_ID = "project"
    BINDINGS = bindings("project")

    class ImportFinished(Message, bubble=False):
        """An import ended: ``summary`` on success, ``error`` (the importer's message) on failure."""

        def __init__(self, project: str, summary: str | None, error: str | None) -> None:
            super().__init__()
            self.project = project
            self.summary = summary
            self.error = error

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(id="project-facts")
            yield DataTable(id="split-table", cursor_type="row", zebra_stripes=True)
            yield Label("Data profile", classes="section-title")
            yield Static(Text("p: profile the data (lengths, each selected model's tokens and truncation, "
                              "duplicates, judgments, lexical overlap)", style="dim"), id="project-profile")
            yield Label("Import a dataset", classes="section-title")
            with Horizontal(classes="form-row"):
                yield Label("kind", classes="form-label")
                yield Select(KINDS, value="beir", allow_blank=False, id="import-kind")
            with Horizontal(classes="form-row"):
                yield Label("path", classes="form-label")
                yield Input(placeholder="folder or file (→ completes)", suggester=PathSuggester(),
                            id="import-path")
            yield Static(id="import-detected", classes="form-note")
            with Horizontal(classes="form-row"):
                yield Label("project", classes="form-label", id="import-name-label")
                yield Input(placeholder="project name", id="import-name")
            with Horizontal(classes="form-row", id="split-row"):
                yield Label("split", classes="form-label")
                yield Input("train", placeholder="split for pairs", id="import-split")
            with Horizontal(classes="form-row"):
                yield MarkedCheckbox("replace an existing project", id="import-replace")
                yield Button("Import (ctrl+s)", id="import-button", variant="primary")
            yield Static(id="import-error", classes="error-area")
            yield Static(id="import-result")

    def on_mount(self) -> None:
        table = self.query_one("#split-table", DataTable)
        for col in ("split", "queries", "judgments", "relevant"):
            table.add_column(col, key=col)
        self.query_one("#split-row").display = False

    def reload(self) -> None:
        self.show_facts()

    def show_facts(self) -> None:
        data = self.data
        info = data.project(self.context.project) if data else None
        facts = self.query_one("#project-facts", Static)
        table = self.query_one("#split-table", DataTable)
        table.clear()
        if info is None:
            facts.update("No project yet. Import a dataset below, or press D for the demo.")
            return
        source = info.source or "?"
        kind, _, where = source.partition(":")
        text = Text.assemble(("Project ", "dim"), (info.name, "bold"),
                             ("   source ", "dim"), f"{kind} · {Path(where).name or where}",
                             ("\nDocuments ", "dim"), f"{info.documents:,}",
                             ("   queries ", "dim"), f"{info.queries:,}",
                             ("   current split ", "dim"), self.context.split)
        facts.update(text)
        for split, counts in info.splits.items():
            table.add_row(Text(split), f"{counts['queries']:,}", f"{counts['qrels']:,}",
                          f"{counts['relevant']:,}", key=split)

    def focus_default(self) -> None:
        focus_now(self.query_one("#split-table", DataTable))

    # -- profile ---------------------------------------------------------------------------------
    class Profiled(Message, bubble=False):
        def __init__(self, lines: list[str] | None, error: str = "") -> None:
            super().__init__()
            self.lines = lines
            self.error = error

    def action_profile(self) -> None:
        project = self.context.project
        if not project or self.store is None:
            return
        models = self.dense_models()
        self.query_one("#project-profile", Static).update(
            Text(f"profiling {project}" + (f" with {', '.join(models)}" if models else "") + " …", style="dim"))
        self.profile(project, models)

    @work(thread=True, exclusive=True, group="profile", exit_on_error=False, description="profile the data")
    def profile(self, project: str, models: list[str]) -> None:
        from embtui.api.data import inspect
        from embtui.api.textplot import profile_lines
        from embtui.errors import EmbtuiError

        try:
            self.post_message(self.Profiled(profile_lines(inspect(self.store, project, models), width=30)))
        except EmbtuiError as exc:
            self.post_message(self.Profiled(None, str(exc)))

    @on(Profiled)
    def show_profile(self, message: Profiled) -> None:
        box = self.query_one("#project-profile", Static)
        if message.lines is None:
            box.update(Text(message.error, style="red"))
        else:
            box.update(Text("\n".join(message.lines)))

    # -- import ----------------------------------------------------------------------------------
    @on(Select.Changed, "#import-kind")
    def show_split_for_pairs(self, event: Select.Changed) -> None:
        self.query_one("#split-row").display = event.value == "pairs"
        log = event.value == "queries"  # a log goes into the current project, under a name
        self.query_one("#import-name-label", Label).update("log name" if log else "project")
        self.query_one("#import-name", Input).placeholder = "e.g. prod-2026-11" if log else "project name"

    @on(Input.Changed, "#import-path")
    def detect_kind(self, event: Input.Changed) -> None:
        """Set the kind from what the path is (a folder with corpus.jsonl, a pairs file) and say
        so; while the path names nothing yet, list what it could complete to."""
        from embtui.api.projects import detect_import_kind

        note = self.query_one("#import-detected", Static)
        if self.query_one("#import-kind", Select).value == "queries":
            note.update(Text("a query log: JSONL/CSV/TSV/Parquet with text (and timestamp), or .txt, "
                             "one query per line", style="dim"))
            return
        found = detect_import_kind(event.value)
        if found.kind is not None:
            kind = self.query_one("#import-kind", Select)
            if kind.value != found.kind:
                kind.value = found.kind
            note.update(Text.assemble(("detected: ", "dim"), found.note))
            return
        if found.note:
            note.update(Text.assemble(("note: ", "dim"), found.note))
            return
        matches = path_matches(event.value)
        if len(matches) > 1:
            names = [Path(m.rstrip("/")).name + ("/" if m.endswith("/") else "") for m in matches]
            shown = "  ".join(names[:8]) + (f"  … {len(names) - 8} more" if len(names) > 8 else "")
            note.update(Text.assemble((f"{len(matches)} matches: ", "dim"), shown))
        else:
            note.update("")

    @on(Input.Submitted, "#import-path")
    def path_entered(self) -> None:
        name = self.query_one("#import-name", Input)
        if not name.value:
            path = self.query_one("#import-path", Input).value.rstrip("/")
            name.value = Path(path).stem if path else ""
        focus_now(name)

    @on(Input.Submitted, "#import-name")
    @on(Input.Submitted, "#import-split")
    @on(Button.Pressed, "#import-button")
    def action_run_import(self) -> None:
        path = self.query_one("#import-path", Input).value.strip()
        name = self.query_one("#import-name", Input).value.strip()
        kind = self.query_one("#import-kind", Select).value
        split = self.query_one("#import-split", Input).value.strip() or "train"
        replace = self.query_one("#import-replace", Checkbox).value
        if not path:
            self.show_error("give a folder (BEIR) or a file (pairs) to import")
            return
        if not name:
            name = Path(path.rstrip("/")).stem
            self.query_one("#import-name", Input).value = name
        self.show_error("")
        self.query_one("#import-result", Static).update(Text(f"importing {path} …"))
        self.import_dataset(str(kind), path, name, split, bool(replace))

    def action_start_import(self) -> None:
        focus_now(self.query_one("#import-path", Input))

    def action_load_demo(self) -> None:
        from embtui.api.projects import DEMO_PATH, DEMO_PROJECT

        self.import_dataset("beir", str(DEMO_PATH), DEMO_PROJECT, "train", False)

    def show_error(self, message: str) -> None:
        area = self.query_one("#import-error", Static)
        area.update(Text(message))
        area.set_class(bool(message), "-shown")

    @work(thread=True, exclusive=True, group="import", exit_on_error=False,
          description="import a dataset")
    def import_dataset(self, kind: str, path: str, name: str, split: str, replace: bool) -> None:
        from embtui.errors import EmbtuiError

        store = self.store
        assert store is not None
        try:
            if kind == "queries":
                from embtui.api.data import import_query_log

                project = self.context.project
                if not project:
                    raise EmbtuiError("no project to add the log to: import or pick a project first")
                res = import_query_log(store, str(Path(path).expanduser()), project, name, replace=replace)
                self.post_message(self.ImportFinished(
                    project, f"imported query log '{name}' into '{project}': {res['queries']:,} queries, "
                             f"{res['timestamped']:,} with a timestamp (Drift pane: 9)", None))
                return
            if kind == "beir":
                from embtui.api.projects import import_beir

                report: Any = import_beir(store, Path(path).expanduser(), name, replace=replace)
            else:
                from embtui.api.projects import import_pairs

                report = import_pairs(store, Path(path).expanduser(), name, replace=replace,
                                      split=split)
        except EmbtuiError as exc:
            self.post_message(self.ImportFinished(name, None, str(exc)))
            return
        self.post_message(self.ImportFinished(name, report.summary(), None))

    @on(ImportFinished)
    def show_import_result(self, message: ImportFinished) -> None:
        result = self.query_one("#import-result", Static)
        if message.error is not None:
            result.update("")
            self.show_error(message.error)
            return
        self.show_error("")
        result.update(Text(message.summary or ""))
        self.notify(message.summary or "", title="import done")
        self.post_message(WorkspaceChanged(project=message.project))
