"""The built-in lexical baseline: BM25 (bm25s) with English stopwords and a Snowball stemmer.

The index is built here, in batches, rather than by ``bm25s.tokenize`` + ``BM25.index``: those
keep every document as a Python list of token ids (about 60 bytes a token) and count terms one
document at a time, so their time and memory grew faster than the corpus. Here each batch of
texts is analysed exactly as ``bm25s.tokenize`` does (lowercase, the ``(?u)\\b\\w\\w+\\b`` split,
English stopwords dropped, each new word stemmed once by PyStemmer), its (document, term) counts
are taken with numpy, and only those counts are kept (12 bytes a distinct term per document).
The scores are then computed with bm25s's own idf and term-frequency functions and stored as the
same CSC matrix in a ``bm25s.BM25``, so every score is bit-identical to the one-shot build and
queries go through bm25s unchanged.
"""

from __future__ import annotations

import re
from itertools import chain
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from embtui.engine.progress import CancelToken, Meter, ProgressCallback

DEFAULTS: dict[str, Any] = {"k1": 1.5, "b": 0.75, "method": "lucene", "stopwords": "en",
                            "stemmer": "english"}
# Texts analysed at a time: bounds the Python strings alive at once (~100 MB for 20k abstracts).
BATCH_TEXTS = 20_000
_TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # bm25s.tokenize's default, as the queries are split


def batched(texts: Sequence[str], size: int | None = None) -> Iterator[Sequence[str]]:
    size = size or BATCH_TEXTS
    for start in range(0, len(texts), size):
        yield texts[start:start + size]


def corpus_batches(corpus: Any, size: int | None = None) -> Iterator[list[str]]:
    """A ``store.Corpus``'s encode texts (title + " " + text, trimmed) a slice at a time."""
    size = size or BATCH_TEXTS
    for start in range(0, len(corpus), size):
        yield corpus.encode_texts(start, start + size)


class _Words(dict):
    """word -> stem id (-1 for a stopword); a word met for the first time is stemmed then."""

    def __init__(self, stopwords: Any, stemmer: Any) -> None:
        super().__init__((w, -1) for w in stopwords)
        self.stem = stemmer.stemWord if stemmer is not None else (lambda w: w)
        self.stem_ids: dict[str, int] = {}

    def __missing__(self, word: str) -> int:
        stem = self.stem(word)
        sid = self.stem_ids.get(stem)
        if sid is None:
            sid = self.stem_ids[stem] = len(self.stem_ids)
        self[word] = sid
        return sid


