"""A retrieval pipeline as a retriever: first-stage retrievers (each through its own retriever,
so a dense stage reuses the embedding cache and its HNSW index), their fusion (analysis/fusion.py),
then rerank stages that rescore only the candidates they are handed — a bi-encoder encodes just
those documents through the cache; a cross-encoder scores (query, document) pairs.

Per stage the run records its time, items/s and, before each reranker, the **candidate recall**
(recall@depth of the candidates on the split's judgments, as trec_eval's recall_k counts it): the
ceiling the reranker cannot pass. A reranker's output is its ``depth`` candidates in its own order;
ties in any score follow trec_eval's rule (score descending, then document id descending).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from embtui.analysis.fusion import rrf, weighted_sum
from embtui.engine.pipelines import Pipeline, RerankStage
from embtui.engine.retrievers.base import Retrieval, RetrievalContext

if TYPE_CHECKING:
    from embtui.engine.models import ModelSpec


class _StageTimings:
    """The run's stage recorder with a prefix on every timing key, so two stages' `search_s` do
    not overwrite each other; progress and the current stage name pass through."""

    def __init__(self, stages: Any, prefix: str) -> None:
        self._stages = stages
        self._prefix = prefix
        self.progress = stages.progress

    def start(self, stage: str, total: int = 0) -> float:
        return self._stages.start(f"{self._prefix.rstrip('_')}: {stage}", total)

    def end(self, name: str, t0: float) -> None:
        self._stages.end(self._prefix + name, t0)


def _stage_name(spec: dict[str, Any]) -> str:
    return str(spec.get("name") or spec.get("model"))


class PipelineRetriever:
    kind = "pipeline"

    def __init__(self, spec: "ModelSpec", retriever_for: Callable[["ModelSpec"], Any]) -> None:
        self.spec = spec
        self._retriever_for = retriever_for  # the registry's lookup, handed in (no import circle)
        assert spec.pipeline is not None
        self.pipeline = Pipeline.from_dict(spec.pipeline)
        self.uses_model_device = any(not s.is_bm25 for s in spec.stages())

    def retrieve(self, ctx: RetrievalContext) -> Retrieval:
        from embtui.engine.models import ModelSpec

        retriever_for = self._retriever_for
        p, n_docs = self.pipeline, len(ctx.corpus)
        ctx.index_config["kind"] = "pipeline"
        records: list[dict[str, Any]] = []
        fingerprints: list[str | None] = []
        devices: list[str] = []
        first_depth = min(p.first_depth(ctx.depth), n_docs)
        parts: list[Retrieval] = []
        for i, stage_dict in enumerate(p.retrieve):
            spec = ModelSpec.from_dict(stage_dict)
            sub_info: dict[str, Any] = {"corpus_hash": ctx.info.get("corpus_hash")}
            sub_cfg: dict[str, Any] = {"kind": ctx.req.index}
            prefix = f"stage{i + 1}_"
            t0 = time.perf_counter()
            stage_retriever = retriever_for(spec)
            got = stage_retriever.retrieve(replace(
                ctx, req=replace(ctx.req, model=spec), depth=first_depth, info=sub_info,
                index_config=sub_cfg, stages=_StageTimings(ctx.stages, prefix)))
            seconds = time.perf_counter() - t0
            parts.append(got)
            fingerprints.append(got.fingerprint)
            if got.device:
                devices.append(got.device)
            ctx.info.setdefault("warnings", []).extend(sub_info.pop("warnings", []))
            records.append({"stage": f"retrieve {_stage_name(stage_dict)}", "kind": stage_retriever.kind,
                            "depth": first_depth, "seconds": round(seconds, 4),
                            "queries_per_s": round(len(ctx.query_texts) / seconds, 2) if seconds > 0 else None,
                            "index": sub_cfg, "info": sub_info})
        idx, scores = parts[0].idx, parts[0].scores
        if p.fuse is not None:
            t0 = time.perf_counter()
            idx, scores = self._fuse(ctx, parts, max(first_depth, min(ctx.depth, n_docs)))
            records.append({"stage": f"fuse {p.fuse}" + (f" k={p.rrf_k}" if p.fuse == "rrf" else ""),
                            "depth": int(idx.shape[1]), "seconds": round(time.perf_counter() - t0, 4)})
        for j, stage in enumerate(p.rerank):
            depth = min(stage.depth, idx.shape[1])
            record: dict[str, Any] = {"stage": f"rerank {_stage_name(stage.model)}", "kind": stage.kind,
                                      "depth": depth}
            record[f"candidate_recall@{depth}"] = self._candidate_recall(ctx, idx[:, :depth])
            t0 = time.perf_counter()
            idx, scores, fp, device, n_docs_encoded, encode = self._rerank(ctx, stage, idx[:, :depth], j)
            seconds = time.perf_counter() - t0
            if encode is not None:  # a bi-encoder: what it encoded now and what the cache gave
                record["encode"] = encode
            record.update(seconds=round(seconds, 4), documents_scored=n_docs_encoded,
                          pairs_per_s=round(int((idx >= 0).sum()) / seconds, 2) if seconds > 0 else None)
            records.append(record)
            fingerprints.append(fp)
            if device:
                devices.append(device)
        if not ctx.info.get("warnings"):
            ctx.info.pop("warnings", None)
        ctx.info["pipeline"] = {"describe": p.describe(), "stages": records}
        fp = None if any(f is None for f in fingerprints) else self._fingerprint(ctx)
        keep = min(ctx.depth, idx.shape[1])
        return Retrieval(idx[:, :keep], scores[:, :keep], fingerprint=fp,
                         device=", ".join(dict.fromkeys(devices)) or None)

    def _fingerprint(self, ctx: RetrievalContext) -> str | None:
        from embtui.engine.models import fingerprint

        return fingerprint(self.spec, ctx.store)

    # -- fusion --------------------------------------------------------------------------------
    def _fuse(self, ctx: RetrievalContext, parts: list[Retrieval], depth: int) -> tuple[np.ndarray, np.ndarray]:
        ids = ctx.corpus.ids
        qkeys = [str(i) for i in range(len(ctx.query_texts))]
        rankings = [{q: [(ids[i], float(s)) for i, s in zip(r.idx[qi].tolist(), r.scores[qi].tolist()) if i >= 0]
                     for qi, q in enumerate(qkeys)} for r in parts]
        p = self.pipeline
        fused = (rrf(rankings, k=p.rrf_k, depth=depth) if p.fuse == "rrf"
                 else weighted_sum(rankings, p.weights, depth=depth))
        return _to_arrays(fused, qkeys, {d: i for i, d in enumerate(ids)}, depth)

    # -- candidate recall ----------------------------------------------------------------------
    def _candidate_recall(self, ctx: RetrievalContext, idx: np.ndarray) -> float:
        """Mean recall of the candidates over the judged queries (trec_eval's recall_k: relevant
        found / all relevant; queries with no relevant judgment are left out)."""
        qrels = ctx.store.qrels(ctx.req.project, ctx.req.split)
        qids = list(ctx.store.queries(ctx.req.project, ctx.req.split))
        ids = ctx.corpus.ids
        values = []
        for qi, q in enumerate(qids[:len(idx)]):
            relevant = {d for d, g in qrels.get(q, {}).items() if g >= 1}
            if not relevant:
                continue
            found = {ids[i] for i in idx[qi].tolist() if i >= 0} & relevant
            values.append(len(found) / len(relevant))
        return round(float(np.mean(values)), 6) if values else float("nan")

    # -- rerank --------------------------------------------------------------------------------
    def _rerank(self, ctx: RetrievalContext, stage: RerankStage, cand: np.ndarray, j: int,
                ) -> tuple[np.ndarray, np.ndarray, str | None, str | None, int, dict[str, Any] | None]:
        from embtui.engine.models import ModelSpec

        spec = ModelSpec.from_dict(stage.model)
        unique = np.unique(cand[cand >= 0])
        encode = None
        if stage.kind == "cross-encoder":
            scores, fp, device = _cross_encoder_scores(ctx, spec, cand)
        else:
            scores, fp, device, encode = _bi_encoder_scores(ctx, spec, cand, unique, f"rerank{j + 1}_")
        tie = ctx.tie_order[np.where(cand >= 0, cand, 0)]
        scores = np.where(cand >= 0, scores, -np.inf).astype(np.float32)
        order = np.lexsort((tie, -scores), axis=-1)
        return (np.take_along_axis(cand, order, axis=1), np.take_along_axis(scores, order, axis=1),
                fp, device, int(len(unique)), encode)


def _bi_encoder_scores(ctx: RetrievalContext, spec: "ModelSpec", cand: np.ndarray, unique: np.ndarray,
                       prefix: str) -> tuple[np.ndarray, str | None, str | None, dict[str, Any]]:
    """Cosine (or inner product, unnormalised) of each query with its candidates; only the
    candidate documents are encoded, through the cache like any embedding (the last item: the
    documents' and queries' encode statistics, what was encoded now and what the cache gave)."""
    from embtui.engine.retrievers.dense import encoder_for

    stages = _StageTimings(ctx.stages, prefix)
    encoder = encoder_for(ctx, spec)
    t0 = stages.start("encode candidates", len(unique))
    doc_vecs, doc_stats = encoder.encode(ctx.corpus.texts_at(unique.tolist()), "document",
                                         progress=stages.progress, cancel=ctx.cancel)
    stages.end("encode_documents_s", t0)
    t0 = stages.start("encode queries", len(ctx.query_texts))
    q_vecs, q_stats = encoder.encode(ctx.query_texts, "query", progress=stages.progress, cancel=ctx.cancel)
    stages.end("encode_queries_s", t0)
    encoder.unload()
    row_of = np.full(len(ctx.corpus), -1, dtype=np.int64)
    row_of[unique] = np.arange(len(unique))
    docs = np.asarray(doc_vecs, dtype=np.float32)
    q = np.asarray(q_vecs, dtype=np.float32)
    if not spec.normalize:  # the dense retriever's "cos" metric: both sides normalised
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        docs = docs / np.maximum(np.linalg.norm(docs, axis=1, keepdims=True), 1e-12)
    rows = row_of[np.where(cand >= 0, cand, unique[0] if len(unique) else 0)]
    scores = np.empty(cand.shape, dtype=np.float32)
    block = max(1, (64 << 20) // max(1, cand.shape[1] * docs.shape[1] * 4))  # [block, depth, dim] <= 64 MB
    for start in range(0, len(q), block):
        scores[start:start + block] = np.einsum("qd,qkd->qk", q[start:start + block],
                                                docs[rows[start:start + block]])
    return (scores, encoder.fingerprint, encoder.device,
            {"documents": doc_stats.to_dict(), "queries": q_stats.to_dict()})


def _cross_encoder_scores(ctx: RetrievalContext, spec: "ModelSpec", cand: np.ndarray,
                          ) -> tuple[np.ndarray, str | None, str | None]:
    """The cross-encoder's score of every (query, candidate) pair, in batches, with progress."""
    from embtui.engine.models import fingerprint
    from embtui.engine.loading import cross_encoder

    model, device = cross_encoder(spec, ctx.device)
    rows = sorted({i for i in cand.reshape(-1).tolist() if i >= 0})
    texts = dict(zip(rows, ctx.corpus.texts_at(rows)))  # the candidates' texts only
    pairs = [(ctx.query_texts[qi], texts[i]) for qi in range(cand.shape[0]) for i in cand[qi].tolist() if i >= 0]
    where = [(qi, k) for qi in range(cand.shape[0]) for k, i in enumerate(cand[qi].tolist()) if i >= 0]
    out = np.full(cand.shape, -np.inf, dtype=np.float32)
    t0 = ctx.stages.start("rerank pairs", len(pairs))
    from embtui.engine.progress import Progress

    step = max(spec.batch_size, 1) * 8
    for start in range(0, len(pairs), step):
        ctx.cancel.check()
        got = model.predict(pairs[start:start + step], batch_size=spec.batch_size, show_progress_bar=False,
                            convert_to_numpy=True)
        for (qi, k), s in zip(where[start:start + step], np.asarray(got, dtype=np.float32).reshape(-1)):
            out[qi, k] = s
        ctx.stages.progress(Progress("rerank pairs", min(start + step, len(pairs)), len(pairs)))
    ctx.stages.end("rerank_pairs_s", t0)
    return out, fingerprint(spec, ctx.store), device


def _to_arrays(rankings: dict[str, list[tuple[str, float]]], qkeys: list[str], index_of: dict[str, int],
               depth: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.full((len(qkeys), depth), -1, dtype=np.int64)
    scores = np.full((len(qkeys), depth), -np.inf, dtype=np.float32)
    for qi, q in enumerate(qkeys):
        row = rankings.get(q, [])[:depth]
        if row:
            idx[qi, :len(row)] = [index_of[d] for d, _ in row]
            scores[qi, :len(row)] = [s for _, s in row]
    return idx, scores
