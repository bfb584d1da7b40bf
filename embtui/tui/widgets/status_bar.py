"""The top line: app name, workspace, project and split, selected models, jobs and warm-up state."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static


class StatusBar(Static):
    """One line of where-am-I; every part is plain text so it reads without colour."""

    DEFAULT_CSS = """
    StatusBar { height: 1; background: $primary-background; color: $text; padding: 0 1; }
    """

    workspace: reactive[str] = reactive("opening workspace…")
    project: reactive[str] = reactive("")
    split: reactive[str] = reactive("")
    models: reactive[tuple[str, ...]] = reactive(())
    jobs: reactive[str] = reactive("")
    engine: reactive[str] = reactive("")

    def render(self) -> Text:
        text = Text.assemble(("embtui", "bold"), "  ", (self.workspace, "dim"))
        if self.project:
            text.append(f" ▸ {self.project} ▸ {self.split}")
        text.append("  │ models: ")
        text.append(", ".join(self.models) if self.models else "none selected")
        if self.jobs:
            text.append(f"  │ {self.jobs}")
        if self.engine:
            text.append(f"  │ {self.engine}", "dim")
        text.append("  │ 1-9 panes  ? help", "dim")
        text.truncate(max(self.size.width - 2, 10), overflow="ellipsis")
        return text
