"""Cheaper embeddings, searched exactly or through a USearch HNSW index over the codes: int8 (per-dimension ranges calibrated on the corpus) and
binary codes made with sentence-transformers' ``quantize_embeddings`` from the cached float32
vectors (nothing is encoded again), with optional rescoring as ``semantic_search_usearch`` does it:
take ``depth × rescore`` candidates by the cheap score, then rescore them with the float query
against the candidates' dequantised int8 values (or their 0/1 bits), and keep ``depth``.

Cheap scores are integers and tie often (a hamming distance, an int8 dot product); every ranking
here follows trec_eval's rule like the rest of embtui (score descending, then document id
descending, through ``tie_order``). The scoring is written here, not taken from
``semantic_search_usearch``, because that returns ties in index order and searches one USearch
index in memory; this works in document blocks with bounded memory and the shared tie rule.

:class:`CodeIndex` is the approximate way: an HNSW graph built by USearch on the codes themselves,
int8 codes as ``dtype="i8"`` with ``metric="ip"`` (USearch's i8 inner product is the exact integer
dot product, distance ``1 - dot``, so its scores are the exact path's cheap scores) and binary codes
as ``dtype="b1"``, ``metric="hamming"`` on the packed bits (score ``dim - 2 * hamming``, as here).
It is saved with a checksum record like the float32 HNSW index (engine/hnsw.py) and a damaged file
is never searched. Rescoring is the same as the exact path's, on the candidates the graph found.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embtui.engine.hnsw import HnswConfig, HnswIndex, _load_verified, add_in_batches
from embtui.engine.progress import CancelToken, Meter, ProgressCallback
from embtui.engine.search import _HNSW_EXTRA, top_k_rows
from embtui.errors import EmbtuiError

QUANTIZATIONS = ("int8", "binary")
_BLOCK_BYTES = 64 * 1024 * 1024  # one [queries, block] float32 score block stays under this


def bytes_per_doc(dim: int, quantize: str | None, cache_dtype: str = "float32") -> int:
    """Bytes one document's vector takes when stored and searched this way."""
    if quantize == "int8":
        return dim
    if quantize == "binary":
        return (dim + 7) // 8
    return dim * (2 if cache_dtype == "float16" else 4)


@dataclass(frozen=True)
class QuantizedCorpus:
    """The corpus codes and what is needed to score queries against them."""

    precision: str
    codes: np.ndarray  # int8 [N, dim] or int8 packed bits [N, ceil(dim / 8)] (quantize_embeddings' "binary")
    dim: int
    ranges: np.ndarray | None  # int8: [2, dim] min/max per dimension, from the corpus

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes)


def quantize_corpus(doc_vecs: np.ndarray, precision: str) -> QuantizedCorpus:
    """Quantise the float32 document vectors; int8 ranges are calibrated on these same vectors."""
    from sentence_transformers.util.quantization import quantize_embeddings

    if precision not in QUANTIZATIONS:
        raise EmbtuiError(f"unknown quantization '{precision}'", f"use one of {', '.join(QUANTIZATIONS)}")
    docs = np.asarray(doc_vecs, dtype=np.float32)
    ranges = None
    if precision == "int8":
        ranges = np.vstack((docs.min(axis=0), docs.max(axis=0))).astype(np.float32)
    codes = quantize_embeddings(docs, precision=precision, ranges=ranges)
    return QuantizedCorpus(precision, np.ascontiguousarray(codes), int(docs.shape[1]), ranges)


def _query_codes(qc: QuantizedCorpus, queries: np.ndarray) -> np.ndarray:
    from sentence_transformers.util.quantization import quantize_embeddings

    return quantize_embeddings(np.asarray(queries, dtype=np.float32), precision=qc.precision, ranges=qc.ranges)


def _signs(packed: np.ndarray, dim: int) -> np.ndarray:
    """quantize_embeddings' "binary" rows (packed bits minus 128) as ±1 float32 [rows, dim]."""
    bits = np.unpackbits((packed.astype(np.int16) + 128).astype(np.uint8), axis=-1)[:, :dim]
    return bits.astype(np.float32) * 2 - 1


