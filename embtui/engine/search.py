"""Exact nearest-neighbour search: chunked top-k with the trec_eval tie rule, and the choice between
exact search and an HNSW index (embtui/engine/hnsw.py) for ``--index auto``."""

from __future__ import annotations


import numpy as np

from embtui.engine.progress import CancelToken, Meter, ProgressCallback
from embtui.errors import EmbtuiError

# Scores returned by every function here are "higher is better":
#   cos  -> cosine similarity (both sides normalised)
#   ip   -> inner product
#   l2sq -> minus the squared Euclidean distance
METRICS = ("cos", "ip", "l2sq")
DTYPES = ("f32", "f16", "i8")

# Crossover for ``--index auto`` (benchmarks/bench_search.py, recorded in BENCHMARKS.md: 2-core x86
# VM, d=384 normalised vectors, clustered synthetic data, k=10). Exact single-query latency grows
# ~0.075 us per doc (1.3 ms at 20k, 3.6 ms at 50k, 15 ms at 200k); HNSW stays under 1 ms. Rule:
# exact while one query fits a ~10 ms interactive budget (crossed at ~130k docs idle, earlier under
# load), so 100k. Above it an evaluation builds HNSW once, saves it beside the DB and every later run
# and the TUI's live queries reuse it; each ANN run reports its recall@10 against exact search.
# (For a one-off batch, exact scoring stays cheaper than an index build up to ~58k queries at any
# corpus size; pass --index exact for that.)
EXACT_MAX_DOCS: int = 100_000

# Query batches are sized so one [Q_batch, chunk] float32 score block stays under this many bytes.
_SCORE_BLOCK_BYTES = 64 * 1024 * 1024
# Extra HNSW candidates fetched so ties at the k-th score can be re-ordered by the tie rule.
_HNSW_EXTRA = 8


# --------------------------------------------------------------------------------------------------
# tie rule helpers


def tie_order_for(doc_ids: list[str]) -> np.ndarray:
    """Tie order for ``doc_ids``: each doc's rank in DESCENDING string order (0 = wins every tie).

    This is trec_eval's rule (score descending, then docno descending by ``strcmp``; Python's
    code-point order equals UTF-8 byte order), e.g. ``["9", "10", "2"]`` -> ``[0, 2, 1]``.
    """
    n = len(doc_ids)
    order = sorted(range(n), key=doc_ids.__getitem__, reverse=True)
    ranks = np.empty(n, dtype=np.int64)
    ranks[np.asarray(order, dtype=np.int64)] = np.arange(n, dtype=np.int64)
    return ranks


def _check_tie_order(tie_order: np.ndarray | None, n: int) -> np.ndarray:
    if tie_order is None:
        return np.arange(n, dtype=np.int64)
    tie = np.asarray(tie_order)
    if tie.shape != (n,):
        raise EmbtuiError(f"tie_order has shape {tie.shape}, expected ({n},)",
                          "compute it with tie_order_for(doc_ids) for the same documents")
    return tie.astype(np.int64, copy=False)


