"""The Query pane: type (or pick) a query and see each selected model's top-k side by side."""

from __future__ import annotations

import threading
import time
from functools import partial
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Input, Static
from textual.worker import get_current_worker

from embtui.tui.actions import bindings
from embtui.tui.heap import freeze_heap
from embtui.tui.panes.base import Pane, focus_now
from embtui.tui.panes.query_live import LiveColumns
from embtui.tui.widgets.hit_list import HitList

DEBOUNCE_S = 0.15
K_CHOICES = (10, 20, 50)  # hits shown per model; `k` steps through them
SEARCH_DEPTH = 100  # hits searched per model, so a relevant document below the shown ones is found
# Torch threads in the app process: 1 keeps a typed query at ~7 ms even while a job encodes on the
# other cores (with all cores, OpenMP waits stretch it to ~0.5 s; see engine/live.py).
LIVE_TORCH_THREADS = 1


class QueryPane(LiveColumns, Pane):
    """Live search. Each model searches in its own thread worker (BM25 answers while a dense
    model still loads); results and states come back as messages tagged with the keystroke
    sequence number, and stale ones are dropped."""

    PANE_ID = "query"
    BINDINGS = bindings("query")

    text: reactive[str] = reactive("", init=False)
    """The query text being searched (after the debounce)."""
    query_id: reactive[str | None] = reactive(None, init=False)
    """Dataset query id when the text is a dataset query (relevant docs get a ✓)."""
    top_k: reactive[int] = reactive(K_CHOICES[0], init=False)
    """Hits shown per model."""

    class DatasetLoaded(Message, bubble=False):
        def __init__(self, project: str, queries: dict[str, str], qrels: dict[str, dict[str, int]],
                     query_split: dict[str, str]) -> None:
            super().__init__()
            self.project = project
            self.queries = queries
            self.qrels = qrels
            self.query_split = query_split

    class ModelState(Message, bubble=False):
        """A model's column changes state (loading, loading model…, not evaluated, error)."""

        def __init__(self, model: str, seq: int, state: str, message: str = "") -> None:
            super().__init__()
            self.model = model
            self.seq = seq
            self.state = state
            self.message = message

    class ResultsReady(Message, bubble=False):
        def __init__(self, model: str, seq: int, text: str, hits: list[Any], elapsed_ms: float,
                     note: str = "") -> None:
            super().__init__()
            self.model = model
            self.seq = seq
            self.text = text
            self.hits = hits
            self.elapsed_ms = elapsed_ms
            self.note = note

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seq = 0
        self.queries: dict[str, str] = {}
        self.qrels: dict[str, dict[str, int]] = {}
        self.query_split: dict[str, str] = {}
        self.text_to_id: dict[str, str] = {}
        self.dataset_project: str | None = None
        self._debounce: Timer | None = None
        self._searchers: dict[tuple[Any, ...], Any] = {}
        self._searchers_lock = threading.Lock()
        self._columns_for: tuple[str, ...] | None = None
        self._live_init()

    def compose(self) -> ComposeResult:
        yield Input(placeholder="type a query · ctrl+o: pick a dataset query", id="query-input")
        yield Static("free text", id="query-info", classes="hint")
        yield Static("", id="query-tokens")
        yield Horizontal(id="hit-columns")

    def focus_default(self) -> None:
        """A pane key lands on the results, not in the box: the next 1-9 switches panes again
        (`/` goes to the box)."""
        self.focus_body()

    def focus_query(self) -> None:
        focus_now(self.query_one("#query-input", Input))

    def reload(self) -> None:
        ctx = self.context
        self.update_columns()
        if ctx.project is not None and ctx.project != self.dataset_project:
            self.load_dataset(ctx.project)
            self.drop_searchers(keep_project=ctx.project)
        if self.text:
            self.call_after_refresh(self.search_now)  # once new columns are mounted

    # -- columns ---------------------------------------------------------------------------------
    def update_columns(self) -> None:
        """One column per selected model: keep existing ones, drop deselected, add new ones."""
        models = self.context.models
        if models == self._columns_for:
            return
        self._columns_for = models
        box = self.query_one("#hit-columns", Horizontal)
        existing = {c.model: c for c in box.query(HitList)}
        for model, column in existing.items():
            if model not in models:
                self.stop_encode(model)
                column.remove()
        box.query(".no-models").remove()
        if not models:
            box.mount(Static("No model selected: press space on models in the sidebar (0) or in "
                             "Models & Devices (5).", classes="hint no-models"))
            return
        new = [HitList(m, self.top_k) for m in models if m not in existing]
        if new:
            box.mount_all(new)

    def drop_searchers(self, keep_project: str) -> None:
        """Forget other projects' searchers (their vectors and models) when the project changes."""
        with self._searchers_lock:
            dropped = [s for k, s in self._searchers.items() if k[0] != keep_project]
            self._searchers = {k: s for k, s in self._searchers.items() if k[0] == keep_project}
        for searcher in dropped:
            self.stop_encode(searcher.spec.name)
            searcher.unload()

    def column(self, model: str) -> HitList | None:
        return next((c for c in self.query(HitList) if c.model == model and c.is_mounted), None)

    # -- the dataset's queries and judgments ---------------------------------------------------------
    @work(thread=True, exclusive=True, group="query-dataset", exit_on_error=False,
          description="read dataset queries")
    def load_dataset(self, project: str) -> None:
        store = self.store
        assert store is not None
        queries = store.queries(project)
        qrels: dict[str, dict[str, int]] = {}
        query_split: dict[str, str] = {}
        for split in store.get_project(project).splits:
            for qid, judged in store.qrels(project, split).items():
                qrels.setdefault(qid, {}).update(judged)
                query_split.setdefault(qid, split)
        self.post_message(self.DatasetLoaded(project, queries, qrels, query_split))

    @on(DatasetLoaded)
    def dataset_loaded(self, message: DatasetLoaded) -> None:
        self.dataset_project = message.project
        self.queries, self.qrels, self.query_split = message.queries, message.qrels, message.query_split
        self.text_to_id = {t: q for q, t in message.queries.items()}
        self.match_dataset_query(self.text)

    def match_dataset_query(self, text: str) -> None:
        qid = self.text_to_id.get(text.strip())
        self.query_id = qid
        info = self.query_one("#query-info", Static)
        if qid is None:
            info.update("free text · ctrl+o: pick a dataset query · esc: leave the box "
                        "(then 1-9 panes, ? help) · alt+1-9: panes from the box")
        else:
            rel = sum(1 for g in self.qrels.get(qid, {}).values() if g > 0)
            info.update(Text.assemble("dataset query ", (qid, "bold"),
                                      f" ({self.query_split.get(qid, 'no judgments')})",
                                      f" · {rel} relevant doc(s) marked ✓"))

    # -- typing ------------------------------------------------------------------------------------
    @on(Input.Changed, "#query-input")
    def query_typed(self, event: Input.Changed) -> None:
        """Debounce: search once typing pauses for DEBOUNCE_S."""
        if self._debounce is not None:
            self._debounce.stop()
        value = event.value
        self._debounce = self.set_timer(DEBOUNCE_S, partial(self._debounced, value))

    def _debounced(self, value: str) -> None:
        self.text = value

    def watch_text(self, text: str) -> None:
        self.match_dataset_query(text)
        self.search_now()
        if self.show_tokens:
            self.tokenize(text, self.context.models)

    # -- the tokenizer view ------------------------------------------------------------------------
    show_tokens = False

    class Tokenized(Message, bubble=False):
        def __init__(self, text: str, rows: list[dict]) -> None:
            super().__init__()
            self.text = text
            self.rows = rows

    def action_toggle_tokens(self) -> None:
        self.show_tokens = not self.show_tokens
        box = self.query_one("#query-tokens", Static)
        box.display = self.show_tokens
        if self.show_tokens:
            self.tokenize(self.text, self.context.models)

    @work(thread=True, exclusive=True, group="tokens", exit_on_error=False, description="tokenize the query")
    def tokenize(self, text: str, models: tuple[str, ...]) -> None:
        from embtui.api.data import tokenize_side_by_side

        if self.store is not None:
            self.post_message(self.Tokenized(text, tokenize_side_by_side(self.store, models, text)))

    @on(Tokenized)
    def show_tokenized(self, message: Tokenized) -> None:
        out = Text()
        if not message.text.strip():
            out.append("type a query to see how each model's tokenizer cuts it", style="dim")
        elif not message.rows:
            out.append("no selected model has a tokenizer (bm25 and pipelines have none)", style="dim")
        for row in message.rows:
            if out:
                out.append("\n")
            if "error" in row:
                out.append(f"{row['model']}: {row['error']}", style="red")
                continue
            cut = row["cut_at"]
            out.append(f"{row['model']} ", style="bold")
            out.append(f"{row['count']} tokens" + (f", cut at {cut}" if cut else "")
                       + (f", {row['unknown']} unknown" if row["unknown"] else "") + ": ", style="dim")
            for i, piece in enumerate(row["pieces"]):
                style = "red bold" if row["unknown"] and piece == "[UNK]" else (
                    "dim strike" if cut is not None and i >= cut else ("cyan" if i % 2 else ""))
                out.append(piece + " ", style=style)
        self.query_one("#query-tokens", Static).update(out)

    @on(Input.Submitted, "#query-input")
    def query_entered(self, event: Input.Submitted) -> None:
        """Enter: search at once (no debounce) and move to the first column."""
        if self._debounce is not None:
            self._debounce.stop()
        if self.text != event.value:
            self.text = event.value
        columns = list(self.query(HitList))
        if columns:
            columns[0].focus_list()

    def search_now(self, _waited: int = 0) -> None:
        """Start one search per selected model for the current text.

        A column still being mounted (its model was just selected) is searched once it is."""
        self.seq += 1
        text = self.text
        unmounted = []
        for model in self.context.models:
            column = self.column(model)
            if column is None:
                unmounted.append(model)
                continue
            if not text.strip():
                column.show_hits([], {}, self.seq, text)
                column.show_status("idle", "type a query")
                continue
            searcher = self.searcher(model)
            self.run_worker(partial(self.search_model, searcher, model, text, self.seq), thread=True,
                            exclusive=True, group=f"live-{model}", exit_on_error=False,
                            description=f"search with {model}")
        if unmounted and _waited < 5:  # search again (every column, newest seq) after the mount
            self.call_after_refresh(self.search_now, _waited + 1)

    def searcher(self, model: str) -> Any:
        """The LiveSearcher for a model on the current project (made once, kept while valid).

        Made on the UI thread (cheap: it reads nothing until ``prepare``), used in workers."""
        from embtui.api.live import LiveSearcher
        from embtui.api.models import ModelSpec

        data = self.data
        project = self.context.project
        assert data is not None and project is not None and self.store is not None
        spec = ModelSpec.from_dict(data.spec_dict(model) or {"model": model, "name": model})
        info = data.project(project)
        key = (project, info.dataset_hash if info else None, model, repr(sorted(spec.to_dict().items())))
        with self._searchers_lock:
            searcher = self._searchers.get(key)
            if searcher is None:
                searcher = self._searchers[key] = LiveSearcher(self.store, project, spec,
                                                                      torch_threads=LIVE_TORCH_THREADS)
        return searcher

    def search_model(self, searcher: Any, model: str, text: str, seq: int) -> None:
        """Thread worker: prepare (cached vectors), load the model if the text needs it, search.

        A model lacking some documents searches those cached (a job encodes the rest) or encodes
        them on demand first (see LiveColumns)."""
        from embtui.api.live import NotEvaluated
        from embtui.errors import EmbtuiError

        worker = get_current_worker()
        t0 = time.perf_counter()
        note: str | None = ""
        try:
            if not searcher.prepared:
                self.post_message(self.ModelState(model, seq, "preparing", "reading cached embeddings…"))
                searcher.prepare()
            if worker.is_cancelled:
                return
            if not searcher.complete:
                note = self.partial_note(searcher, model, seq)
                if note is None or worker.is_cancelled:
                    return
            if searcher.needs_model(text):
                self.post_message(self.ModelState(model, seq, "loading", "loading model…"))
                searcher.load_model()
                freeze_heap()
                if worker.is_cancelled:
                    return
                t0 = time.perf_counter()
            hits = searcher.search(text, max(SEARCH_DEPTH, self.top_k))
        except NotEvaluated as exc:
            with self._searchers_lock:  # try again after an evaluation fills the cache
                self._searchers = {k: v for k, v in self._searchers.items() if v is not searcher}
            self.post_message(self.ModelState(model, seq, "not evaluated", str(exc)))
            return
        except EmbtuiError as exc:
            self.post_message(self.ModelState(model, seq, "error", str(exc)))
            return
        if not worker.is_cancelled:
            self.post_message(self.ResultsReady(model, seq, text, hits,
                                                (time.perf_counter() - t0) * 1000, note or ""))

    @on(ModelState)
    def show_model_state(self, message: ModelState) -> None:
        column = self.column(message.model)
        if column is not None and message.seq >= column.shown_seq:
            column.show_status(message.state, message.message)

    @on(ResultsReady)
    def show_results(self, message: ResultsReady) -> None:
        column = self.column(message.model)
        if column is None or message.seq < column.shown_seq:
            return
        grades = self.qrels.get(self.query_id or "", {}) if message.text == self.text else {}
        column.show_hits(message.hits, grades, message.seq, message.text, message.elapsed_ms,
                         message.note)

    # -- documents and dataset queries -----------------------------------------------------------------
    @on(HitList.DocumentSelected)
    def open_document(self, message: HitList.DocumentSelected) -> None:
        from embtui.tui.screens.document import DocumentScreen

        hit = message.hit
        judged = f" · ✓ judged relevant (grade {message.relevant})" if message.relevant else ""
        meta = f"{message.model} · rank {hit.rank} · score {hit.score:.4f}{judged}"
        self.app.push_screen(DocumentScreen(hit.doc_id, hit.title, hit.text, meta))

    def action_pick_dataset_query(self) -> None:
        from embtui.tui.screens.query_picker import QueryPicker

        if not self.queries:
            self.notify("the project's queries are still loading", severity="warning")
            return

        def picked(qid: str | None) -> None:
            if qid is None:
                return
            self.set_query(self.queries[qid])

        self.app.push_screen(QueryPicker(self.queries, self.query_split), picked)

    def set_query(self, text: str) -> None:
        """Put ``text`` in the box and search it at once."""
        box = self.query_one("#query-input", Input)
        with box.prevent(Input.Changed):
            box.value = text
        if self._debounce is not None:
            self._debounce.stop()
        if self.text == text:
            self.watch_text(text)
        else:
            self.text = text
        focus_now(box)

    def focus_body(self) -> None:
        if not any(column.focus_list() for column in self.query(HitList)):
            self.app.action_focus_sidebar()  # type: ignore[attr-defined]

    def action_next_k(self) -> None:
        self.top_k = K_CHOICES[(K_CHOICES.index(self.top_k) + 1) % len(K_CHOICES)] \
            if self.top_k in K_CHOICES else K_CHOICES[0]

    async def watch_top_k(self, k: int) -> None:
        for column in self.query(HitList):
            await column.set_k(k)
        self.notify(f"showing the top {k} of each model", timeout=2)
