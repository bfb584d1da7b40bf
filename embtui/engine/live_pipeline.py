"""Live search through a pipeline: each first stage's own live searcher (dense vectors from the
cache, BM25), the pipeline's fusion over their candidates at the depth an evaluation uses, then its
rerankers — a bi-encoder scores the candidates with its cached (or, if missing, encoded) document
vectors, a cross-encoder scores (query, document) pairs — so a typed dataset query ranks as the
pipeline's run did. Registers itself as the live searcher of the ``pipeline`` kind."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from embtui.analysis.fusion import rrf, weighted_sum
from embtui.engine.live_base import EVALUATION_DEPTH, LIVE_SEARCHERS, LiveSearcher
from embtui.engine.models import ModelSpec
from embtui.engine.pipelines import Pipeline

if TYPE_CHECKING:
    from embtui.store import Corpus


class PipelineLiveSearcher(LiveSearcher):
    """Stages are prepared with the pipeline; a cross-encoder loads on the first query."""

    def _load(self, corpus: "Corpus") -> None:
        assert self.spec.pipeline is not None
        self._pipe = Pipeline.from_dict(self.spec.pipeline)

        def sub(d: dict[str, Any]) -> LiveSearcher:
            s = LiveSearcher(self.store, self.project, ModelSpec.from_dict(d), device=self.device, corpus=corpus,
                             torch_threads=self.torch_threads)
            s.prepare()
            return s

        self._firsts = [sub(d) for d in self._pipe.retrieve]
        self._rerankers = [(stage, sub(stage.model) if stage.kind == "bi-encoder" else None)
                           for stage in self._pipe.rerank]
        self._cross: dict[int, Any] = {}
        self._cross_lock = threading.Lock()

    def _subs(self) -> list[LiveSearcher]:
        return [*self._firsts, *(s for _, s in self._rerankers if s is not None)]

    @property
    def complete(self) -> bool:
        return self._prepared and all(s.complete for s in self._firsts)

    @property
    def missing_docs(self) -> int:
        return max((s.missing_docs for s in self._firsts), default=0) if self._prepared else 0

    @property
    def model_loaded(self) -> bool:
        return self._prepared and all(s.model_loaded for s in self._subs()) and \
            len(self._cross) == sum(1 for _, s in self._rerankers if s is None)

    def refresh(self) -> bool:
        return self._prepared and any([s.refresh() for s in self._firsts])

    def encode_documents(self, progress: Any = None, cancel: Any = None) -> int:
        self.prepare()
        return sum(s.encode_documents(progress, cancel) for s in self._firsts)

    def needs_model(self, text: str) -> bool:
        self.prepare()
        return any(s.needs_model(text) for s in self._subs()) or not self.model_loaded

    def load_model(self) -> None:
        self.prepare()
        for s in self._subs():
            s.load_model()
        for j, (stage, s) in enumerate(self._rerankers):
            if s is None:
                self._cross_encoder(j, stage)

    def unload(self) -> None:
        for s in self._subs() if self._prepared else []:
            s.unload()
        self._cross.clear()

    def _cross_encoder(self, j: int, stage: Any) -> Any:
        with self._cross_lock:
            if j not in self._cross:
                from embtui.engine.loading import cross_encoder

                self._cross[j] = cross_encoder(ModelSpec.from_dict(stage.model), self.device)[0]
            return self._cross[j]

    # -- ranking -------------------------------------------------------------------------------
    def _rank(self, text: str, k: int) -> list[tuple[int, float]]:
        p, n = self._pipe, len(self.corpus)
        depth = min(p.first_depth(max(k, EVALUATION_DEPTH)), n)
        parts = [s.stage_rank(text, depth) for s in self._firsts]
        rows = parts[0]
        if p.fuse is not None:
            ids = self.corpus.ids
            rankings = [{"q": [(ids[i], s) for i, s in part if i >= 0]} for part in parts]
            keep = max(depth, min(EVALUATION_DEPTH, n))
            fused = (rrf(rankings, k=p.rrf_k, depth=keep) if p.fuse == "rrf"
                     else weighted_sum(rankings, p.weights, depth=keep))["q"]
            index_of = {d: i for i, d in enumerate(ids)}
            rows = [(index_of[d], float(np.float32(s))) for d, s in fused]
        for j, (stage, searcher) in enumerate(self._rerankers):
            rows = self._rerank(text, rows[:stage.depth], stage, j, searcher)
        return rows[:k]

    def _rerank(self, text: str, rows: list[tuple[int, float]], stage: Any, j: int,
                searcher: LiveSearcher | None) -> list[tuple[int, float]]:
        if not rows:
            return rows
        cand = np.array([i for i, _ in rows], dtype=np.int64)
        texts = self.corpus.texts_at(cand.tolist())  # the candidates' only, in cand's order
        if searcher is None:  # a cross-encoder
            model = self._cross_encoder(j, stage)
            scores = np.asarray(model.predict([(text, t) for t in texts], show_progress_bar=False),
                                dtype=np.float32).reshape(-1)
        else:
            q = np.asarray(searcher.encode_query(text), dtype=np.float32)  # type: ignore[attr-defined]
            encoder = searcher._encoder  # type: ignore[attr-defined]
            with searcher._use_lock:
                docs, _ = encoder.encode(texts, "document")
            docs = np.asarray(docs, dtype=np.float32)
            if not searcher.spec.normalize:  # as the pipeline retriever: both sides normalised
                q = q / max(float(np.linalg.norm(q)), 1e-12)
                docs = docs / np.maximum(np.linalg.norm(docs, axis=1, keepdims=True), 1e-12)
            scores = (docs @ q).astype(np.float32)
        assert self._tie is not None
        order = np.lexsort((self._tie[cand], -scores))
        return [(int(cand[o]), float(scores[o])) for o in order]


LIVE_SEARCHERS["pipeline"] = PipelineLiveSearcher
