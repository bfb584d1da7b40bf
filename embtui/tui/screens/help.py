"""The help screen: every key, read from the action registry, grouped by where it works."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from embtui.tui.actions import ACTIONS, SCOPE_TITLES


def _keys(key: str) -> str:
    return " ".join(k.strip().replace("question_mark", "?").replace("slash", "/")
                    for k in key.split(","))


def _section(title: str, rows: list[tuple[str, str]]) -> list[object]:
    table = Table(box=None, show_header=False, padding=(0, 2, 0, 0), expand=True)
    table.add_column("key", style="bold", no_wrap=True, width=10)
    table.add_column("what")
    for keys, what in rows:
        table.add_row(keys, what)
    return [Text(title, style="bold underline"), table, Text("")]


def help_table() -> Group:
    """Every key from the action registry, one section per place it works."""
    parts: list[object] = []
    for scope, title in SCOPE_TITLES.items():
        rows = [(_keys(a.key), a.help or a.description) for a in ACTIONS
                if a.scope == scope and a.in_help]
        if rows:
            parts += _section(title, rows)
    parts += _section("Anywhere", [
        ("ctrl+p", "Command palette: every action by name"),
        ("tab", "Next widget (shift+tab: previous)"),
        ("enter", "Open / select the item under the cursor"),
        ("escape", "Close a dialog"),
    ])
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    """Keys of the whole app. Escape, q or ? closes it."""

    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90%; max-width: 100; height: 90%; border: round $primary; background: $surface;
        padding: 0 1;
    }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "embtui keys"
            scroll.border_subtitle = "escape closes"
            yield Static(help_table(), id="help-table")
