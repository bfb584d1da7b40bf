"""The built-in lexical baseline: BM25 (bm25s) with English stopwords and a Snowball stemmer."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from embtui.engine.progress import CancelToken, Meter, ProgressCallback

DEFAULTS: dict[str, Any] = {"k1": 1.5, "b": 0.75, "method": "lucene", "stopwords": "en",
                            "stemmer": "english"}


class BM25Retriever:
    """A BM25 index over a corpus; scores every document for each query so ranking is exact."""

    def __init__(self, texts: Sequence[str], params: dict[str, Any] | None = None,
                 progress: ProgressCallback | None = None) -> None:
        import bm25s
        import Stemmer

        self.params = {**DEFAULTS, **(params or {})}
        self.stemmer = Stemmer.Stemmer(self.params["stemmer"]) if self.params["stemmer"] else None
        meter = Meter("index bm25", len(texts), progress)
        tokens = bm25s.tokenize(list(texts), stopwords=self.params["stopwords"], stemmer=self.stemmer,
                                show_progress=False)
        self.index = bm25s.BM25(k1=self.params["k1"], b=self.params["b"], method=self.params["method"])
        self.index.index(tokens, show_progress=False)
        meter.finish()
        self.n_docs = len(texts)

    @property
    def nbytes(self) -> int:
        """Bytes of the index's score matrix (CSC data, indices, pointers): its memory per corpus."""
        return int(sum(getattr(v, "nbytes", 0) for v in self.index.scores.values()))

    def scores(self, query: str) -> np.ndarray:
        import bm25s

        tokens = bm25s.tokenize([query], stopwords=self.params["stopwords"], stemmer=self.stemmer,
                                return_ids=False, show_progress=False)[0]
        if not tokens:
            return np.zeros(self.n_docs, dtype=np.float32)
        return np.asarray(self.index.get_scores(tokens), dtype=np.float32)

    def search(self, queries: Sequence[str], k: int, tie_order: np.ndarray, *,
               progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
               ) -> tuple[np.ndarray, np.ndarray]:
        """(indices [Q, k], scores [Q, k]) ordered by score, ties by ``tie_order`` (lower wins)."""
        from embtui.engine.search import top_k_rows

        k = min(k, self.n_docs)
        idx = np.empty((len(queries), k), dtype=np.int64)
        sc = np.empty((len(queries), k), dtype=np.float32)
        meter = Meter("search bm25", len(queries), progress)
        for qi, q in enumerate(queries):
            if cancel is not None:
                cancel.check()
            i, s = top_k_rows(self.scores(q)[None, :], k, tie_order)
            idx[qi], sc[qi] = i[0], s[0]
            meter.update(qi + 1)
        meter.finish()
        return idx, sc