def _rank(scores: np.ndarray, ties: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by (score desc, tie asc) and keep the first ``k`` columns."""
    order = np.lexsort((ties, -scores), axis=-1)[:, :k]
    return (np.take_along_axis(idx, order, axis=1), np.take_along_axis(scores, order, axis=1))


def top_k_rows(scores: np.ndarray, k: int, tie_order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of each row of a dense score matrix [Q, N] ("higher is better") under the tie rule.

    For scorers that produce full score rows themselves (e.g. BM25). Returns
    ``(indices int64 [Q, min(k, N)], scores float32 [Q, min(k, N)])`` like :func:`exact_search`.
    """
    s = np.asarray(scores, dtype=np.float32)
    if s.ndim != 2:
        raise EmbtuiError(f"scores must be a 2-D [queries, docs] array, got shape {s.shape}")
    n = s.shape[1]
    k = max(0, min(int(k), n))
    ties = _check_tie_order(tie_order, n)
    if k == 0:
        return np.empty((s.shape[0], 0), dtype=np.int64), np.empty((s.shape[0], 0), dtype=np.float32)
    cols, sc = _chunk_topk(s, k, ties, 0)
    cols = cols.astype(np.int64)
    return _rank(sc, ties[cols], cols, k)


# --------------------------------------------------------------------------------------------------
# exact search


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise EmbtuiError(f"unknown metric '{metric}'", f"choose one of {', '.join(METRICS)}")


def _as_matrix(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise EmbtuiError(f"{what} must be a 2-D array of vectors, got shape {a.shape}")
    return a


def _row_norms(x: np.ndarray) -> np.ndarray:
    """Euclidean norms of float32 rows; zero rows get norm 1 so they score 0 instead of NaN."""
    n = np.sqrt(np.einsum("ij,ij->i", x, x))
    n[n == 0] = 1.0
    return n


def _chunk_topk(s: np.ndarray, k: int, ties: np.ndarray, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` column indices (into ``s``) per row of the score block ``s`` under the tie rule.

    argpartition picks k columns by score; rows where the k-th score is tied with columns that were
    left out are redone exactly, keeping the tied columns that win on ``ties``.
    Returns (column indices [rows, k], their scores) unsorted.
    """
    rows, c = s.shape
    if c <= k:
        cols = np.broadcast_to(np.arange(c), (rows, c)).copy()
        return cols, s.copy()
    cols = np.argpartition(s, c - k, axis=1)[:, c - k:]
    sel = np.take_along_axis(s, cols, axis=1)
    thr = sel.min(axis=1)
    n_eq_all = np.count_nonzero(s == thr[:, None], axis=1)
    n_eq_sel = np.count_nonzero(sel == thr[:, None], axis=1)
    for r in np.nonzero(n_eq_all > n_eq_sel)[0]:
        row = s[r]
        above = np.nonzero(row > thr[r])[0]
        eq = np.nonzero(row == thr[r])[0]
        eq = eq[np.argsort(ties[base + eq], kind="stable")][: k - len(above)]
        cols[r] = np.concatenate([above, eq])
        sel[r] = row[cols[r]]
    return cols, sel


class _RunningTopK:
    """Each query's best ``k`` so far under the tie rule (score descending, tie ascending), fed
    candidate (row, column, score) cells. Candidates wait in a buffer and are merged in one
    vectorised sort when it is full, so a merge is paid per ~``limit`` candidates, not per block.
    ``thr[q]``: the k-th best score merged so far (-inf while fewer than k): a cell scoring below
    it can never enter q's top k, since k cells already beat it on score; a cell equal to it enters
    only with a tie rank below ``kth_tie[q]``, the k-th's (else all k beat it on the tie order)."""

    def __init__(self, n_q: int, k: int, ties: np.ndarray, limit: int) -> None:
        self.k, self.ties, self.limit = k, ties, limit
        self.idx = np.full((n_q, k), -1, dtype=np.int64)
        self.sc = np.full((n_q, k), -np.inf, dtype=np.float32)
        self.thr = np.full(n_q, -np.inf, dtype=np.float32)
        self.kth_tie = np.full(n_q, np.iinfo(np.int64).max, dtype=np.int64)  # tie rank of the k-th
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending = 0

    def offer(self, rows: np.ndarray, cols: np.ndarray, scores: np.ndarray) -> None:
        if len(rows):
            self._parts.append((rows, cols, scores))
            self._pending += len(rows)
            if self._pending >= self.limit:
                self.merge()

    def merge(self) -> None:
        if not self._parts:
            return
        n_q, k = self.idx.shape
        rows = np.concatenate([p[0] for p in self._parts])
        cols = np.concatenate([p[1] for p in self._parts])
        scores = np.concatenate([p[2] for p in self._parts])
        self._parts, self._pending = [], 0
        # one padded row per query: its k current results, then its candidates
        order = np.argsort(rows, kind="stable")  # each part is row-sorted: a merge of sorted runs
        rows, cols, scores = rows[order], cols[order], scores[order]
        counts = np.bincount(rows, minlength=n_q)
        starts = np.cumsum(counts) - counts
        cap = max(4 * k, 1024)
        if counts.max() > cap:  # a row with very many (tied) candidates: alone, not as everyone's width
            for r in np.flatnonzero(counts > cap).tolist():
                seg = slice(int(starts[r]), int(starts[r] + counts[r]))
                r_idx = np.concatenate([self.idx[r], cols[seg]])[None, :]
                r_sc = np.concatenate([self.sc[r], scores[seg]])[None, :]
                best = _best_k(r_sc, r_idx, self.ties, k)[0]
                self.idx[r], self.sc[r] = r_idx[0, best], r_sc[0, best]
            light = counts[rows] <= cap
            rows, cols, scores = rows[light], cols[light], scores[light]
            counts = np.where(counts > cap, 0, counts)
            starts = np.cumsum(counts) - counts
        at = np.arange(len(rows), dtype=np.int64) - starts[rows] + k
        width = k + int(counts.max())
        m_idx = np.full((n_q, width), -1, dtype=np.int64)
        m_sc = np.full((n_q, width), -np.inf, dtype=np.float32)
        m_idx[:, :k] = self.idx
        m_sc[:, :k] = self.sc
        m_idx[rows, at] = cols
        m_sc[rows, at] = scores
        best = _best_k(m_sc, m_idx, self.ties, k)
        self.idx = np.take_along_axis(m_idx, best, axis=1)
        self.sc = np.take_along_axis(m_sc, best, axis=1)
        self.thr = self.sc[:, k - 1].copy()
        last = self.idx[:, k - 1]
        self.kth_tie = np.where(last >= 0, self.ties[np.maximum(last, 0)], np.iinfo(np.int64).max)


_TIE_BITS = 31


def _best_k(sc: np.ndarray, idx: np.ndarray, ties: np.ndarray, k: int) -> np.ndarray:
    """Column positions of each row's best ``k`` cells, in order: score descending, then tie
    ascending; empty cells (``idx`` -1, score -inf) last. One int64 key per cell (the float32
    score's order-preserving bits, then the tie rank) so one partition and one small sort suffice."""
    n = len(ties)
    if n >= 1 << _TIE_BITS:  # tie ranks too wide to pack beside the score: two-key sort
        tie = np.where(idx >= 0, ties[idx], np.iinfo(np.int64).max)
        return np.lexsort((tie, -sc), axis=-1)[:, :k]
    bits = (sc + np.float32(0.0)).view(np.int32).astype(np.int64)  # + 0: -0.0 becomes 0.0
    ordered = np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)  # float order as integer order
    tie = np.where(idx >= 0, ties[idx], n)  # empty cells lose every tie
    key = ((0x7FFFFFFF - ordered) << _TIE_BITS) | tie  # ascending key = the tie rule's order
    if key.shape[1] > k:
        part = np.argpartition(key, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(key, part, axis=1), axis=1)
        return np.take_along_axis(part, order, axis=1)
    return np.argsort(key, axis=1)


# Score block: the docs one matrix product covers for a query batch, sized so the block
# [queries, docs] float32 (written by BLAS, then read once by the threshold test) stays cache-sized.
_BLOCK_BYTES = 16 * 1024 * 1024
_MIN_BLOCK_DOCS = 512


def _cells(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the True cells of a 2-D mask (flatnonzero: far cheaper than 2-D nonzero
    when few cells are set)."""
    flat = np.flatnonzero(mask)
    return np.divmod(flat, mask.shape[1])


def _lower_bound_f32(x: np.ndarray) -> np.ndarray:
    """float32 values no larger than ``x`` (float64), a relative 1e-6 below: a safe threshold."""
    y = (x - 1e-6 * np.abs(x) - 1e-30).astype(np.float32)
    return np.nextafter(y, np.float32(-np.inf))


def exact_search(
    queries: np.ndarray,
    docs: np.ndarray,
    k: int,
    *,
    metric: str = "cos",
    tie_order: np.ndarray | None = None,
    chunk_size: int = 16384,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of ``docs`` for every query.

    ``docs`` may be a (read-only) ``np.memmap`` larger than RAM: it is read once, ``chunk_size`` rows at
    a time, while a running top-k is kept per query; queries are batched so a score block stays small.
    Inputs are never modified; float16 inputs are computed in float32.

    Returns ``(indices int64 [Q, min(k, N)], scores float32 [Q, min(k, N)])``, each row sorted by
    score descending, ties broken by ``tie_order`` ascending (row index ascending when None); the
    cut at k is exact under that rule. ``progress`` gets "search" events counting docs processed;
    ``cancel`` is checked once per chunk.

    How: each chunk is scored in cache-sized blocks by one BLAS matrix product per (query batch,
    block). Until a query has k results, a block's top k is picked with argpartition (ties at the
    cut resolved exactly); after that only cells scoring at least the query's current k-th score
    can enter, and one comparison over the block finds them (typically a few per query per
    block), so selection costs one pass over the scores instead of a partition. Candidates merge
    into the running top-k in batches. Scores are the same float32 values as one product over
    everything (cos: the dot product times the document's inverse norm, as before).
    """
    _check_metric(metric)
    queries = _as_matrix(queries, "queries")
    docs = _as_matrix(docs, "docs")
    if queries.shape[1] != docs.shape[1]:
        raise EmbtuiError(f"query vectors have {queries.shape[1]} dimensions but documents have {docs.shape[1]}",
                          "encode queries and documents with the same model")
    if chunk_size < 1:
        raise EmbtuiError(f"chunk_size must be positive, got {chunk_size}")
    n_q, n = queries.shape[0], docs.shape[0]
    k = max(0, min(int(k), n))
    ties = _check_tie_order(tie_order, n)

    meter = Meter("search", n, progress)
    if k == 0 or n_q == 0:
        meter.finish()
        return np.full((n_q, k), -1, dtype=np.int64), np.full((n_q, k), -np.inf, dtype=np.float32)

    q = np.ascontiguousarray(queries, dtype=np.float32)
    if metric == "cos":
        q = q / _row_norms(q)[:, None]
    q_sq = np.einsum("ij,ij->i", q, q) if metric == "l2sq" else None
    chunk = min(chunk_size, n)
    q_batch = max(1, min(n_q, _SCORE_BLOCK_BYTES // (4 * min(chunk, 16384))))
    block = max(_MIN_BLOCK_DOCS, _BLOCK_BYTES // (4 * q_batch))
    top = _RunningTopK(n_q, k, ties, limit=min(max(n_q * k, 1 << 14), 1 << 22))

    for start in range(0, n, chunk):
        if cancel is not None:
            cancel.check()
        stop = min(start + chunk, n)
        xc = np.asarray(docs[start:stop], dtype=np.float32)  # view for float32, copy for float16
        inv_c = 1.0 / _row_norms(xc) if metric == "cos" else None
        x_sq_c = np.einsum("ij,ij->i", xc, xc) if metric == "l2sq" else None
        for bs in range(0, stop - start, block):
            be = min(bs + block, stop - start)
            x = xc[bs:be]
            base = start + bs
            inv = None
            if inv_c is not None:
                inv = inv_c[bs:be]
                if not (inv != 1.0).any():  # unit-norm documents: the product is the score
                    inv = None
            for qs in range(0, n_q, q_batch):
                qe = min(qs + q_batch, n_q)
                s = q[qs:qe] @ x.T
                if metric == "l2sq":
                    s *= 2.0
                    s -= x_sq_c[None, bs:be]
                    s -= q_sq[qs:qe, None]
                    np.minimum(s, 0.0, out=s)  # a squared distance is never negative
                thr = top.thr[qs:qe]
                if np.isneginf(thr).any():  # some query has fewer than k: partition this block
                    if inv is not None:
                        s *= inv[None, :]
                    cols, sc = _chunk_topk(s, k, ties, base)
                    rows = np.repeat(np.arange(qs, qe, dtype=np.int64), cols.shape[1])
                    top.offer(rows, cols.ravel().astype(np.int64) + base, sc.ravel())
                    top.merge()
                    continue
                if inv is None:
                    r, c = _cells(s >= thr[:, None])
                    cand = s[r, c]
                else:
                    # the score is the product times inv: test the raw product against a bound
                    # below every threshold / inv, then compute the candidates' exact scores
                    t64 = thr.astype(np.float64)
                    lo = np.minimum(t64 / float(inv.max()), t64 / float(inv.min()))
                    r, c = _cells(s >= _lower_bound_f32(lo)[:, None])
                    cand = s[r, c] * inv[c]
                    keep = cand >= thr[r]
                    r, c, cand = r[keep], c[keep], cand[keep]
                c = c.astype(np.int64) + base
                r += qs
                eq = cand == top.thr[r]
                if eq.any():  # equal to the k-th score: only a better tie rank than the k-th's enters
                    keep = ~eq | (ties[c] < top.kth_tie[r])
                    r, c, cand = r[keep], c[keep], cand[keep]
                top.offer(r, c, cand)
        meter.update(stop)
    top.merge()
    meter.finish()
    return top.idx, top.sc


# --------------------------------------------------------------------------------------------------
# index choice


def choose_index(n_docs: int) -> str:
    """``"exact"`` up to :data:`EXACT_MAX_DOCS` documents, else ``"hnsw"`` (for ``--index auto``)."""
    return "exact" if int(n_docs) <= EXACT_MAX_DOCS else "hnsw"
