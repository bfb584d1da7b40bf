"""Interactive search for one model on one project: cached document vectors (all or the chunks
committed so far), on-demand encoding of a small corpus, lazy model, top-k hits; BM25; pipelines
(engine/live_pipeline.py) — all through ``LiveSearcher(store, project, spec)``.

UI-free and thread-safe: the TUI calls it from thread workers, a script can call it directly.
Nothing here imports torch until a typed query that is not in the embedding cache needs encoding,
or the missing documents are encoded on demand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from embtui.engine.live_base import (EVALUATION_DEPTH, LIVE_SEARCHERS, ON_DEMAND_CHUNK_TEXTS, _QUERY_MEMO, Hit,
                                     LiveSearcher, NotEvaluated, on_demand_max_docs)
from embtui.errors import EmbtuiError

if TYPE_CHECKING:
    from embtui.store import Corpus

__all__ = ["Hit", "LIVE_SEARCHERS", "LiveSearcher", "NotEvaluated", "on_demand_max_docs"]


class LexicalLiveSearcher(LiveSearcher):
    """BM25 over the corpus texts, built on ``prepare`` (about a second for SciFact); no model."""

    def _load(self, corpus: "Corpus") -> None:
        from embtui.engine.bm25 import BM25Retriever, corpus_batches

        self._bm25 = BM25Retriever(batches=corpus_batches(corpus), total=len(corpus), params=self.spec.bm25)

    def _rank(self, text: str, k: int) -> list[tuple[int, float]]:
        return [(i, s) for i, s in self.stage_rank(text, k) if s > 0]  # no zero-score hits to look at

    def stage_rank(self, text: str, k: int) -> list[tuple[int, float]]:
        self.prepare()
        idx, scores = self._bm25.search([text], k, self._tie)
        return list(zip(idx[0].tolist(), scores[0].tolist()))


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
        from embtui.engine.encode import Encoder, corpus_text_hashes

        encoder = Encoder(self.spec, self.store.ws.cache_dir, store=self.store, device=self.device)
        if encoder.fingerprint is None:
            raise NotEvaluated(f"model '{self.spec.name}' has not been downloaded or evaluated yet",
                               "evaluate it first: Jobs pane, key e")
        self._encoder = encoder
        self._hashes = corpus_text_hashes(corpus)
        self.total_docs = len(corpus)
        self._gather()

    def _gather(self) -> bool:
        """(Re)read the cached document vectors; True when more documents are searched than before."""
        assert self._encoder is not None
        cache = self._encoder.cache("document")
        chunks = tuple(cache.chunk_ids())
        if chunks == self._chunks:
            return False
        present = cache.index().locate(self._hashes)[0] >= 0
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
                _, stats = self._encoder.encode(corpus, "document", progress=progress,
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
            depth = min(max(k, EVALUATION_DEPTH), len(docs))
            idx, scores = quantized_search(self._unit(q), codes[1], depth, rescore=self.spec.rescore,
                                           tie_order=tie)
            idx, scores = idx[:, :k], scores[:, :k]
            if rows is not None:
                idx = np.where(idx >= 0, rows[np.clip(idx, 0, None)], -1)
        elif self._ann is not None and rows is None:
            # a rescored graph search ranks rescore x depth candidates: search the evaluation's depth
            depth = min(max(k, EVALUATION_DEPTH), len(docs)) if self._ann.config.rescore > 1 else k
            idx, scores = self._ann.search(q, depth, tie_order=self._tie, docs=docs)
            idx, scores = idx[:, :k], scores[:, :k]
        else:
            from embtui.engine.search import exact_search

            tie = self._tie if rows is None else self._tie[rows]
            idx, scores = exact_search(q, docs, min(k, len(docs)), metric=self.metric, tie_order=tie)
            if rows is not None:  # rows of the cached part -> rows of the corpus
                idx = np.where(idx >= 0, rows[np.clip(idx, 0, None)], -1)
        return [(i, s) for i, s in zip(idx[0].tolist(), scores[0].tolist()) if i >= 0]


LIVE_SEARCHERS.update(dense=DenseLiveSearcher, bm25=LexicalLiveSearcher)

import embtui.engine.live_pipeline  # noqa: E402,F401  (registers the pipeline kind)
"""The live searcher of each retriever kind (engine/retrievers/); a new kind adds its own."""
