"""A model's embedding space for a project: the vectors (from the cache, encoding what is missing),
a 2D projection cached per (model, texts, method, parameters), k-means clusters and the space
statistics of analysis/space.py.

A cached projection is a .npy file with a checksum sidecar; one that fails its check is computed
again (and the warning says so), never drawn.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from embtui.analysis import space as sp
from embtui.engine.progress import CancelToken, Meter, ProgressCallback
from embtui.errors import EmbtuiError

if TYPE_CHECKING:
    from embtui.store import Store

METHODS = ("pca", "umap")
MAX_POINTS = 50_000  # documents drawn at most (a seeded sample beyond)


def embed(store: "Store", model: str, texts: Sequence[str], role: str, *,
          progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
          device: str | None = None) -> np.ndarray:
    """Vectors of ``texts`` for a dense model: the cache first, the model only for what is missing."""
    from embtui.engine.encode import Encoder
    from embtui.engine.models import resolve_spec

    spec = resolve_spec(model, store)
    if spec.is_bm25 or spec.is_pipeline:
        raise EmbtuiError(f"'{model}' is not a dense model: it has no embedding space", "name a dense model")
    vecs, _stats = Encoder(spec, store.ws.cache_dir, store=store, device=device).encode(
        list(texts), role, progress=progress, cancel=cancel)
    return vecs


def _key(store: "Store", model: str, texts: Sequence[str], method: str, params: dict[str, Any]) -> str:
    from embtui.engine.models import fingerprint, resolve_spec

    spec = resolve_spec(model, store)
    h = hashlib.sha256()
    h.update(json.dumps({"fp": fingerprint(spec, store), "spec": spec.to_dict(), "method": method,
                         "params": params}, sort_keys=True, default=str).encode())
    for t in texts:
        h.update(hashlib.sha256(t.encode()).digest())
    return h.hexdigest()[:24]


def cached_projection(store: "Store", key: str, build: Any, warnings: list[str]) -> tuple[np.ndarray, tuple[float, ...]]:
    """(coords, explained variance per axis) stored under ``key``, verified; else ``build()`` (a
    ``Projection``) computed once, stored and returned."""
    from embtui.engine.integrity import (atomic_write_bytes, read_json, sidecar_path, verify_file,
                                         write_file_record, write_json_atomic)

    folder = Path(store.ws.cache_dir) / "projections"
    path, meta_path = folder / f"{key}.npy", folder / f"{key}.meta.json"
    if path.exists():
        record = read_json(sidecar_path(path))
        meta = read_json(meta_path)
        why = verify_file(path, record) if record else "has no checksum record"
        if why is None and meta is None:
            why = "has no record of its explained variance"
        if why is None:
            try:
                return np.load(path, allow_pickle=False), tuple(meta.get("explained") or ())
            except (OSError, ValueError) as exc:
                why = f"unreadable ({exc})"
        warnings.append(f"cached projection {path.name} {why}: computed again")
    proj = build()
    coords = np.ascontiguousarray(proj.coords, dtype=np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    import io

    buf = io.BytesIO()
    np.save(buf, coords, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
    write_file_record(path)
    write_json_atomic(meta_path, {"explained": list(proj.explained), "method": proj.method})
    return coords, tuple(proj.explained)


@dataclass(frozen=True)
class SpaceView:
    """What the Space pane draws and `embtui space` prints: points, their kinds and clusters."""

    model: str
    method: str
    ids: list[str]
    kinds: list[str]  # "doc" or "query"
    coords: np.ndarray  # [N, 2]
    clusters: np.ndarray  # [N] k-means label (documents and queries assigned to document clusters)
    stats: sp.SpaceStats
    explained: tuple[float, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)  # id -> label field value (documents)
    sampled_from: int = 0
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self, points: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "method": self.method, "points": len(self.ids),
                               "documents": self.kinds.count("doc"), "queries": self.kinds.count("query"),
                               "sampled_from": self.sampled_from, "explained": list(self.explained),
                               "stats": self.stats.to_dict(), "warnings": self.warnings, "seconds": self.seconds}
        if points:
            out["coords"] = [{"id": i, "kind": k, "x": float(x), "y": float(y), "cluster": int(c)}
                             for i, k, (x, y), c in zip(self.ids, self.kinds, self.coords, self.clusters)]
        return out


def label_field(store: "Store", project: str, name: str | None) -> dict[str, str]:
    """Per document, a label to score the clusters against: ``annotation`` (the first label put on
    the document in the Failures pane) or a file (JSONL, CSV/TSV or Parquet with ``doc_id`` and
    ``label``), else nothing. (BEIR corpora carry no per-document label field.)"""
    if not name:
        return {}
    if name == "annotation":
        out: dict[str, str] = {}
        for a in store.annotations.find(project, level="document"):
            if a.doc_id:
                out.setdefault(a.doc_id, a.label)
        return out
    from embtui.data.labels import read_labels

    return read_labels(name)


def build_space(store: "Store", project: str, model: str, *, method: str = "pca", k: int = 8,
                split: str | None = "test", with_queries: bool = True, labels: str | None = None,
                max_points: int = MAX_POINTS, n_neighbors: int = 15, min_dist: float = 0.1,
                seed: int = sp.SEED, progress: ProgressCallback | None = None,
                cancel: CancelToken | None = None, encode: bool = True) -> SpaceView:
    """``encode=False``: only vectors already in the cache (the app's case: encoding a corpus is a
    job, not something a pane should start behind the user's back)."""
    import time

    if method not in METHODS:
        raise EmbtuiError(f"unknown projection '{method}'", "use pca or umap")
    secs: dict[str, float] = {}
    corpus = store.corpus(project)
    ids, texts = list(corpus.ids), corpus.encode_texts()
    total = len(ids)
    if total > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(total, max_points, replace=False))
        ids, texts = [ids[i] for i in keep], [texts[i] for i in keep]
    t0 = time.perf_counter()
    if not encode:
        from embtui.engine.data_profile import cached_vectors
        from embtui.engine.models import resolve_spec

        if cached_vectors(store, resolve_spec(model, store), texts, "document") is None:
            raise EmbtuiError(f"'{project}' is not in {model}'s embedding cache yet",
                              f"evaluate {model} on it first (Jobs pane: e, or embtui eval)")
    docs = embed(store, model, texts, "document", progress=progress, cancel=cancel)
    qids: list[str] = []
    qvecs = np.zeros((0, docs.shape[1]), np.float32)
    if with_queries:
        queries = store.queries(project, split) if split else store.queries(project)
        qids = list(queries)
        if qids:
            qvecs = embed(store, model, list(queries.values()), "query", progress=progress, cancel=cancel)
    secs["vectors"] = time.perf_counter() - t0
    meter = Meter("space", 3, progress)
    t0 = time.perf_counter()
    lab = label_field(store, project, labels)
    if labels and not any(i in lab for i in ids):
        raise EmbtuiError(f"no document of '{project}' has a label in {labels}",
                          "label documents in the Failures pane, or give a file of doc_id and label")
    stats, doc_clusters = sp.space_stats(docs, k=k, labels_true=[lab.get(i) for i in ids] if lab else None,
                                         seed=seed)
    secs["stats"] = time.perf_counter() - t0
    meter.update(1)
    points = np.vstack([docs, qvecs]) if len(qvecs) else docs
    params: dict[str, Any] = {"split": split, "queries": with_queries, "max_points": max_points, "seed": seed}
    if method == "umap":
        params.update({"n_neighbors": n_neighbors, "min_dist": min_dist})
    warnings: list[str] = []
    key = _key(store, model, texts + [f"q:{q}" for q in qids], method, params)
    t0 = time.perf_counter()
    if method == "pca":  # the spectrum is computed only on a cache miss, inside sp.pca
        coords, explained = cached_projection(store, key, lambda: sp.pca(points, 2), warnings)
    else:
        coords, explained = cached_projection(store, key, lambda: sp.umap_projection(
            points, n_neighbors=n_neighbors, min_dist=min_dist, seed=seed), warnings)
    secs["projection"] = time.perf_counter() - t0
    meter.update(2)
    assert doc_clusters is not None
    clusters = doc_clusters
    if len(qvecs):  # queries take the cluster of their nearest document centre
        cents = np.stack([sp.normalize(docs[doc_clusters == c]).mean(0) for c in range(int(doc_clusters.max()) + 1)])
        clusters = np.r_[doc_clusters, np.argmax(sp.normalize(qvecs) @ sp.normalize(cents).T, axis=1)]
    meter.finish()
    return SpaceView(model, method, ids + qids, ["doc"] * len(ids) + ["query"] * len(qids), coords, clusters,
                     stats, explained, lab, total, warnings, secs)
