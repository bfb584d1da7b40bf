"""A modal list of runs to choose from (the other model in the Failures comparison)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList
from textual.widgets.option_list import Option

NONE = "none"


class RunPicker(ModalScreen[int | None]):
    """Choose a run; dismisses with its id, with None for "no comparison", or stays unchanged
    (dismiss with the current value) on escape."""

    BINDINGS = [Binding("escape", "cancel", "Close")]

    DEFAULT_CSS = """
    RunPicker { align: center middle; }
    RunPicker > Vertical { width: 70; max-width: 95%; height: auto; max-height: 80%;
                           border: round $primary; background: $surface; }
    RunPicker OptionList { height: auto; max-height: 20; border: none; }
    """

    def __init__(self, runs: list[Any], current: int | None, title: str = "compare with run") -> None:
        super().__init__()
        self.runs = runs
        self.current = current
        self.title_text = title

    def compose(self) -> ComposeResult:
        options = [Option(Text("no comparison", style="dim"), id=NONE)]
        for r in self.runs:
            score = r.metrics.get("ndcg@10")
            label = Text.assemble(("◆ " if r.id == self.current else "  "), f"#{r.id} ",
                                  (r.model_name, "bold"),
                                  f"  ndcg@10 {score:.4f}" if score is not None else "")
            options.append(Option(label, id=str(r.id)))
        with Vertical() as box:
            box.border_title = self.title_text
            box.border_subtitle = "enter picks · escape closes"
            yield OptionList(*options, id="run-options")

    def on_mount(self) -> None:
        ol = self.query_one(OptionList)
        ids = [str(r.id) for r in self.runs]
        ol.highlighted = 1 + ids.index(str(self.current)) if str(self.current) in ids else 0
        ol.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        oid = event.option.id
        self.dismiss(None if oid == NONE else int(oid or 0))

    def action_cancel(self) -> None:
        self.dismiss(self.current)
