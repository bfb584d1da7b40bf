"""One model's column of ranked hits in the Query pane: status line plus a fixed pool of rows."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import ListItem, ListView, Static

SNIPPET_CHARS = 240
# States of a column with nothing ranked yet: documents being encoded (on demand or by a job).
NO_HITS_STATES = ("encoding", "waiting", "stopped")


class HitRow(ListItem):
    """A ranked document: ``✓  1  0.8123  Title`` and a line of text. ``-relevant`` when judged."""

    DEFAULT_CSS = """
    HitRow { height: auto; padding: 0 0; }
    HitRow > Static { width: 1fr; height: auto; text-wrap: nowrap; text-overflow: ellipsis; }
    HitRow.-relevant > Static { text-style: bold; }
    """

    def __init__(self) -> None:
        super().__init__(Static(""))
        self.hit: Any = None


class HitList(Vertical):
    """Ranked hits of one model. Rows are made once and updated in place, so typing stays cheap."""

    DEFAULT_CSS = """
    HitList { width: 1fr; height: 1fr; border: round $panel-lighten-2; }
    HitList:focus-within { border: round $primary; }
    HitList > .hit-status { height: auto; max-height: 5; color: $text-muted; }
    HitList.-problem > .hit-status { color: $text-warning; }
    HitList > ListView { height: 1fr; background: transparent; }
    """

    class DocumentSelected(Message):
        """Enter on a hit: show the whole document."""

        def __init__(self, model: str, hit: Any, relevant: int) -> None:
            super().__init__()
            self.model = model
            self.hit = hit
            self.relevant = relevant  # judged grade (0: not judged relevant)

    def __init__(self, model: str, k: int = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.k = k
        self.hits: list[Any] = []
        """The hits shown: the first ``k`` of ``ranked``."""
        self.ranked: list[Any] = []
        """Everything the search returned (deeper than ``k``: where the relevant ones landed)."""
        self.grades: dict[str, int] = {}
        self.shown_seq = -1
        self.shown_text = ""
        self.state = "idle"
        self.status_message = ""
        self._timing: tuple[float | None, str] = (None, "")
        self.border_title = model

    def compose(self) -> ComposeResult:
        yield Static("type a query", classes="hit-status")
        yield ListView(*[HitRow() for _ in range(self.k)])

    def on_mount(self) -> None:
        for row in self.query(HitRow):
            row.display = False

    def show_status(self, state: str, message: str = "", wrap: bool = False) -> None:
        """``state`` is a short word for tests and the subtitle; ``message`` the visible line
        (wrapped for problems, encoding states and ``wrap``; else cut to one line)."""
        self.state = state
        self.status_message = message or state
        problem = state in ("not evaluated", "error")
        self.set_class(problem, "-problem")
        wrap = wrap or problem or state in NO_HITS_STATES
        self.query_one(".hit-status", Static).update(
            Text(message or state, no_wrap=not wrap, overflow="ellipsis"))
        if problem or state in NO_HITS_STATES:
            for row in self.query(HitRow):
                row.display = False

    async def set_k(self, k: int) -> None:
        """Show ``k`` rows: add rows to the pool when it grows (rows are never removed)."""
        rows = len(self.query(HitRow))
        if k > rows:
            new = [HitRow() for _ in range(k - rows)]
            for row in new:
                row.display = False
            await self.query_one(ListView).extend(new)
        self.k = k
        if self.shown_text.strip() and self.state in ("ready", "empty"):
            self.show_hits(self.ranked, self.grades, self.shown_seq, self.shown_text, *self._timing)

    def show_hits(self, ranked: list[Any], grades: dict[str, int], seq: int, text: str,
                  elapsed_ms: float | None = None, note: str = "") -> None:
        """Show the first ``k`` of ``ranked``; judged-relevant ones ranked below them are named
        in the status line, and so is the number of relevant ones not retrieved at all."""
        self.ranked = ranked
        hits = self.hits = ranked[:self.k]
        self.grades = grades
        self._timing = (elapsed_ms, note)
        self.shown_seq = seq
        self.shown_text = text
        rows = list(self.query(HitRow))
        for i, row in enumerate(rows):
            if i >= len(hits):
                row.display = False
                row.hit = None
                continue
            hit = hits[i]
            grade = grades.get(hit.doc_id, 0)
            line = Text.assemble(("✓" if grade > 0 else " ", "bold"), (f"{hit.rank:>3} ", "dim"),
                                 (hit.title or hit.doc_id, "bold"))
            body = " ".join(hit.text.split())[:SNIPPET_CHARS]
            snippet = Text.assemble((f"{hit.score:>8.4f} ", "dim"), (body, "dim"))
            row.query_one(Static).update(Text("\n").join([line, snippet]))
            row.set_class(grade > 0, "-relevant")
            row.hit = hit
            row.display = True
        found = sum(1 for h in hits if grades.get(h.doc_id, 0) > 0)
        parts = [f"{len(hits)} hits"]
        if grades:
            parts.append(f"{found} relevant ✓")
            below = [h.rank for h in ranked[len(hits):] if grades.get(h.doc_id, 0) > 0]
            if below:
                parts.append("more ✓ at " + ", ".join(f"#{r}" for r in below))
            missing = sum(1 for g in grades.values() if g > 0) - found - len(below)
            if missing > 0:
                parts.append(f"{missing} ✓ not in top {len(ranked)}")
        if elapsed_ms is not None:
            parts.append(f"{elapsed_ms:.0f} ms")
        if note:  # what was searched (part of the corpus) comes first: it qualifies the rest
            parts.insert(0, note)
        self.show_status("ready" if hits else "empty", " · ".join(parts) if hits else
                         (f"no hits · {note}" if note else "no hits"), wrap=bool(note))

    @on(ListView.Selected)
    def open_hit(self, event: ListView.Selected) -> None:
        event.stop()
        hit = getattr(event.item, "hit", None)
        if hit is not None:
            self.post_message(self.DocumentSelected(self.model, hit, self.grades.get(hit.doc_id, 0)))

    def focus_list(self) -> bool:
        """Focus the hits at once, so keys typed next land here; False if the column has not
        mounted its list yet (a model selected a moment ago)."""
        lists = list(self.query(ListView))
        if not lists:
            return False
        lists[0].screen.set_focus(lists[0])
        return True
