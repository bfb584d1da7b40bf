"""The pipeline builder: name, first-stage models, fusion, rerankers and depth in one form; saving
validates through the use-case layer (the pane's worker) and an error keeps the form open."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


@dataclass(frozen=True)
class PipelineForm:
    """What the form holds, as typed (the use-case layer parses and checks it)."""

    name: str
    retrieve: tuple[str, ...]
    fuse: str | None
    rerank: tuple[str, ...]
    rerank_depth: int | None
    depth: int | None


def _names(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


class PipelineScreen(ModalScreen["PipelineForm | None"]):
    """ctrl+s or Save returns the form; escape cancels. ``show_error`` keeps it open with a reason."""

    BINDINGS = [Binding("ctrl+s", "save", "Save"), Binding("escape", "cancel", "Cancel")]

    DEFAULT_CSS = """
    PipelineScreen { align: center middle; }
    PipelineScreen > Vertical { width: 84; max-width: 95%; height: auto; padding: 1 2;
                                border: round $accent; background: $surface; }
    PipelineScreen Horizontal { height: auto; }
    PipelineScreen .form-label { width: 18; padding-top: 1; }
    PipelineScreen Input { width: 1fr; }
    PipelineScreen #pipeline-error { color: $error; height: auto; }
    PipelineScreen #pipeline-buttons { align-horizontal: right; }
    """

    FIELDS = (("name", "name", "hybrid"),
              ("retrieve", "first stage", "bm25, all-MiniLM-L6-v2   (comma-separated)"),
              ("fuse", "fusion", "rrf, rrf:60 or weighted:0.3,0.7   (two or more first stages)"),
              ("depth", "candidates", "per first-stage model (default 1000 fused, else rerank depth)"),
              ("rerank", "rerank with", "a bi-encoder (encodes only the candidates)"),
              ("rerank-depth", "rerank depth", "100"))

    def __init__(self, form: PipelineForm | None = None, error: str = "") -> None:
        super().__init__()
        self.initial = form
        self.error = error

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "new pipeline"
            box.border_subtitle = "ctrl+s: save · escape: cancel"
            for key, label, hint in self.FIELDS:
                with Horizontal():
                    yield Label(label, classes="form-label")
                    yield Input(placeholder=hint, id=f"pipeline-{key}")
            yield Static(id="pipeline-error")
            with Horizontal(id="pipeline-buttons"):
                yield Button("Cancel", id="pipeline-cancel")
                yield Button("Save", id="pipeline-save", variant="primary")

    def on_mount(self) -> None:
        f = self.initial
        if f is not None:  # reopened after a failed save: the form as it was, with the reason
            values = {"name": f.name, "retrieve": ", ".join(f.retrieve), "fuse": f.fuse or "",
                      "depth": str(f.depth or ""), "rerank": ", ".join(f.rerank),
                      "rerank-depth": str(f.rerank_depth or "")}
            for key, text in values.items():
                self.query_one(f"#pipeline-{key}", Input).value = text
            self.show_error(self.error)
        self.query_one("#pipeline-name", Input).focus()

    def value(self, key: str) -> str:
        return self.query_one(f"#pipeline-{key}", Input).value.strip()

    def form(self) -> PipelineForm | None:
        def number(key: str, label: str) -> int | None:
            raw = self.value(key)
            if not raw:
                return None
            if not raw.isdigit() or int(raw) < 1:
                raise ValueError(f"{label} must be a whole number >= 1, not '{raw}'")
            return int(raw)

        try:
            return PipelineForm(self.value("name"), _names(self.value("retrieve")), self.value("fuse") or None,
                                _names(self.value("rerank")), number("rerank-depth", "rerank depth"),
                                number("depth", "candidates"))
        except ValueError as exc:
            self.show_error(str(exc))
            return None

    def show_error(self, message: str) -> None:
        self.query_one("#pipeline-error", Static).update(message)

    def action_save(self) -> None:
        form = self.form()
        if form is not None:
            self.dismiss(form)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "pipeline-save":
            self.action_save()
        else:
            self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_save()
