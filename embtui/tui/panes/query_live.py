"""The Query pane's columns for models not fully cached: on-demand encode, partial-corpus search, job progress."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from textual.message import Message
from textual.timer import Timer
from textual.worker import Worker, get_current_worker

from embtui.api.live import CancelToken

PARTIAL_REFRESH_S = 1.0  # how often a column searching part of the corpus looks for new chunks
_NEW = object()  # a partial column not refreshed yet


class EncodeRequested(Message, bubble=False):
    """A column's model lacks some documents and the corpus is small: encode them here."""

    def __init__(self, model: str, searcher: Any) -> None:
        super().__init__()
        self.model = model
        self.searcher = searcher


class EncodeFinished(Message, bubble=False):
    def __init__(self, model: str, encoded: int = 0, seconds: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.encoded = encoded
        self.seconds = seconds


class PartialShown(Message, bubble=False):
    """A column searches part of the corpus while a job encodes the rest: watch for new chunks."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model


class _WorkerToken(CancelToken):
    """Cancelled when the thread worker is (model deselected, project changed, app closing)."""

    def __init__(self, worker: Worker[Any]) -> None:
        super().__init__()
        self.worker = worker

    def check(self) -> None:
        if self.worker.is_cancelled:
            self.cancel()
        super().check()


def _pct(job: Any) -> str:
    return f"{100 * job.progress:.0f}%"


def _eta(seconds: float | None) -> str:
    if not seconds:
        return ""
    s = int(seconds)
    return f" · eta {s // 60}m{s % 60:02d}s" if s >= 60 else f" · eta {s}s"


class LiveColumns:
    """Mixed into QueryPane: what a column does when its model has not cached every document.

    A job encoding the model (queued or running, in any process): search the chunks committed so
    far and say so, with the job's progress, and search again as chunks land. No job and at most
    ``on_demand_max_docs()`` documents missing: encode them in a thread worker of this app (progress
    in the column; deselecting the model stops it), then search. Otherwise: search what is cached,
    or say to evaluate it first."""

    def _live_init(self) -> None:
        self._encodes: dict[str, Worker[Any]] = {}
        self._partial: dict[str, Any] = {}  # model -> the job state last searched with
        self._partial_timer: Timer | None = None

    # -- in the search worker's thread ----------------------------------------------------------------
    def job_encoding(self, model: str) -> Any:
        """The queued or running job evaluating ``model`` on the current project, if any."""
        project = self.context.project  # type: ignore[attr-defined]
        for job in getattr(self.app, "jobs", ()):  # type: ignore[attr-defined]
            if job.model == model and job.project == project and job.state in ("queued", "running"):
                return job
        return None

    def partial_note(self, searcher: Any, model: str, seq: int) -> str | None:
        """For a searcher lacking some documents: the note for its column's status line when the
        cached part is to be searched now, or None when the column shows a state instead."""
        from embtui.api.live import on_demand_max_docs

        post = self.post_message  # type: ignore[attr-defined]
        state_msg = self.ModelState  # type: ignore[attr-defined]
        searcher.refresh()
        if searcher.complete:
            return ""
        have, total = searcher.cached_docs, searcher.total_docs
        job = self.job_encoding(model)
        if job is not None:
            post(PartialShown(model))
            what = f"job {job.id} {job.stage} {_pct(job)}"
            if not have:
                post(state_msg(model, seq, "waiting", f"no document encoded yet · {what}"))
                return None
            return f"searching {have:,} of {total:,} documents · {what}"
        missing = searcher.missing_docs
        if missing <= on_demand_max_docs():
            post(EncodeRequested(model, searcher))
            post(state_msg(model, seq, "encoding",
                           f"encoding {missing:,} of {total:,} documents on demand…"))
            return None
        if not have:
            post(state_msg(model, seq, "not evaluated",
                           f"model '{model}' has cached embeddings for 0 of {total:,} documents "
                           f"(more than the {on_demand_max_docs():,} encoded on demand): "
                           "evaluate it first: Jobs pane, key e"))
            return None
        return f"searching {have:,} of {total:,} documents (evaluate it for the rest: Jobs pane, e)"

    def encode_on_demand(self, searcher: Any, model: str) -> None:
        """Thread worker: encode the model's missing documents into the cache, progress in the column."""
        from embtui.errors import Cancelled, EmbtuiError

        worker = get_current_worker()
        post = self.post_message  # type: ignore[attr-defined]
        state_msg = self.ModelState  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        encoded = 0

        def progress(p: Any) -> None:
            if p.stage != "encode documents":
                return
            rate = f" · {p.rate:.0f} docs/s" if p.rate else ""
            post(state_msg(model, self.seq, "encoding",  # type: ignore[attr-defined]
                           f"encoding documents on demand: {p.done:,} of {p.total:,}{rate}"
                           f"{_eta(p.eta_s)} · space on the model in the sidebar stops it"))

        try:
            if not searcher.model_loaded:
                post(state_msg(model, self.seq, "encoding", "loading model to encode the documents…"))  # type: ignore[attr-defined]
            encoded = searcher.encode_documents(progress=progress, cancel=_WorkerToken(worker))
        except Cancelled:
            post(state_msg(model, self.seq, "stopped",  # type: ignore[attr-defined]
                           f"on-demand encode stopped at {searcher.cached_docs:,} of "
                           f"{searcher.total_docs:,} documents (kept in the cache)"))
            return
        except EmbtuiError as exc:
            post(state_msg(model, self.seq, "error", f"encoding on demand: {exc}"))  # type: ignore[attr-defined]
            return
        finally:
            post(EncodeFinished(model, encoded, time.perf_counter() - t0))

    # -- on the UI thread -------------------------------------------------------------------------------
    def on_encode_requested(self, message: EncodeRequested) -> None:
        running = self._encodes.get(message.model)
        if running is not None and not running.is_finished:
            return
        self._encodes[message.model] = self.run_worker(  # type: ignore[attr-defined]
            partial(self.encode_on_demand, message.searcher, message.model), thread=True,
            exclusive=True, group=f"encode-{message.model}", exit_on_error=False,
            description=f"encode documents with {message.model}")

    def on_encode_finished(self, message: EncodeFinished) -> None:
        worker = self._encodes.pop(message.model, None)
        if worker is not None and worker.is_cancelled:
            return
        if message.encoded:
            self.notify(f"{message.model}: encoded {message.encoded:,} documents in "  # type: ignore[attr-defined]
                        f"{message.seconds:.0f} s (cached: an evaluation reuses them)", timeout=4)
        column = self.column(message.model)  # type: ignore[attr-defined]
        if column is not None and column.state == "encoding":
            self.search_one(message.model)

    def stop_encode(self, model: str) -> None:
        """Stop an on-demand encode (after its current batch); committed chunks stay cached."""
        worker = self._encodes.pop(model, None)
        if worker is not None:
            worker.cancel()

    def on_partial_shown(self, message: PartialShown) -> None:
        self._partial.setdefault(message.model, _NEW)
        if self._partial_timer is None:
            self._partial_timer = self.set_interval(PARTIAL_REFRESH_S, self._refresh_partial)  # type: ignore[attr-defined]

    def _refresh_partial(self) -> None:
        """Search a partial column again when its job moved on (new chunks, new stage, finished)."""
        for model, last in list(self._partial.items()):
            column = self.column(model)  # type: ignore[attr-defined]
            job = self.job_encoding(model)
            if column is None or not column.shown_text.strip():
                self._partial.pop(model, None)
                continue
            now = None if job is None else (job.id, job.state, job.stage, job.done, job.progress)
            if now != last:
                self._partial[model] = now
                self.search_one(model)
            if job is None:  # finished: that search was the last one needed
                self._partial.pop(model, None)
        if not self._partial and self._partial_timer is not None:
            self._partial_timer.stop()
            self._partial_timer = None

    def search_one(self, model: str) -> None:
        """Search the current text again with one model (the others keep their results)."""
        text = self.text  # type: ignore[attr-defined]
        if not text.strip() or self.column(model) is None:  # type: ignore[attr-defined]
            return
        self.seq += 1  # type: ignore[attr-defined]
        searcher = self.searcher(model)  # type: ignore[attr-defined]
        self.run_worker(partial(self.search_model, searcher, model, text, self.seq),  # type: ignore[attr-defined]
                        thread=True, exclusive=True, group=f"live-{model}", exit_on_error=False,
                        description=f"search with {model}")
