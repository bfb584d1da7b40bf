"""A modal showing one document in full: id, title, text, and why it is shown (rank, score, judgment)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class DocumentScreen(ModalScreen[None]):
    """The full text of a document. Escape or q closes it."""

    BINDINGS = [Binding("escape,q,enter", "dismiss", "Close")]

    DEFAULT_CSS = """
    DocumentScreen { align: center middle; }
    DocumentScreen > VerticalScroll {
        width: 90%; max-width: 110; height: 90%; border: round $primary; background: $surface;
        padding: 0 1;
    }
    DocumentScreen #doc-title { text-style: bold; margin-bottom: 1; }
    DocumentScreen #doc-meta { color: $text-muted; margin-bottom: 1; }
    """

    def __init__(self, doc_id: str, title: str, text: str, meta: str = "") -> None:
        super().__init__()
        self.doc_id = doc_id
        self.doc_title = title
        self.doc_text = text
        self.meta = meta

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = f"document {self.doc_id}"
            scroll.border_subtitle = "escape closes"
            yield Static(Text(self.doc_title or "(no title)"), id="doc-title")
            if self.meta:
                yield Static(Text(self.meta), id="doc-meta")
            yield Static(Text(self.doc_text), id="doc-text")