def _cheap_scores(qc: QuantizedCorpus, q_codes: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Integer-valued scores (as float32, exact: |values| < 2**24) of every query against
    documents ``start:stop``: the int8 dot product, or for binary ``dim - 2 * hamming`` (the dot
    product of the ±1 vectors, so higher is closer)."""
    if qc.precision == "int8":
        return (q_codes.astype(np.float32) @ qc.codes[start:stop].astype(np.float32).T)
    return _signs(q_codes, qc.dim) @ _signs(qc.codes[start:stop], qc.dim).T


def dequantize(qc: QuantizedCorpus, rows: np.ndarray) -> np.ndarray:
    """What a rescoring multiplies the float query with: int8 codes mapped back into the corpus's
    ranges (as sentence-transformers does), or the 0/1 bits of binary codes."""
    if qc.precision == "binary":
        return np.unpackbits((qc.codes[rows].astype(np.int16) + 128).astype(np.uint8), axis=-1)[..., :qc.dim] \
            .astype(np.float32)
    assert qc.ranges is not None
    steps = (qc.ranges[1] - qc.ranges[0]) / 255
    steps = np.where(steps == 0, 1, steps)
    return ((qc.codes[rows].astype(np.float64) + 128) * steps + qc.ranges[0]).astype(np.float32)


def quantized_search(queries: np.ndarray, qc: QuantizedCorpus, k: int, *, rescore: int = 1,
                     tie_order: np.ndarray | None = None, progress: ProgressCallback | None = None,
                     cancel: CancelToken | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` documents per query (indices int64 [Q, k], scores float32 [Q, k]; -1 pads).

    ``rescore`` 1: ranked by the cheap score. ``rescore`` m > 1: the top ``k * m`` by the cheap
    score, rescored with the float query, the best ``k`` kept (their scores are the rescored ones).
    """
    if isinstance(rescore, bool) or not isinstance(rescore, int) or rescore < 1:
        raise EmbtuiError(f"rescore multiplier must be a whole number >= 1, not {rescore!r}")
    cancel = cancel or CancelToken()
    q = np.asarray(queries, dtype=np.float32)
    n = len(qc.codes)
    if tie_order is None:
        tie_order = np.arange(n, dtype=np.int64)
    first_k = min(k * rescore if rescore > 1 else k, n)
    q_codes = _query_codes(qc, q)
    # one block's [Q, block] scores and its [block, dim] unpacked documents stay under _BLOCK_BYTES
    block = max(1, min(65536, _BLOCK_BYTES // (4 * max(len(q), qc.dim, 1))))
    meter = Meter("search", n, progress)
    best_idx = np.full((len(q), 0), -1, dtype=np.int64)
    best_sc = np.full((len(q), 0), -np.inf, dtype=np.float32)
    for start in range(0, n, block):
        cancel.check()
        stop = min(start + block, n)
        scores = _cheap_scores(qc, q_codes, start, stop)
        idx_b, sc_b = top_k_rows(scores, min(first_k, stop - start), tie_order[start:stop])
        idx_b = idx_b + start
        merged_idx = np.concatenate([best_idx, idx_b], axis=1)
        merged_sc = np.concatenate([best_sc, sc_b], axis=1)
        order = np.lexsort((tie_order[merged_idx], -merged_sc), axis=-1)[:, :first_k]
        best_idx = np.take_along_axis(merged_idx, order, axis=1)
        best_sc = np.take_along_axis(merged_sc, order, axis=1)
        meter.update(stop)
    meter.finish()
    if rescore == 1:
        return best_idx[:, :k], best_sc[:, :k]
    return _rescore(q, qc, best_idx, k, tie_order)


def _rescore(q: np.ndarray, qc: QuantizedCorpus, cand: np.ndarray, k: int,
             tie_order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The candidates (-1 pads stay last) rescored with the float query, the best ``k`` kept."""
    valid = cand >= 0
    rows = np.where(valid, cand, 0)
    scores = np.empty(cand.shape, dtype=np.float32)
    step = max(1, (64 << 20) // max(1, cand.shape[1] * qc.dim * 4))
    for s in range(0, len(q), step):
        vecs = dequantize(qc, rows[s:s + step])  # [rows, m*k, dim]
        scores[s:s + step] = np.einsum("qd,qkd->qk", q[s:s + step], vecs)
    scores = np.where(valid, scores, -np.inf).astype(np.float32)
    ties = np.where(valid, tie_order[rows], np.iinfo(np.int64).max)
    order = np.lexsort((ties, -scores), axis=-1)[:, :k]
    return np.take_along_axis(cand, order, axis=1), np.take_along_axis(scores, order, axis=1)


# --------------------------------------------------------------------------------------------------
# HNSW over the codes (USearch i8 / b1)

CODE_INDEX = {"int8": ("ip", "i8"), "binary": ("hamming", "b1")}
"""precision -> (USearch metric, USearch scalar kind) of the index over its codes."""


def _usearch_rows(precision: str, codes: np.ndarray) -> np.ndarray:
    """Codes as USearch takes them: int8 rows as they are, binary rows as packed uint8 bits."""
    if precision == "binary":
        return np.ascontiguousarray((codes.astype(np.int16) + 128).astype(np.uint8))
    return np.ascontiguousarray(codes, dtype=np.int8)


def _code_ndim(precision: str, codes_width: int) -> int:
    return codes_width * 8 if precision == "binary" else codes_width


class CodeIndex(HnswIndex):
    """An HNSW index (USearch) over int8 codes (``i8``, inner product) or packed binary codes
    (``b1``, hamming); keys are row indices 0..N-1. Only the graph settings of ``config`` are used
    (connectivity, expansion_add, expansion_search); metric and scalar kind follow the precision."""

    def __init__(self, index: "object", config: HnswConfig, ndim: int, precision: str, dim: int) -> None:
        super().__init__(index, config, ndim)  # type: ignore[arg-type]
        self.precision = precision
        self.dim = int(dim)  # the vectors' dimension (binary: the bits that are not padding)

    @staticmethod
    def _new(config: HnswConfig, precision: str, ndim: int) -> "object":
        from usearch.index import Index

        if precision not in CODE_INDEX:
            raise EmbtuiError(f"unknown quantization '{precision}'", f"use one of {', '.join(QUANTIZATIONS)}")
        metric, dtype = CODE_INDEX[precision]
        return Index(ndim=int(ndim), metric=metric, dtype=dtype, connectivity=int(config.connectivity),
                     expansion_add=int(config.expansion_add), expansion_search=int(config.expansion_search))

    @classmethod
    def build_codes(cls, qc: QuantizedCorpus, config: HnswConfig, *, progress: ProgressCallback | None = None,
                    cancel: CancelToken | None = None, batch: int = 8192) -> "CodeIndex":
        """Build over ``qc``'s codes in batches (progress stage "index", cancel per batch); one
        thread up to DETERMINISTIC_BUILD_MAX rows, so the same codes give the same graph."""
        rows = _usearch_rows(qc.precision, qc.codes)
        ndim = _code_ndim(qc.precision, rows.shape[1])
        index = cls._new(config, qc.precision, ndim)
        add_in_batches(index, rows, batch, progress=progress, cancel=cancel)
        return cls(index, config, ndim, qc.precision, qc.dim)

    @classmethod
    def load_codes(cls, path: "str | object", config: HnswConfig, qc: QuantizedCorpus) -> "CodeIndex":
        """Load a saved code index, verified (checksum record, metric, scalar kind, dimensions) and
        holding one entry per code row; EmbtuiError otherwise (the caller rebuilds it)."""
        ndim = _code_ndim(qc.precision, qc.codes.shape[1])
        metric, dtype = CODE_INDEX[qc.precision]
        index = _load_verified(path, cls._new(config, qc.precision, ndim), metric, dtype, ndim)  # type: ignore[arg-type]
        if len(index) != len(qc.codes):
            raise EmbtuiError(f"index file {path} holds {len(index)} documents, expected {len(qc.codes)}",
                              "rebuild the index")
        index.expansion_search = int(config.expansion_search)
        return cls(index, config, ndim, qc.precision, qc.dim)

    def search_codes(self, qc: QuantizedCorpus, queries: np.ndarray, k: int, *, rescore: int = 1,
                     tie_order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-``k`` (same convention as :func:`quantized_search`): the graph's
        ``k * rescore`` best by the cheap score (``+ 8`` fetched, ranked by the tie rule, cut), then
        with ``rescore`` > 1 rescored with the float queries exactly as the exact path does."""
        if isinstance(rescore, bool) or not isinstance(rescore, int) or rescore < 1:
            raise EmbtuiError(f"rescore multiplier must be a whole number >= 1, not {rescore!r}")
        q = np.asarray(queries, dtype=np.float32)
        n, n_q = len(self), len(q)
        tie = np.arange(n, dtype=np.int64) if tie_order is None else np.asarray(tie_order)
        first_k = min(k * rescore if rescore > 1 else k, n)
        if first_k == 0 or n_q == 0:
            return np.full((n_q, 0), -1, dtype=np.int64), np.full((n_q, 0), -np.inf, dtype=np.float32)
        fetch = min(first_k + _HNSW_EXTRA, n)
        res = self._index.search(_usearch_rows(qc.precision, _query_codes(qc, q)), fetch, threads=0)
        keys = np.asarray(res.keys).reshape(n_q, -1)[:, :fetch]
        counts = np.asarray(res.counts).reshape(n_q) if hasattr(res, "counts") else np.array([len(res.keys)])
        valid = np.arange(keys.shape[1])[None, :] < counts[:, None]
        with np.errstate(invalid="ignore"):  # the slots past a row's count hold sentinels
            dist = np.where(valid, np.asarray(res.distances).reshape(n_q, -1)[:, :fetch], 0).astype(np.float64)
        idx = np.where(valid, keys.astype(np.int64), -1)
        # the cheap scores, integers: the int8 dot product (USearch's ip distance is 1 - dot) or
        # dim - 2 * hamming (the dot product of the ±1 vectors)
        cheap = (1.0 - dist) if self.precision == "int8" else (self.dim - 2.0 * dist)
        scores = np.where(valid, np.rint(cheap), -np.inf).astype(np.float32)
        ties = np.where(valid, tie[np.clip(idx, 0, n - 1)], np.iinfo(np.int64).max)
        order = np.lexsort((ties, -scores), axis=-1)[:, :first_k]
        best_idx = np.take_along_axis(idx, order, axis=1)
        best_sc = np.take_along_axis(scores, order, axis=1)
        if rescore == 1:
            return best_idx[:, :k], best_sc[:, :k]
        return _rescore(q, qc, best_idx, k, tie)
