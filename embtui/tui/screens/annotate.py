"""Modal forms of the Failures pane: tag a query or a (query, document) pair; pick a document to mark relevant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

QUERY_TARGET = "__query__"


@dataclass(frozen=True)
class Target:
    """Something that can be tagged: the query (``doc_id`` None) or one document shown with it."""

    doc_id: str | None
    label: str


@dataclass(frozen=True)
class AnnotationInput:
    """What the annotate form returns: the target document (None: the query), label and note."""

    doc_id: str | None
    label: str
    note: str | None


class AnnotateScreen(ModalScreen["AnnotationInput | None"]):
    """Label a failed query or one of its documents: target, label (built-ins and labels already
    used are suggested as you type; any text works), optional note. Enter saves, escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    DEFAULT_CSS = """
    AnnotateScreen { align: center middle; }
    AnnotateScreen > Vertical { width: 76; max-width: 95%; height: auto; max-height: 90%;
                                border: round $primary; background: $surface; padding: 0 1; }
    AnnotateScreen Select { width: 100%; }
    AnnotateScreen #labels-hint { color: $text-muted; height: auto; }
    """

    def __init__(self, query_id: str, targets: Sequence[Target], labels: Sequence[str],
                 current: Sequence[str] = ()) -> None:
        super().__init__()
        self.query_id = query_id
        self.targets = list(targets)
        self.labels = list(dict.fromkeys(labels))
        self.current = list(current)

    def compose(self) -> ComposeResult:
        options = [(t.label, t.doc_id or QUERY_TARGET) for t in self.targets]
        with Vertical() as box:
            box.border_title = f"annotate query {self.query_id}"
            box.border_subtitle = "enter saves · escape cancels"
            yield Label("on")
            yield Select(options, value=QUERY_TARGET, allow_blank=False, id="annotate-target")
            yield Label("label")
            yield Input(placeholder="e.g. acronym", id="annotate-label",
                        suggester=SuggestFromList(self.labels, case_sensitive=False))
            yield Static(Text("labels: " + ", ".join(self.labels)), id="labels-hint")
            if self.current:
                yield Static(Text("already: " + "; ".join(self.current), style="dim"))
            yield Label("note (optional)")
            yield Input(placeholder="why", id="annotate-note")

    def on_mount(self) -> None:
        self.query_one("#annotate-label", Input).focus()

    @on(Input.Submitted)
    def save(self, event: Input.Submitted) -> None:
        event.stop()
        label = self.query_one("#annotate-label", Input).value.strip()
        if not label:
            self.notify("type a label first", severity="warning")
            self.query_one("#annotate-label", Input).focus()
            return
        target = self.query_one("#annotate-target", Select).value
        note = self.query_one("#annotate-note", Input).value.strip() or None
        self.dismiss(AnnotationInput(None if target == QUERY_TARGET else str(target), label, note))

    def action_cancel(self) -> None:
        self.dismiss(None)


class MarkRelevantScreen(ModalScreen["str | None"]):
    """Choose a retrieved document of a failed query; the pane toggles it "actually relevant" in
    the qrels overlay. Documents already marked carry a ``+``."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    DEFAULT_CSS = """
    MarkRelevantScreen { align: center middle; }
    MarkRelevantScreen > Vertical { width: 90; max-width: 95%; height: auto; max-height: 80%;
                                    border: round $primary; background: $surface; }
    MarkRelevantScreen OptionList { height: auto; max-height: 20; border: none; }
    """

    def __init__(self, query_id: str, docs: Sequence[tuple[str, int, str, bool]]) -> None:
        """``docs``: (doc id, rank, title, already marked relevant by hand)."""
        super().__init__()
        self.query_id = query_id
        self.docs = list(docs)

    def compose(self) -> ComposeResult:
        options = []
        for doc_id, rank, title, marked in self.docs:
            options.append(Option(Text.assemble(("+ " if marked else "  ", "bold green"), f"#{rank:<3} ",
                                                (doc_id, "dim"), "  ", title), id=doc_id))
        with Vertical() as box:
            box.border_title = f"query {self.query_id}: which retrieved document is actually relevant?"
            box.border_subtitle = "enter marks (on a + unmarks) · escape cancels"
            yield OptionList(*options, id="relevant-options")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
