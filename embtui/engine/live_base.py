"""The live searcher's base: what every kind of live search shares (corpus, tie order, hits) and
the registry that ``LiveSearcher(...)`` dispatches on by the retriever's kind. The kinds live in
engine/live.py (dense, bm25) and engine/live_pipeline.py (pipelines), which register themselves.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from embtui.engine.models import ModelSpec
from embtui.errors import EmbtuiError

if TYPE_CHECKING:  # pragma: no cover
    from embtui.engine.encode import Encoder
    from embtui.store import Corpus, Store

# Typed queries whose vectors are kept in memory (backspacing re-uses them).
_QUERY_MEMO = 256
# Missing documents a live query encodes on demand (in the app's process, through the embedding
# cache, so a later evaluation reuses them). The demo's 400 documents take ~11 s on a quiet 2-core
# CPU with all-MiniLM-L6-v2 (35 docs/s) and ~100 s with both cores busy (4 docs/s); 2,000 is about
# a minute on a quiet CPU and seconds on a GPU. Larger corpora are searched as far as cached and
# left to an evaluation job. ``$EMBTUI_LIVE_ENCODE_MAX_DOCS`` changes it (0: never).
ON_DEMAND_MAX_DOCS = 2000
# Texts per committed chunk when encoding on demand: small, so a stopped encode keeps most of it.
ON_DEMAND_CHUNK_TEXTS = 64


def on_demand_max_docs() -> int:
    """How many missing documents a live query may encode on demand (see ON_DEMAND_MAX_DOCS)."""
    try:
        return max(0, int(os.environ.get("EMBTUI_LIVE_ENCODE_MAX_DOCS", ON_DEMAND_MAX_DOCS)))
    except ValueError:
        return ON_DEMAND_MAX_DOCS


EVALUATION_DEPTH = 100  # the depth a default evaluation searches (its largest k)


LIVE_EAGER_MAX_DOCS = 200_000  # a live searcher holds the texts of corpora up to this size


@dataclass(frozen=True)
class Hit:
    """One ranked document for a query."""

    doc_id: str
    score: float
    title: str
    text: str
    rank: int


class NotEvaluated(EmbtuiError):
    """The model cannot search this project yet: not downloaded, or no document cached and too
    many to encode on demand (evaluate it first)."""


class LiveSearcher:
    """Top-k search over a project's documents with one model spec.

    ``prepare()`` loads the corpus and the document embeddings cached so far (no model needed) or,
    for ``bm25``, builds the lexical index; it raises :class:`NotEvaluated` only when the model has
    never been downloaded. While some documents are missing (``complete`` is False) searches rank
    the ``cached_docs`` of ``total_docs`` that are cached; ``refresh()`` picks up chunks committed
    since (by a job encoding the model), ``encode_documents()`` encodes the rest here. A query found in the query cache (every dataset query of an evaluated split) is
    searched without the model; any other text needs ``load_model()`` first (``search`` does it on
    demand; callers that want to show a "loading model..." state check ``needs_model(text)``).
    Ranking follows the evaluation: same metric, same tie rule (doc id descending).
    """

    def __new__(cls, store: "Store", project: str, spec: ModelSpec, **kwargs: Any) -> "LiveSearcher":
        """``LiveSearcher(...)`` makes the searcher of the spec's kind of retriever
        (:data:`LIVE_SEARCHERS`): dense vectors or BM25, with no branch on the kind below."""
        if cls is LiveSearcher:
            from embtui.engine.retrievers import retriever_for

            kind = retriever_for(spec).kind
            if kind not in LIVE_SEARCHERS:
                raise EmbtuiError(f"model '{spec.name}' ({kind}) has no live search yet",
                                  "evaluate it and browse its runs in the Metrics and Failures panes")
            cls = LIVE_SEARCHERS[kind]
        return super().__new__(cls)

    def __init__(self, store: "Store", project: str, spec: ModelSpec, *, device: str | None = None,
                 corpus: "Corpus | None" = None, torch_threads: int | None = None) -> None:
        """``torch_threads``: if set, ``torch.set_num_threads`` (process-wide) when the model loads.
        Interactive callers pass 1: one short query gains nothing from intra-op parallelism, and
        with every core spinning in OpenMP a query takes ~0.5 s instead of ~7 ms as soon as another
        process (an encode job) holds a core (measured on 2 cores, all-MiniLM-L6-v2)."""
        self.torch_threads = torch_threads
        self.store = store
        self.project = project
        self.spec = spec
        self.device = device or spec.device
        self._corpus = corpus
        self._prep_lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._prepared = False
        # (corpus rows of the vectors when only some are cached, else None; the vectors), swapped
        # in one assignment so a search in another thread never mixes two versions
        self._view: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
        self._chunks: tuple[int, ...] | None = None  # cache chunks the view was gathered from
        self._hashes: list[bytes] = []
        self._use_lock = threading.RLock()    # one encode at a time on the model (tokenizers)
        self.total_docs = 0
        self.cached_docs = 0
        self._ann: Any = None
        self._bm25: Any = None
        self._tie: np.ndarray | None = None
        self._encoder: "Encoder | None" = None
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._codes: tuple[np.ndarray, Any] | None = None  # (the vectors they were made of, QuantizedCorpus)
        self.metric = "cos" if not spec.normalize else "ip"  # as evaluate.py scores

    # -- loading ----------------------------------------------------------------------------
    @property
    def corpus(self) -> "Corpus":
        if self._corpus is None:
            # a large corpus stays in the store: the ids here, texts read when needed (a hit's
            # text by id, a window to hash or encode); a small one is held, so a query never waits
            # on the workspace database (e.g. while another process writes to it)
            corpus = self.store.corpus(self.project, lazy=True)
            if len(corpus) <= LIVE_EAGER_MAX_DOCS:
                corpus = self.store.corpus(self.project)
            self._corpus = corpus
        return self._corpus

    @property
    def prepared(self) -> bool:
        return self._prepared

    @property
    def complete(self) -> bool:
        """Every document of the corpus is searched."""
        return True

    @property
    def missing_docs(self) -> int:
        return 0

    @property
    def model_loaded(self) -> bool:
        return True

    def prepare(self) -> None:
        """Load the corpus and what the kind searches (cached vectors, a BM25 index). Idempotent."""
        with self._prep_lock:
            if self._prepared:
                return
            from embtui.engine.search import tie_order_for

            corpus = self.corpus
            if not len(corpus):
                raise EmbtuiError(f"project '{self.project}' has no documents")
            self._tie = tie_order_for(corpus.ids)
            self._load(corpus)
            self._prepared = True

    def _load(self, corpus: "Corpus") -> None:
        raise NotImplementedError

    def _rank(self, text: str, k: int) -> list[tuple[int, float]]:
        """(corpus row, score) of the top ``k`` for ``text``, best first."""
        raise NotImplementedError

    def refresh(self) -> bool:
        """Pick up what was added since ``prepare`` (True if more is searched now)."""
        return False

    def encode_documents(self, progress: Any = None, cancel: Any = None) -> int:
        """Make every document searchable here; returns how many were encoded."""
        self.prepare()
        return 0

    def needs_model(self, text: str) -> bool:
        """True when searching ``text`` would load a model first."""
        return False

    def load_model(self) -> None:
        self.prepare()

    def unload(self) -> None:
        pass

    def search(self, text: str, k: int = 10) -> list[Hit]:
        """The top ``k`` documents for ``text``, best first (empty for blank text)."""
        if not text.strip():
            return []
        self.prepare()
        corpus = self.corpus
        k = max(1, min(int(k), len(corpus)))
        ranked = self._rank(text, k)
        docs = corpus.documents_at([i for i, _ in ranked])
        return [Hit(corpus.ids[i], float(s), title, body, rank)
                for rank, ((i, s), (title, body)) in enumerate(zip(ranked, docs), 1)]

    def stage_rank(self, text: str, k: int) -> list[tuple[int, float]]:
        """(corpus row, score) of the top ``k`` as a pipeline stage sees them: what an evaluation
        run's retriever returns (``_rank`` may drop what a person need not see)."""
        self.prepare()
        return self._rank(text, max(1, min(int(k), len(self.corpus))))


LIVE_SEARCHERS: dict[str, type[LiveSearcher]] = {}
"""Retriever kind -> its live searcher; each kind's module registers itself."""