class _Analyzer:
    """bm25s.tokenize's analysis, incremental: lowercase, split, stopwords out, each word stemmed
    once (bm25s too stems each distinct word once, so the stems are the same)."""

    def __init__(self, stopwords: Any, stemmer: Any) -> None:
        from bm25s.tokenization import _infer_stopwords

        self.split = re.compile(_TOKEN_PATTERN).findall
        self.words = _Words(_infer_stopwords(stopwords), stemmer)
        self.stem_ids = self.words.stem_ids

    def analyse(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(term id per kept token, the batch-local document of each, kept tokens per document)."""
        split = self.split
        tokens = [split(t.lower()) for t in texts]
        counts = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        flat = list(chain.from_iterable(tokens))
        del tokens
        ids = np.fromiter(map(self.words.__getitem__, flat), dtype=np.int64, count=len(flat))
        del flat
        doc = np.repeat(np.arange(len(texts), dtype=np.int64), counts)
        keep = ids >= 0
        ids, doc = ids[keep], doc[keep]
        lengths = np.bincount(doc, minlength=len(texts)).astype(np.int64)
        return ids, doc, lengths


class BM25Retriever:
    """A BM25 index over a corpus; scores every document for each query so ranking is exact.

    ``texts`` is the corpus in order; or pass ``batches`` (an iterable of text sequences, e.g.
    read from the store a slice at a time) with ``total`` documents, so the whole corpus never
    needs to be one list of strings.
    """

    def __init__(self, texts: Sequence[str] | None = None, params: dict[str, Any] | None = None,
                 progress: ProgressCallback | None = None, *,
                 batches: Iterable[Sequence[str]] | None = None, total: int | None = None,
                 cancel: CancelToken | None = None) -> None:
        import bm25s
        import Stemmer

        if (texts is None) == (batches is None):
            raise TypeError("give texts or batches")
        if texts is not None:
            total = len(texts)
            batches = batched(texts)
        self.params = {**DEFAULTS, **(params or {})}
        self.stemmer = Stemmer.Stemmer(self.params["stemmer"]) if self.params["stemmer"] else None
        self.index = bm25s.BM25(k1=self.params["k1"], b=self.params["b"], method=self.params["method"])
        meter = Meter("index bm25", total or 0, progress)
        analyzer = _Analyzer(self.params["stopwords"], self.stemmer)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # per batch: doc, term, tf
        lengths: list[np.ndarray] = []
        df = np.zeros(0, dtype=np.int64)  # documents holding each term, grown with the vocabulary
        n_docs = 0
        for batch in batches:  # type: ignore[union-attr]
            if cancel is not None:
                cancel.check()
            ids, doc, lens = analyzer.analyse(batch)
            pairs, tf = np.unique((doc << 32) | ids, return_counts=True)  # by document, then term
            del ids, doc
            term = (pairs & 0xFFFFFFFF).astype(np.int32)
            parts.append((((pairs >> 32) + n_docs).astype(np.int32), term, tf.astype(np.int32)))
            del pairs, tf
            counts = np.bincount(term, minlength=len(analyzer.stem_ids))
            counts[:len(df)] += df
            df = counts
            lengths.append(lens)
            n_docs += len(batch)
            meter.update(n_docs)
        self.n_docs = n_docs
        self.index.scores, self.index.vocab_dict = self._scores(
            parts, df, np.concatenate(lengths) if lengths else np.zeros(0, np.int64),
            analyzer.stem_ids)
        self.index.unique_token_ids_set = set(self.index.vocab_dict.values())
        meter.finish()

    def _scores(self, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], df: np.ndarray,
                lengths: np.ndarray, vocab: dict[str, int]) -> tuple[dict[str, Any], dict[str, int]]:
        """bm25s's ``build_index_from_ids`` on counts: the same functions, the same CSC layout.

        ``parts`` (per batch, in document order: document, term, count, sorted by document) is
        consumed batch by batch, each written straight to its place in the CSC arrays.
        """
        from bm25s import scoring

        idx = self.index
        n_docs, n_vocab = len(lengths), len(vocab)
        avg_doc_len = lengths.mean() if n_docs else np.float64("nan")  # as bm25s: an int64 mean
        doc_frequencies = dict(zip(range(n_vocab), df.tolist()))
        idf_fn = scoring._select_idf_scorer(idx.idf_method)
        tfc_fn = scoring._select_tfc_scorer(idx.method)
        nonocc = None
        if idx.method in idx.methods_requiring_nonoccurrence:
            nonocc = scoring._build_nonoccurrence_array(
                doc_frequencies=doc_frequencies, n_docs=n_docs, compute_idf_fn=idf_fn,
                calculate_tfc_fn=tfc_fn, l_d=avg_doc_len, l_avg=avg_doc_len, k1=idx.k1, b=idx.b,
                delta=idx.delta, dtype=idx.dtype)
        idx.nonoccurrence_array = nonocc
        idf = scoring._build_idf_array(doc_frequencies=doc_frequencies, n_docs=n_docs,
                                       compute_idf_fn=idf_fn, dtype=idx.dtype)
        del doc_frequencies
        indptr = np.zeros(n_vocab + 1, dtype=np.int64)
        np.cumsum(df, out=indptr[1:])
        nnz = int(indptr[-1])
        data = np.empty(nnz, dtype=idx.dtype)
        indices = np.empty(nnz, dtype=np.int32)
        heads = indptr[:-1].copy()  # next free slot of each column
        while parts:
            doc, term, tf = parts.pop(0)
            # bm25s per document: tf as float32, the document length as a Python int
            tfc = tfc_fn(tf_array=tf.astype(idx.dtype), l_d=lengths[doc], l_avg=avg_doc_len,
                         k1=idx.k1, b=idx.b, delta=idx.delta)
            s = idf[term] * tfc
            if nonocc is not None:
                s -= nonocc[term]
            del tfc, tf
            # a stable sort by term keeps each column's documents ascending, as bm25s's CSC
            order = np.argsort(term, kind="stable")
            t = term[order]
            rank = np.arange(len(t)) - np.searchsorted(t, t, side="left")
            pos = heads[t] + rank
            data[pos] = s[order]
            indices[pos] = doc[order]
            heads += np.bincount(term, minlength=n_vocab)
            del doc, term, s, order, t, rank, pos
        vocab = dict(vocab)
        if "" not in vocab:  # bm25s's create_empty_token
            vocab[""] = max(vocab.values(), default=-1) + 1
        return {"data": data, "indices": indices, "indptr": indptr, "num_docs": n_docs}, vocab

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
