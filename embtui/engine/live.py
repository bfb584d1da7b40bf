"""Interactive search for one model on one project: cached document vectors (all or the chunks
committed so far), on-demand encoding of a small corpus, lazy model, top-k hits.

UI-free and thread-safe: the TUI calls it from thread workers, a script can call it directly.
Nothing here imports torch until a typed query that is not in the embedding cache needs encoding,
or the missing documents are encoded on demand.
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


QUANTIZED_LIVE_DEPTH = 100  # the depth a default evaluation searches (its largest k)


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
            self._corpus = self.store.corpus(self.project)
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
        return [Hit(corpus.ids[i], float(s), corpus.titles[i], corpus.texts[i], rank)
                for rank, (i, s) in enumerate(self._rank(text, k), 1)]


class LexicalLiveSearcher(LiveSearcher):
    """BM25 over the corpus texts, built on ``prepare`` (about a second for SciFact); no model."""

    def _load(self, corpus: "Corpus") -> None:
        from embtui.engine.bm25 import BM25Retriever

        self._bm25 = BM25Retriever(corpus.encode_texts(), self.spec.bm25)

    def _rank(self, text: str, k: int) -> list[tuple[int, float]]:
        idx, scores = self._bm25.search([text], k, self._tie)
        return [(i, s) for i, s in zip(idx[0].tolist(), scores[0].tolist()) if s > 0]


class DenseLiveSearcher(LiveSearcher):
    """A sentence-transformers model's cached document vectors (all, or the chunks committed so
    far), searched exactly or with the HNSW index the latest evaluation saved."""

    @property
    def complete(self) -> bool:
        return self._prepared and self.cached_docs >= self.total_docs

    @property
    def missing_docs(self) -> int:
        return max(0, self.total_docs - self.cached_docs)

    @property
    def model_loaded(self) -> bool:
        return self._encoder is not None and self._encoder.loaded

    def _load(self, corpus: "Corpus") -> None:
        from embtui.engine.cache import hash_texts
        from embtui.engine.encode import Encoder

        encoder = Encoder(self.spec, self.store.ws.cache_dir, store=self.store, device=self.device)
        if encoder.fingerprint is None:
            raise NotEvaluated(f"model '{self.spec.name}' has not been downloaded or evaluated yet",
                               "evaluate it first: Jobs pane, key e")
        self._encoder = encoder
        self._hashes = hash_texts(corpus.encode_texts())
        self.total_docs = len(corpus)
        self._gather()

    def _gather(self) -> bool:
        """(Re)read the cached document vectors; True when more documents are searched than before."""
        assert self._encoder is not None
        cache = self._encoder.cache("document")
        chunks = tuple(cache.chunk_ids())
        if chunks == self._chunks:
            return False
        index = cache.index()
        present = np.fromiter((h in index for h in self._hashes), dtype=bool, count=len(self._hashes))
        have = int(present.sum())
        if self._chunks is not None and have <= self.cached_docs:
            self._chunks = chunks
            return False
        if have == len(self._hashes):
            docs, rows = cache.gather(self._hashes), None
        else:
            rows = np.nonzero(present)[0]
            docs = cache.gather([self._hashes[i] for i in rows]) if have else None
        if docs is not None:  # the run's view of the vectors: truncated (and its codes, lazily)
            from embtui.engine.encode import truncate

            docs = truncate(docs, self.spec)
        if rows is None and docs is not None and self.spec.quantize is None:
            self._ann = self._saved_index(len(self._hashes), int(docs.shape[1]))
        self._codes = None
        self._view = (rows, docs)
        self._chunks, self.cached_docs = chunks, have
        return True

    def refresh(self) -> bool:
        """Pick up document chunks committed since (a job encoding this model); True if grown."""
        if not self._prepared or self.complete:
            return False
        with self._prep_lock:
            return self._gather()

    def encode_documents(self, progress: Any = None, cancel: Any = None) -> int:
        """Encode the documents not cached yet, here (slow: call from a thread), committing them to
        the embedding cache in small chunks, then search them all. Returns how many were encoded.

        ``cancel`` (a CancelToken) stops it between batches with ``Cancelled``; the chunks already
        committed stay cached and are searched."""
        self.prepare()
        if self.complete:
            return 0
        self.load_model()
        assert self._encoder is not None
        corpus = self.corpus
        with self._use_lock:
            chunk = self._encoder.chunk_texts
            self._encoder.chunk_texts = min(chunk, ON_DEMAND_CHUNK_TEXTS)
            try:
                _, stats = self._encoder.encode(corpus.encode_texts(), "document", progress=progress,
                                                cancel=cancel)
            finally:
                self._encoder.chunk_texts = chunk
                with self._prep_lock:
                    self._gather()
        return stats.encoded

    def _saved_index(self, n_docs: int, dim: int) -> Any:
        """The HNSW index the latest evaluation saved, for corpora too big for exact search."""
        from embtui.engine.hnsw import HnswConfig, HnswIndex
        from embtui.engine.search import EXACT_MAX_DOCS

        if n_docs <= EXACT_MAX_DOCS:
            return None
        for run in reversed(self.store.list_runs(self.project, status="done")):
            cfg = run.index_config
            if run.model_name != self.spec.name or cfg.get("kind") != "hnsw" or not cfg.get("path"):
                continue
            path = self.store.ws.abs(cfg["path"])
            if path.exists():
                try:
                    return HnswIndex.load(path, HnswConfig.from_dict(cfg.get("hnsw") or {}), dim,
                                          view=True)
                except EmbtuiError:
                    return None
        return None

    def needs_model(self, text: str) -> bool:
        """True when searching ``text`` would load the model first (it is not cached or loaded)."""
        if self.model_loaded or text in self._memo:
            return False
        return self._cached_query(text) is None

    def load_model(self) -> None:
        """Load the model (torch, weights) for encoding typed queries. Slow; call from a thread."""
        self.prepare()
        with self._model_lock:
            assert self._encoder is not None
            if self.torch_threads and not self._encoder.loaded:
                import torch

                torch.set_num_threads(self.torch_threads)
            self._encoder.model()

    def unload(self) -> None:
        if self._encoder is not None:
            self._encoder.unload()

    # -- searching ----------------------------------------------------------------------------
    def _cached_query(self, text: str) -> np.ndarray | None:
        from embtui.engine.cache import text_hash

        if self._encoder is None:
            return None
        cache = self._encoder.cache("query")
        h = text_hash(text)
        if h not in cache.index():
            return None
        from embtui.engine.encode import truncate

        return truncate(cache.gather([h]), self.spec)[0]

    def encode_query(self, text: str) -> np.ndarray:
        """The query vector: from memory, from the query cache, else from the model."""
        self.prepare()
        if text in self._memo:
            self._memo.move_to_end(text)
            return self._memo[text]
        vec = self._cached_query(text)
        if vec is None:
            self.load_model()
            assert self._encoder is not None
            model = self._encoder.model()
            prompt, prompt_name = self.spec.prompt_for("query")
            with self._use_lock:
                out = model.encode([text], prompt=prompt, prompt_name=prompt_name,
                                   convert_to_numpy=True, normalize_embeddings=self.spec.normalize,
                                   show_progress_bar=False)
            from embtui.engine.encode import truncate

            vec = truncate(np.asarray(out, dtype=np.float32), self.spec)[0]
        self._memo[text] = vec
        while len(self._memo) > _QUERY_MEMO:
            self._memo.popitem(last=False)
        return vec

    def _unit(self, x: np.ndarray) -> np.ndarray:
        """As the dense retriever quantises: unit vectors (already so when the spec normalises)."""
        if self.spec.normalize:
            return x
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    def _rank(self, text: str, k: int) -> list[tuple[int, float]]:
        rows, docs = self._view
        if docs is None or not len(docs):
            return []
        q = self.encode_query(text)[None, :]
        if self.spec.quantize is not None:  # the run's int8/binary codes (and rescoring)
            from embtui.engine.quantized import quantize_corpus, quantized_search

            codes = self._codes
            if codes is None or codes[0] is not docs:
                codes = self._codes = (docs, quantize_corpus(self._unit(docs), self.spec.quantize))
            tie = self._tie if rows is None else self._tie[rows]
            # rescoring takes depth x multiplier candidates: search the depth an evaluation does,
            # so a live query ranks as the run did, then keep k
            depth = min(max(k, QUANTIZED_LIVE_DEPTH), len(docs))
            idx, scores = quantized_search(self._unit(q), codes[1], depth, rescore=self.spec.rescore,
                                           tie_order=tie)
            idx, scores = idx[:, :k], scores[:, :k]
            if rows is not None:
                idx = np.where(idx >= 0, rows[np.clip(idx, 0, None)], -1)
        elif self._ann is not None and rows is None:
            idx, scores = self._ann.search(q, k, tie_order=self._tie)
        else:
            from embtui.engine.search import exact_search

            tie = self._tie if rows is None else self._tie[rows]
            idx, scores = exact_search(q, docs, min(k, len(docs)), metric=self.metric, tie_order=tie)
            if rows is not None:  # rows of the cached part -> rows of the corpus
                idx = np.where(idx >= 0, rows[np.clip(idx, 0, None)], -1)
        return [(i, s) for i, s in zip(idx[0].tolist(), scores[0].tolist()) if i >= 0]


LIVE_SEARCHERS: dict[str, type[LiveSearcher]] = {"dense": DenseLiveSearcher, "bm25": LexicalLiveSearcher}
"""The live searcher of each retriever kind (engine/retrievers/); a new kind adds its own."""
