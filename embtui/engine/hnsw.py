"""HNSW indexes (usearch): build with progress and cancel, save atomically with a checksum sidecar,
load verified (damage is reported, never searched), search with the trec_eval tie rule at the k-th
score, and recall@k against exact search."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from embtui.engine.progress import CancelToken, Meter, ProgressCallback
from embtui.engine.search import _HNSW_EXTRA, DTYPES, _as_matrix, _check_metric, _check_tie_order, _rank
from embtui.errors import EmbtuiError

if TYPE_CHECKING:  # pragma: no cover
    from usearch.index import Index


# --------------------------------------------------------------------------------------------------
# HNSW (usearch)


@dataclass(frozen=True)
class HnswConfig:
    """usearch HNSW settings. ``dtype`` is the stored scalar kind: f32 | f16 | i8 (i8 needs metric cos).

    ``rescore`` (search time only): fetch ``rescore × k`` candidates from the graph and order them
    by their exact score against the float32 document vectors. With i8 and ×2 this reaches FAISS
    HNSW-Flat's recall@10 at its query cost, where the f32 graph takes about 2.5× as long
    (BENCHMARKS.md, "USearch HNSW vs FAISS HNSW"); without rescoring i8 stops near 0.93.
    """

    metric: str = "cos"
    dtype: str = "f32"
    connectivity: int = 32  # M; 16 needs expansion_search >= 384 for recall@10 >= 0.98 at 200k docs
    expansion_add: int = 128
    expansion_search: int = 128  # recall@10 0.993 at 200k docs, d=384, with connectivity 32
    rescore: int = 1

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
        if isinstance(self.rescore, bool) or not isinstance(self.rescore, int) or self.rescore < 1:
            raise EmbtuiError(f"HNSW rescore must be a whole number of at least 1, got {self.rescore!r}",
                              "e.g. --hnsw-rescore 2 fetches 2 x k candidates and scores them exactly")

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["rescore"] == 1:  # the default leaves the records (and index keys) of older runs as they were
            del d["rescore"]
        return d

    def graph_dict(self) -> dict:
        """What the saved graph depends on (its file key): not the search-time rescoring."""
        d = self.to_dict()
        d.pop("rescore", None)
        return d

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
        add_in_batches(index, docs, batch, progress=progress, cancel=cancel, dtype=np.float32)
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
        index = _load_verified(path, _new_usearch(config, ndim), config.metric, config.dtype, ndim, view)
        index.expansion_search = int(config.expansion_search)
        return cls(index, config, ndim)

    def search(self, queries: np.ndarray, k: int, *, tie_order: np.ndarray | None = None,
               docs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-``k`` per query; same return convention as :func:`exact_search`.

        Shapes are [Q, min(k, len(self))]. Scores are "higher is better": cos -> 1 - usearch cosine
        distance; ip -> 1 - usearch "ip" distance (usearch defines it as 1 - dot, so this is the dot
        product); l2sq -> -squared distance. ``k + 8`` candidates are fetched and re-ranked by the
        tie rule before cutting to k, so boundary ties are resolved as well as the ANN recall allows.
        A row for which the graph search found fewer than min(k, N) neighbours is padded with
        index -1 and score -inf (rare; only for tiny or degenerate indexes).

        With ``config.rescore`` > 1, ``docs`` (the [N, d] vectors the index was built from, float32,
        float16 or a memmap) must be given: ``rescore × k`` candidates are fetched and scored exactly
        against them, so the scores are the float ones whatever the graph's dtype.
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
        rescore = int(self.config.rescore)
        if rescore > 1 and docs is None:
            raise EmbtuiError("HNSW rescoring needs the document vectors", "pass docs=, or use rescore 1")
        fetch = min(max(k + _HNSW_EXTRA, rescore * k if rescore > 1 else 0), n)
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
        dist = np.where(valid, dist, 0.0)  # the slots past a row's count hold sentinels (NaN, inf)
        if rescore > 1:
            assert docs is not None
            scores = exact_candidate_scores(q, docs, idx, valid, self.config.metric)
        elif self.config.metric == "l2sq":
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


def exact_candidate_scores(queries: np.ndarray, docs: np.ndarray, idx: np.ndarray, valid: np.ndarray,
                           metric: str, block_bytes: int = 64 << 20) -> np.ndarray:
    """Each query's exact float32 score against its candidate rows ``idx`` [Q, C] (cos: cosine of
    both normalised; ip: dot; l2sq: minus the squared distance), a block of queries at a time so
    the gathered candidates stay under ``block_bytes``; cells where ``valid`` is False are -inf."""
    n_q, c = idx.shape
    dim = int(docs.shape[1])
    q = np.asarray(queries, dtype=np.float32)
    if metric == "cos":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    rows = np.where(valid, idx, 0)
    out = np.empty((n_q, c), dtype=np.float32)
    step = max(1, block_bytes // max(1, c * dim * 4))
    for start in range(0, n_q, step):
        r = rows[start:start + step]
        cand = np.asarray(docs[r.reshape(-1)], dtype=np.float32).reshape(r.shape[0], c, dim)
        qb = q[start:start + step]
        if metric == "cos":
            cand /= np.maximum(np.linalg.norm(cand, axis=2, keepdims=True), 1e-12)
            out[start:start + step] = np.einsum("qd,qcd->qc", qb, cand)
        elif metric == "ip":
            out[start:start + step] = np.einsum("qd,qcd->qc", qb, cand)
        else:
            diff = cand - qb[:, None, :]
            out[start:start + step] = -np.einsum("qcd,qcd->qc", diff, diff)
    return np.where(valid, out, -np.inf).astype(np.float32)


def add_in_batches(index: "Index", rows: np.ndarray, batch: int, *, progress: ProgressCallback | None = None,
                   cancel: CancelToken | None = None, dtype: "np.dtype | type | None" = None) -> None:
    """Add ``rows`` (keys 0..N-1) to a USearch index ``batch`` rows at a time (progress stage
    "index", cancel per batch); one thread up to DETERMINISTIC_BUILD_MAX rows, so the same rows
    always give the same graph. ``dtype``: convert each batch (e.g. float16/memmap to float32)."""
    n = len(rows)
    threads = 1 if n <= DETERMINISTIC_BUILD_MAX else 0
    meter = Meter("index", n, progress)
    for start in range(0, n, batch):
        if cancel is not None:
            cancel.check()
        stop = min(start + batch, n)
        x = rows[start:stop] if dtype is None else np.ascontiguousarray(rows[start:stop], dtype=dtype)
        index.add(np.arange(start, stop, dtype=np.uint64), x, threads=threads)
        meter.update(stop)
    meter.finish()


def _load_verified(path: str | os.PathLike, index: "Index", metric: str, dtype: str, ndim: int,
                   view: bool = False) -> "Index":
    """Read a saved usearch file into ``index`` after checking it against its checksum record and
    its header (metric, scalar kind, dimensions); EmbtuiError when it is missing, damaged,
    truncated or built another way. A file without a record that loads is given one."""
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
    if int(meta["dimensions"]) != int(ndim):
        raise EmbtuiError(f"index {path} has {meta['dimensions']} dimensions, expected {ndim}", hint)
    built = (str(meta["kind_metric"].name).lower(), str(meta["kind_scalar"].name).lower())
    if built != (metric, dtype):
        raise EmbtuiError(f"index {path} was built with metric {built[0]}, dtype {built[1]}; "
                          f"expected {metric}, {dtype}", hint)
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
    return index


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
