"""A modal to pick a dataset query: type to filter, arrows to move, enter to pick."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

MAX_SHOWN = 500


class QueryPicker(ModalScreen[str | None]):
    """Dismisses with the picked query id, or None on escape."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("down", "move(1)", "Down", show=False),
        Binding("up", "move(-1)", "Up", show=False),
        Binding("pagedown", "move(10)", "Page down", show=False),
        Binding("pageup", "move(-10)", "Page up", show=False),
    ]

    AUTO_FOCUS = "#picker-filter"

    DEFAULT_CSS = """
    QueryPicker { align: center middle; }
    QueryPicker > Vertical { width: 90%; max-width: 120; height: 80%; border: round $primary;
                             background: $surface; }
    QueryPicker OptionList { height: 1fr; border: none; }
    QueryPicker #picker-count { color: $text-muted; height: 1; }
    """

    def __init__(self, queries: dict[str, str], judged: dict[str, str]) -> None:
        """``queries``: id -> text; ``judged``: id -> split label for queries with judgments."""
        super().__init__()
        self.queries = queries
        self.judged = judged

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "dataset queries"
            box.border_subtitle = "type to filter · enter picks · escape closes"
            yield Input(placeholder="filter by text or id", id="picker-filter")
            yield Static(id="picker-count")
            yield OptionList(id="picker-options")

    def on_mount(self) -> None:
        self.fill("")

    @on(Input.Changed, "#picker-filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.fill(event.value)

    def fill(self, needle: str) -> None:
        needle = needle.strip().lower()
        matches = [(q, t) for q, t in self.queries.items()
                   if not needle or needle in t.lower() or needle in q.lower()]
        ol = self.query_one(OptionList)
        ol.clear_options()
        ol.add_options([Option(Text.assemble((f"{q:>8} ", "dim"),
                                             (f"{self.judged.get(q, ''):<6} ", "dim"), t),
                               id=q) for q, t in matches[:MAX_SHOWN]])
        if matches:
            ol.highlighted = 0
        more = f" (first {MAX_SHOWN})" if len(matches) > MAX_SHOWN else ""
        self.query_one("#picker-count", Static).update(f"{len(matches)} queries{more}")

    def action_move(self, step: int) -> None:
        ol = self.query_one(OptionList)
        if ol.option_count:
            ol.highlighted = min(max((ol.highlighted or 0) + step, 0), ol.option_count - 1)

    @on(Input.Submitted, "#picker-filter")
    def pick_highlighted(self) -> None:
        ol = self.query_one(OptionList)
        if ol.highlighted is not None and ol.option_count:
            self.dismiss(ol.get_option_at_index(ol.highlighted).id)

    @on(OptionList.OptionSelected)
    def pick(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
