"""A sentence-transformers model as a retriever: encode corpus and queries through the embedding
cache (resumable chunks, verified on read), then exact search or a reused/rebuilt USearch HNSW
index whose recall against exact search is measured on every run."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

import numpy as np

from embtui.engine.encode import DEFAULT_CHUNK_TEXTS, Encoder
from embtui.engine.models import effective_max_seq_length
from embtui.engine.retrievers.base import Retrieval, RetrievalContext
from embtui.engine.hnsw import HnswConfig, HnswIndex, recall_at_k
from embtui.engine.quantized import CODE_INDEX, CodeIndex, bytes_per_doc, quantize_corpus, quantized_search
from embtui.engine.search import choose_index, exact_search
from embtui.errors import EmbtuiError

if TYPE_CHECKING:
    from embtui.engine.models import ModelSpec
    from embtui.engine.quantized import QuantizedCorpus

RECALL_SAMPLE = 1000  # queries used to measure an ANN run's recall against exact search
ANN_RECALL_WARN = 0.9  # an HNSW run measured below this recall@10 warns in CLI, info and report


def encoder_for(ctx: RetrievalContext, spec: "ModelSpec") -> Encoder:
    """The encoder an evaluation uses for ``spec``: its device, cache storage, chunk size and
    executor (here, one worker per device, or a Ray cluster)."""
    return Encoder(spec, ctx.store.ws.cache_dir, store=ctx.store, device=ctx.device,
                   cache_dtype=ctx.req.cache_dtype, chunk_texts=ctx.req.chunk_texts or DEFAULT_CHUNK_TEXTS,
                   executor=ctx.req.executor, ray_address=ctx.req.ray_address)


class DenseRetriever:
    kind = "dense"
    uses_model_device = True

    def __init__(self, spec: "ModelSpec") -> None:
        self.spec = spec

    def retrieve(self, ctx: RetrievalContext) -> Retrieval:
        stages = ctx.stages
        encoder = encoder_for(ctx, self.spec)
        t0 = stages.start("encode documents", len(ctx.corpus))
        spill = ctx.store.ws.runs_dir / f"run-{ctx.run_id}-documents.f32.npy"
        doc_vecs, doc_stats = encoder.encode(ctx.corpus, "document",
                                             progress=stages.progress, cancel=ctx.cancel,
                                             spill_path=spill, max_in_memory_bytes=ctx.req.max_in_memory_bytes)
        stages.end("encode_documents_s", t0)
        t0 = stages.start("encode queries", len(ctx.query_texts))
        q_vecs, q_stats = encoder.encode(ctx.query_texts, "query", progress=stages.progress, cancel=ctx.cancel)
        stages.end("encode_queries_s", t0)
        encoder.unload()
        ctx.info["encode"] = {"documents": doc_stats.to_dict(), "queries": q_stats.to_dict()}
        if encoder.distributed:  # where each chunk ran, with each device's own throughput
            ctx.info["encode"]["executor"] = encoder.executor_kind
            ctx.info["encode"]["devices"] = encoder.devices.to_dict()
        if doc_stats.warnings or q_stats.warnings or encoder.load_warnings:  # damaged chunks or export
            ctx.info.setdefault("warnings", []).extend(
                [*doc_stats.warnings, *q_stats.warnings, *encoder.load_warnings])
        ctx.info["embedding_dim"] = int(doc_vecs.shape[1])
        ctx.info["max_seq_length"] = effective_max_seq_length(self.spec)
        ctx.info["embedding_bytes"] = int(doc_vecs.nbytes)
        ctx.info["embeddings_memory_mapped"] = isinstance(doc_vecs, np.memmap)
        fp = encoder.fingerprint
        used_device = encoder.device or f"{ctx.device} (all cached)"
        metric = "cos" if not self.spec.normalize else "ip"
        ctx.info["bytes_per_doc"] = bytes_per_doc(int(doc_vecs.shape[1]), self.spec.quantize,
                                                  ctx.req.cache_dtype)
        if self.spec.quantize is not None:
            return Retrieval(*self._quantized(ctx, doc_vecs, q_vecs, metric), fingerprint=fp,
                             device=used_device)
        kind = ctx.req.index if ctx.req.index != "auto" else choose_index(len(ctx.corpus))
        ctx.index_config["kind"] = kind
        ctx.index_config["metric"] = metric
        idx, scores = search_vectors(ctx, kind, metric, doc_vecs, q_vecs)
        return Retrieval(idx, scores, fingerprint=fp, device=used_device)

    def _quantized(self, ctx: RetrievalContext, doc_vecs: np.ndarray, q_vecs: np.ndarray,
                   metric: str) -> tuple[np.ndarray, np.ndarray]:
        """int8 or binary codes of the cached vectors, searched exactly (engine/quantized.py), or
        with ``--index hnsw`` through a USearch index over the codes (i8 inner product, b1 hamming)."""
        if metric == "cos":  # codes of unnormalised vectors would rank by inner product
            doc_vecs = doc_vecs / np.maximum(np.linalg.norm(doc_vecs, axis=1, keepdims=True), 1e-12)
            q_vecs = q_vecs / np.maximum(np.linalg.norm(q_vecs, axis=1, keepdims=True), 1e-12)
        stages = ctx.stages
        t0 = stages.start("quantize", len(doc_vecs))
        qc = quantize_corpus(doc_vecs, self.spec.quantize or "")
        stages.end("quantize_s", t0)
        kind = "hnsw" if ctx.req.index == "hnsw" else "exact"  # auto: quantised search stays exact
        ctx.index_config.update(kind=kind, metric=metric, quantize=self.spec.quantize,
                                rescore=self.spec.rescore)
        ctx.info["index_bytes"] = qc.nbytes
        if kind == "hnsw":
            return _quantized_hnsw(ctx, self.spec, qc, q_vecs)
        t0 = stages.start("search", len(q_vecs))
        idx, scores = quantized_search(q_vecs, qc, ctx.depth, rescore=self.spec.rescore,
                                       tie_order=ctx.tie_order, progress=stages.progress, cancel=ctx.cancel)
        stages.end("search_s", t0)
        return idx, scores


_NOT_IN_INDEX_KEY = ("name", "rescore", "batch_size", "device")  # a code index serves all of these


def _quantized_hnsw(ctx: RetrievalContext, spec: "ModelSpec", qc: "QuantizedCorpus",
                    q_vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A USearch index over the codes, reused when its file verifies (else rebuilt, with a
    warning), searched with the run's rescoring; its recall@10 against the exact quantised
    search (same codes, same rescoring) is measured on a sample of queries and recorded."""
    store, stages, info = ctx.store, ctx.stages, ctx.info
    # recorded as a float32 HNSW run records its settings (so an identical run is found and reused);
    # what USearch stores and compares, beside them
    config = HnswConfig.from_dict({**ctx.req.hnsw.to_dict(), "metric": ctx.index_config["metric"]})
    metric, dtype = CODE_INDEX[qc.precision]
    ctx.index_config["hnsw"] = config.to_dict()
    ctx.index_config["code_index"] = {"metric": metric, "dtype": dtype}
    key = hashlib.sha256(json.dumps(
        {"corpus": info["corpus_hash"], "codes": qc.precision,
         "model": {k: v for k, v in spec.to_dict().items() if k not in _NOT_IN_INDEX_KEY},
         "graph": {k: v for k, v in config.to_dict().items() if k in ("connectivity", "expansion_add")},
         "dim": qc.dim}, sort_keys=True, default=str).encode()).hexdigest()[:24]
    path = store.ws.index_dir / f"{key}.{dtype}.usearch"
    t0 = stages.start("build index", len(qc.codes))
    index = None
    if path.exists():
        try:
            index = CodeIndex.load_codes(path, config, qc)
            ctx.index_config["reused"] = True
        except EmbtuiError as exc:  # damaged, truncated or foreign: rebuilt from the codes
            info.setdefault("warnings", []).append(f"{exc.message}; rebuilt it from the cached vectors")
    if index is None:
        index = CodeIndex.build_codes(qc, config, progress=stages.progress, cancel=ctx.cancel)
        path.parent.mkdir(parents=True, exist_ok=True)
        index.save(path)
        store.register_artifact(store.ws.rel(path), "hnsw-index", path.stat().st_size,
                                {"corpus_hash": info["corpus_hash"], "model": spec.name,
                                 "quantize": qc.precision, **config.to_dict(), **ctx.index_config["code_index"]})
        ctx.index_config["reused"] = False
    stages.end("index_build_s", t0)
    info["index_bytes"] = int(path.stat().st_size)  # the codes and the graph
    info["index_bytes_per_doc"] = round(info["index_bytes"] / max(len(qc.codes), 1), 1)
    ctx.index_config["path"] = store.ws.rel(path)
    t0 = stages.start("search", len(q_vecs))
    idx, scores = index.search_codes(qc, q_vecs, ctx.depth, rescore=spec.rescore, tie_order=ctx.tie_order)
    stages.end("search_s", t0)
    sample = np.arange(len(q_vecs))[:RECALL_SAMPLE]
    k = min(10, ctx.depth)
    # at the run's depth: a rescored top 10 depends on how many candidates (depth x rescore) it had
    ex_idx, _ = quantized_search(q_vecs[sample], qc, ctx.depth, rescore=spec.rescore, tie_order=ctx.tie_order)
    info["ann_recall@10"] = round(float(recall_at_k(idx[sample], ex_idx, k)), 6)
    info["ann_recall_against"] = f"exact {qc.precision} search"
    info["ann_recall_queries"] = int(len(sample))
    if info["ann_recall@10"] < ANN_RECALL_WARN:
        info.setdefault("warnings", []).append(
            f"HNSW recall@10 against exact {qc.precision} search is {info['ann_recall@10']:.3f} (below "
            f"{ANN_RECALL_WARN}): this run's metrics understate the codes; rerun with --index exact "
            "or a larger --hnsw-expansion-search")
    return idx, scores


