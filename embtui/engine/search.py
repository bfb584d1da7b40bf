"""Nearest-neighbour search: exact chunked top-k, usearch HNSW indexes, recall and the trec_eval tie rule."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from embtui.engine.progress import CancelToken, Meter, ProgressCallback
from embtui.errors import EmbtuiError

if TYPE_CHECKING:  # pragma: no cover
    from usearch.index import Index

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

    out_idx = np.full((n_q, k), -1, dtype=np.int64)
    out_sc = np.full((n_q, k), -np.inf, dtype=np.float32)
    out_tie = np.full((n_q, k), np.iinfo(np.int64).max, dtype=np.int64)
    meter = Meter("search", n, progress)
    if k == 0 or n_q == 0:
        meter.finish()
        return out_idx, out_sc

    q = np.ascontiguousarray(queries, dtype=np.float32)
    if metric == "cos":
        q = q / _row_norms(q)[:, None]
    q_sq = np.einsum("ij,ij->i", q, q) if metric == "l2sq" else None
    chunk = min(chunk_size, n)
    q_batch = max(1, min(n_q, _SCORE_BLOCK_BYTES // (4 * chunk)))

    for start in range(0, n, chunk):
        if cancel is not None:
            cancel.check()
        stop = min(start + chunk, n)
        x = np.asarray(docs[start:stop], dtype=np.float32)  # view for float32, copy for float16
        inv = 1.0 / _row_norms(x) if metric == "cos" else None
        x_sq = np.einsum("ij,ij->i", x, x) if metric == "l2sq" else None
        for qs in range(0, n_q, q_batch):
            qe = min(qs + q_batch, n_q)
            s = q[qs:qe] @ x.T
            if metric == "cos":
                s *= inv[None, :]
            elif metric == "l2sq":
                s *= 2.0
                s -= x_sq[None, :]
                s -= q_sq[qs:qe, None]
                np.minimum(s, 0.0, out=s)  # a squared distance is never negative
            cols, sc = _chunk_topk(s, k, ties, start)
            idx = cols.astype(np.int64) + start
            merged_idx = np.concatenate([out_idx[qs:qe], idx], axis=1)
            merged_sc = np.concatenate([out_sc[qs:qe], sc], axis=1)
            merged_tie = np.concatenate([out_tie[qs:qe], ties[idx]], axis=1)
            order = np.lexsort((merged_tie, -merged_sc), axis=-1)[:, :k]
            out_idx[qs:qe] = np.take_along_axis(merged_idx, order, axis=1)
            out_sc[qs:qe] = np.take_along_axis(merged_sc, order, axis=1)
            out_tie[qs:qe] = np.take_along_axis(merged_tie, order, axis=1)
        meter.update(stop)
    meter.finish()
    return out_idx, out_sc


# --------------------------------------------------------------------------------------------------
# HNSW (usearch)


@dataclass(frozen=True)
class HnswConfig:
    """usearch HNSW settings. ``dtype`` is the stored scalar kind: f32 | f16 | i8 (i8 needs metric cos)."""

    metric: str = "cos"
    dtype: str = "f32"
    connectivity: int = 32  # M; 16 needs expansion_search >= 384 for recall@10 >= 0.98 at 200k docs
    expansion_add: int = 128
    expansion_search: int = 128  # recall@10 0.993 at 200k docs, d=384, with connectivity 32

    def __post_init__(self) -> None:
        _check_metric(self.metric)
        if self.dtype not in DTYPES:
            raise EmbtuiError(f"unknown index dtype '{self.dtype}'", f"choose one of {', '.join(DTYPES)}")
        if self.dtype == "i8" and self.metric != "cos":
            # usearch quantises i8 vectors to the unit sphere, so ip/l2sq would silently become cosine
            # with distances in integer units.
            raise EmbtuiError(f"index dtype i8 only supports metric cos, not {self.metric}",
                              "use dtype f16, or metric cos")
        for name in ("connectivity", "expansion_add", "expansion_search"):
            if int(getattr(self, name)) < 1:
                raise EmbtuiError(f"HNSW {name} must be positive, got {getattr(self, name)}")
        if int(self.connectivity) < 2:  # usearch refuses 1 ("the index degenerates into ropes")
            raise EmbtuiError(f"HNSW connectivity must be at least 2, got {self.connectivity}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "HnswConfig":
        known = {f: d[f] for f in cls.__dataclass_fields__ if f in d}
        return cls(**known)


def _new_usearch(config: HnswConfig, ndim: int) -> "Index":
    from usearch.index import Index

    return Index(ndim=int(ndim), metric=config.metric, dtype=config.dtype,
                 connectivity=int(config.connectivity), expansion_add=int(config.expansion_add),
                 expansion_search=int(config.expansion_search))


DETERMINISTIC_BUILD_MAX = 20_000
"""HNSW builds of up to this many documents run on one thread: same vectors, same graph."""


class HnswIndex:
    """An approximate (HNSW) index over doc rows; keys are row indices 0..N-1."""

    def __init__(self, index: "Index", config: HnswConfig, ndim: int) -> None:
        self._index = index
        self.config = config
        self.ndim = int(ndim)

    @classmethod
    def build(cls, docs: np.ndarray, config: HnswConfig, *, progress: ProgressCallback | None = None,
              cancel: CancelToken | None = None, batch: int = 8192) -> "HnswIndex":
        """Build from ``docs`` [N, d] in batches of ``batch`` rows (progress stage "index", cancel per batch).

        Up to ``DETERMINISTIC_BUILD_MAX`` rows the graph is built on one thread, so the same
        vectors always give the same graph and the same metrics (a rebuilt or repaired index
        scores exactly as the one it replaces; USearch's multi-threaded insertion order varies
        from build to build, which moved recall@100 by 0.01 on the demo). Larger corpora use
        every core. ``docs`` may be float16 or a memmap; it is not modified.
        """
        docs = _as_matrix(docs, "docs")
        n, d = docs.shape
        if batch < 1:
            raise EmbtuiError(f"batch must be positive, got {batch}")
        index = _new_usearch(config, d)
        threads = 1 if n <= DETERMINISTIC_BUILD_MAX else 0
        meter = Meter("index", n, progress)
        for start in range(0, n, batch):
            if cancel is not None:
                cancel.check()
            stop = min(start + batch, n)
            x = np.ascontiguousarray(docs[start:stop], dtype=np.float32)
            index.add(np.arange(start, stop, dtype=np.uint64), x, threads=threads)
            meter.update(stop)
        meter.finish()
        return cls(index, config, d)

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically with a checksum record: to ``path + ".tmp"``, fsync, record, rename.

        The record (``<path>.check.json``: size and CRC-32, see engine/integrity.py) is written
        before the index is renamed into place, so a saved index always has its record. A failed
        save (a full disk) removes the temp file and the new record and re-raises.
        """
        from embtui.engine.integrity import fsync_dir, sidecar_path, write_file_record

        path = os.fspath(path)
        tmp = path + ".tmp"
        record_written = False
        try:
            self._index.save(tmp)
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            write_file_record(tmp, sync_dir=False)
            os.replace(sidecar_path(tmp), sidecar_path(path))
            record_written = True
            os.replace(tmp, path)
        except BaseException:
            for p in (tmp, os.fspath(sidecar_path(tmp))) + ((os.fspath(sidecar_path(path)),)
                                                            if record_written else ()):
                if os.path.exists(p):
                    os.unlink(p)
            raise
        fsync_dir(Path(os.path.dirname(os.path.abspath(path))))

    @classmethod
    def load(cls, path: str | os.PathLike, config: HnswConfig, ndim: int, view: bool = False) -> "HnswIndex":
        """Load a saved index (``view=True`` memory-maps it read-only instead of reading it in).

        The file is first checked against its checksum record (``<path>.check.json``). Raises
        EmbtuiError if the file is missing, damaged or truncated, or was built with another metric,
        dtype or dimension. An index saved before checksums existed (no record) that loads is
        given its record then, so later damage is seen.
        """
        from usearch.index import Index

        from embtui.engine.integrity import read_json, sidecar_path, verify_file, write_file_record

        path = os.fspath(path)
        hint = "rebuild the index"
        if not os.path.exists(path):
            raise EmbtuiError(f"index file not found: {path}", hint)
        record = read_json(sidecar_path(path))
        if record is not None:
            why = verify_file(path, record)
            if why:
                raise EmbtuiError(f"index file {path} is {why}", hint)
        try:
            meta = Index.metadata(path)
        except Exception as exc:  # usearch raises RuntimeError on unreadable files
            raise EmbtuiError(f"cannot read index file {path}: {exc}", hint) from exc
        if not meta:
            raise EmbtuiError(f"cannot read index file {path}", hint)
        index = _new_usearch(config, ndim)
        if int(meta["dimensions"]) != int(ndim):
            raise EmbtuiError(f"index {path} has {meta['dimensions']} dimensions, expected {ndim}", hint)
        built = (str(meta["kind_metric"].name).lower(), str(meta["kind_scalar"].name).lower())
        if built != (config.metric, config.dtype):
            raise EmbtuiError(f"index {path} was built with metric {built[0]}, dtype {built[1]}; "
                              f"expected {config.metric}, {config.dtype}", hint)
        try:
            if view:
                index.view(path)
            else:
                index.load(path)
        except Exception as exc:
            raise EmbtuiError(f"cannot read index file {path}: {exc}", hint) from exc
        if record is None:
            try:
                write_file_record(path)
            except OSError:
                pass  # a read-only workspace: checked again next time
        index.expansion_search = int(config.expansion_search)
        return cls(index, config, ndim)

    def search(self, queries: np.ndarray, k: int, *, tie_order: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-``k`` per query; same return convention as :func:`exact_search`.

        Shapes are [Q, min(k, len(self))]. Scores are "higher is better": cos -> 1 - usearch cosine
        distance; ip -> 1 - usearch "ip" distance (usearch defines it as 1 - dot, so this is the dot
        product); l2sq -> -squared distance. ``k + 8`` candidates are fetched and re-ranked by the
        tie rule before cutting to k, so boundary ties are resolved as well as the ANN recall allows.
        A row for which the graph search found fewer than min(k, N) neighbours is padded with
        index -1 and score -inf (rare; only for tiny or degenerate indexes).
        """
        queries = _as_matrix(queries, "queries")
        if queries.shape[1] != self.ndim:
            raise EmbtuiError(f"query vectors have {queries.shape[1]} dimensions but the index has {self.ndim}",
                              "encode queries with the model the index was built for")
        n = len(self)
        n_q = queries.shape[0]
        k = max(0, min(int(k), n))
        if k == 0 or n_q == 0:
            return np.full((n_q, k), -1, dtype=np.int64), np.full((n_q, k), -np.inf, dtype=np.float32)
        ties_all = _check_tie_order(tie_order, n)
        fetch = min(k + _HNSW_EXTRA, n)
        q = np.ascontiguousarray(queries, dtype=np.float32)
        res = self._index.search(q, fetch, threads=0)
        if hasattr(res, "counts"):  # BatchMatches: fixed width, sentinels past each row's count
            keys = np.asarray(res.keys).reshape(n_q, -1)[:, :fetch]
            dist = np.asarray(res.distances, dtype=np.float32).reshape(n_q, -1)[:, :fetch]
            counts = np.asarray(res.counts).reshape(n_q)
        else:  # a single query comes back as Matches holding only the valid results
            m = len(res.keys)
            keys = np.zeros((1, fetch), dtype=np.uint64)
            dist = np.zeros((1, fetch), dtype=np.float32)
            keys[0, :m] = res.keys
            dist[0, :m] = res.distances
            counts = np.array([m])
        valid = np.arange(keys.shape[1])[None, :] < counts[:, None]
        idx = np.where(valid, keys.astype(np.int64), -1)
        if self.config.metric == "l2sq":
            scores = -dist
        else:
            scores = 1.0 - dist
        scores = np.where(valid, scores, -np.inf).astype(np.float32)
        ties = np.where(valid, ties_all[np.clip(idx, 0, n - 1)], np.iinfo(np.int64).max)
        return _rank(scores, ties, idx, k)

    def __len__(self) -> int:
        return len(self._index)

    @property
    def nbytes(self) -> int:
        """Serialised size in bytes (the file size on disk; about the resident size once loaded)."""
        return int(self._index.serialized_length)


# --------------------------------------------------------------------------------------------------
# evaluation helpers and index choice


def recall_at_k(approx: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean over queries of |approx[:k] ∩ exact[:k]| / min(k, valid exact count). -1 entries are padding.

    Queries with no valid exact result are skipped; 1.0 if every query is skipped.
    """
    approx = np.asarray(approx)
    exact = np.asarray(exact)
    if approx.shape[0] != exact.shape[0]:
        raise EmbtuiError(f"recall_at_k: {approx.shape[0]} approximate rows vs {exact.shape[0]} exact rows")
    total, counted = 0.0, 0
    for a_row, e_row in zip(approx[:, :k], exact[:, :k]):
        e = set(int(x) for x in e_row if x >= 0)
        if not e:
            continue
        a = set(int(x) for x in a_row if x >= 0)
        total += len(a & e) / min(k, len(e))
        counted += 1
    return 1.0 if counted == 0 else total / counted


def choose_index(n_docs: int) -> str:
    """``"exact"`` up to :data:`EXACT_MAX_DOCS` documents, else ``"hnsw"`` (for ``--index auto``)."""
    return "exact" if int(n_docs) <= EXACT_MAX_DOCS else "hnsw"
