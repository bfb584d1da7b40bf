"""The frontier screen (f in the Metrics pane): quality against single-query p99 latency and against
memory per document for every run of the project split, Pareto-optimal runs marked ●, and a
"best under constraints" form answered with the run and its test against the next best."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from embtui.analysis.frontier import scatter


class FrontierScreen(ModalScreen[None]):
    """Loaded by one worker, shown whole; the constraint form answers in another worker."""

    BINDINGS = [Binding("escape,q", "close", "Close")]

    DEFAULT_CSS = """
    FrontierScreen { align: center middle; }
    FrontierScreen > Vertical { width: 96%; height: 94%; border: round $accent; background: $surface;
                                padding: 0 1; }
    FrontierScreen Horizontal { height: auto; }
    FrontierScreen .form-label { width: auto; padding: 1 1 0 1; }
    FrontierScreen Input { width: 14; }
    FrontierScreen #frontier-answer { height: auto; margin: 1 0; }
    """

    class Loaded(Message, bubble=False):
        def __init__(self, view: Any, error: str = "") -> None:
            super().__init__()
            self.view = view
            self.error = error

    class Answered(Message, bubble=False):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, store: Any, project: str, split: str, metric: str = "ndcg@10") -> None:
        super().__init__()
        self.store, self.project, self.split, self.metric = store, project, split, metric
        self.view: Any = None

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = f"frontier · {self.project}/{self.split} · {self.metric}"
            box.border_subtitle = "enter in the form: best under constraints · escape: close"
            with Horizontal():
                yield Label("p99 ≤ ms", classes="form-label")
                yield Input(id="max-p99", placeholder="e.g. 20")
                yield Label("memory ≤ GB", classes="form-label")
                yield Input(id="max-gb", placeholder="e.g. 4")
                yield Label("at docs", classes="form-label")
                yield Input(id="at-docs", placeholder="e.g. 10M")
            yield Static(id="frontier-answer")
            with VerticalScroll():
                yield Static("loading runs and profiles…", id="frontier-body")

    def on_mount(self) -> None:
        self.query_one("#max-p99", Input).focus()
        self.load()

    @work(thread=True, exclusive=True, group="frontier", exit_on_error=False, description="load the frontier")
    def load(self) -> None:
        from embtui.api.frontier import load_frontier
        from embtui.errors import EmbtuiError

        try:
            self.post_message(self.Loaded(load_frontier(self.store, self.project, self.split, self.metric)))
        except EmbtuiError as exc:
            self.post_message(self.Loaded(None, str(exc)))

    @on(Loaded)
    def show(self, message: Loaded) -> None:
        body = self.query_one("#frontier-body", Static)
        if message.view is None:
            body.update(Text(message.error, style="red"))
            return
        self.view = view = message.view
        if not view.points:
            body.update("no finished run with this metric yet: evaluate a model (Jobs, e)")
            return
        lines = [f"{view.metric} against single-query p99 latency (ms, log scale) — ● no run is better and faster"]
        lines += scatter(view.points, "p99_ms", set(view.on_latency))
        lines += ["", f"{view.metric} against bytes per document (log scale) — ● no run is better and smaller"]
        lines += scatter(view.points, "bytes_per_doc", set(view.on_memory))
        lines += [""]
        for i, p in enumerate(view.points, 1):
            marks = ("L" if p.run_id in view.on_latency else " ") + ("M" if p.run_id in view.on_memory else " ")
            p99 = "     –" if p.p99_ms is None else f"{p.p99_ms:6.2f}"
            size = "      –" if p.bytes_per_doc is None else f"{p.bytes_per_doc:7g}"
            lines.append(f"{i:>3} {marks} {p.quality:.4f}  p99 {p99} ms  {size} B/doc  {p.label}")
        if view.missing_profiles:
            lines += ["", "no profile (no latency) for: " + ", ".join(view.missing_profiles[:6])
                      + (" …" if len(view.missing_profiles) > 6 else "") + "  — `embtui profile` adds one"]
        body.update(Text("\n".join(lines)))

    @on(Input.Submitted)
    def ask(self) -> None:
        from embtui.errors import EmbtuiError

        def number(key: str) -> float | None:
            raw = self.query_one(f"#{key}", Input).value.strip()
            if not raw:
                return None
            try:
                return float(raw)
            except ValueError:
                raise EmbtuiError(f"'{raw}' is not a number") from None

        if self.view is None:
            return
        try:
            from embtui.api.profiles import parse_count  # the one parser of "10M"

            docs_raw = self.query_one("#at-docs", Input).value.strip()
            docs = parse_count(docs_raw) if docs_raw else None
            p99, gb = number("max-p99"), number("max-gb")
        except EmbtuiError as exc:
            self.query_one("#frontier-answer", Static).update(Text(str(exc), style="red"))
            return
        self.query_one("#frontier-answer", Static).update("testing…")
        self.answer(p99, gb, docs)

    @work(thread=True, exclusive=True, group="frontier-answer", exit_on_error=False,
          description="best run under constraints")
    def answer(self, p99: float | None, gb: float | None, docs: int | None) -> None:
        from embtui.api.frontier import best_under, describe_answer

        ans = best_under(self.store, self.view, max_p99_ms=p99, max_gb=gb, at_docs=docs)
        self.post_message(self.Answered(describe_answer(ans, self.view.metric)))

    @on(Answered)
    def show_answer(self, message: Answered) -> None:
        self.query_one("#frontier-answer", Static).update(Text(message.text, style="bold"))

    def action_close(self) -> None:
        self.dismiss(None)