def search_vectors(ctx: RetrievalContext, kind: str, metric: str, doc_vecs: np.ndarray,
                   q_vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact or HNSW search of ``q_vecs`` in ``doc_vecs``; an HNSW index is reused when its file
    verifies (else rebuilt from the vectors, with a warning), and its recall@10 against exact
    search is measured on a sample of queries and recorded (below ANN_RECALL_WARN it warns)."""
    store, req, stages, cancel = ctx.store, ctx.req, ctx.stages, ctx.cancel
    depth, tie_order, info, index_config = ctx.depth, ctx.tie_order, ctx.info, ctx.index_config
    if kind == "exact":
        t0 = stages.start("search", len(q_vecs))
        idx, scores = exact_search(q_vecs, doc_vecs, depth, metric=metric, tie_order=tie_order,
                                   progress=stages.progress, cancel=cancel)
        stages.end("search_s", t0)
        return idx, scores
    # an i8 graph is cosine only (usearch scales i8 vectors to the unit sphere); "ip" is chosen for
    # normalised vectors only, where cosine gives the same order and the same scores
    graph_metric = "cos" if req.hnsw.dtype == "i8" else metric
    config = HnswConfig.from_dict({**req.hnsw.to_dict(), "metric": graph_metric})
    index_config["hnsw"] = config.to_dict()
    key = hashlib.sha256(json.dumps(
        {"corpus": info["corpus_hash"], "model": req.model.to_dict(), "hnsw": config.graph_dict(),
         "dim": int(doc_vecs.shape[1])}, sort_keys=True, default=str).encode()).hexdigest()[:24]
    path = store.ws.index_dir / f"{key}.usearch"
    t0 = stages.start("build index", len(doc_vecs))
    index = None
    if path.exists():
        try:
            index = HnswIndex.load(path, config, int(doc_vecs.shape[1]))
            index_config["reused"] = True
        except EmbtuiError as exc:  # damaged, truncated or foreign: rebuilt from the verified vectors
            info.setdefault("warnings", []).append(f"{exc.message}; rebuilt it from the cached vectors")
    if index is None:
        index = HnswIndex.build(doc_vecs, config, progress=stages.progress, cancel=cancel)
        path.parent.mkdir(parents=True, exist_ok=True)
        index.save(path)
        store.register_artifact(store.ws.rel(path), "hnsw-index", path.stat().st_size,
                                {"corpus_hash": info["corpus_hash"], "model": req.model.name,
                                 **config.to_dict()})
        index_config["reused"] = False
    stages.end("index_build_s", t0)
    info["index_bytes"] = int(path.stat().st_size)
    index_config["path"] = store.ws.rel(path)
    t0 = stages.start("search", len(q_vecs))
    idx, scores = index.search(q_vecs, depth, tie_order=tie_order, docs=doc_vecs)
    stages.end("search_s", t0)
    # how far the approximate results are from exact search, on a sample of queries
    sample = np.arange(len(q_vecs))[:RECALL_SAMPLE]
    k = min(10, depth)
    ex_idx, _ = exact_search(q_vecs[sample], doc_vecs, k, metric=metric, tie_order=tie_order)
    info["ann_recall@10"] = round(float(recall_at_k(idx[sample], ex_idx, k)), 6)
    if info["ann_recall@10"] < ANN_RECALL_WARN:
        info.setdefault("warnings", []).append(
            f"HNSW recall@10 against exact search is {info['ann_recall@10']:.3f} (below "
            f"{ANN_RECALL_WARN}): this run's metrics understate the model; rerun with --index exact "
            "or a larger --hnsw-expansion-search")
    info["ann_recall_queries"] = int(len(sample))
    return idx, scores
