"""Cheaper embeddings, searched exactly: int8 (per-dimension ranges calibrated on the corpus) and
binary codes made with sentence-transformers' ``quantize_embeddings`` from the cached float32
vectors (nothing is encoded again), with optional rescoring as ``semantic_search_usearch`` does it:
take ``depth × rescore`` candidates by the cheap score, then rescore them with the float query
against the candidates' dequantised int8 values (or their 0/1 bits), and keep ``depth``.

Cheap scores are integers and tie often (a hamming distance, an int8 dot product); every ranking
here follows trec_eval's rule like the rest of embtui (score descending, then document id
descending, through ``tie_order``). The scoring is written here, not taken from
``semantic_search_usearch``, because that returns ties in index order and searches one USearch
index in memory; this works in document blocks with bounded memory and the shared tie rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embtui.engine.progress import CancelToken, Meter, ProgressCallback
from embtui.engine.search import top_k_rows
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
    scores = np.empty(cand.shape, dtype=np.float32)
    step = max(1, (64 << 20) // max(1, cand.shape[1] * qc.dim * 4))
    for s in range(0, len(q), step):
        vecs = dequantize(qc, cand[s:s + step])  # [rows, m*k, dim]
        scores[s:s + step] = np.einsum("qd,qkd->qk", q[s:s + step], vecs)
    order = np.lexsort((tie_order[cand], -scores), axis=-1)[:, :k]
    return np.take_along_axis(cand, order, axis=1), np.take_along_axis(scores, order, axis=1)
