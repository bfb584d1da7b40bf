"""Evaluation runs: retrieve (encode -> index -> search, or a lexical index) -> score, for one model on
one project split, stored as a run. What retrieving means for each kind of model is a retriever's
business (embtui/engine/retrievers/); this module holds no kind-specific branch."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import embtui
from embtui.engine.metrics import DEFAULT_KS, MetricResult, check_ks, evaluate, evaluate_indices
from embtui.engine.models import ModelSpec, resolve_source
from embtui.engine.progress import CancelToken, Progress, ProgressCallback, no_progress
from embtui.engine.retrievers import RetrievalContext, retriever_for
from embtui.engine.hnsw import HnswConfig
from embtui.engine.search import tie_order_for
from embtui.errors import Cancelled, EmbtuiError, resource_error
from embtui.store import Corpus, RunInfo, Store

INDEX_KINDS = ("auto", "exact", "hnsw")


@dataclass(frozen=True)
class EvalRequest:
    """What to evaluate and how. ``depth`` is how many results per query are kept (and exported)."""

    project: str
    model: ModelSpec
    split: str = "test"
    device: str | None = None
    index: str = "auto"
    hnsw: HnswConfig = field(default_factory=HnswConfig)
    ks: tuple[int, ...] = DEFAULT_KS
    ignore_identical_ids: bool = False
    depth: int | None = None
    cache_dtype: str = "float32"
    chunk_texts: int | None = None  # texts per committed cache chunk (resume granularity)
    max_in_memory_bytes: int | None = None  # larger corpus matrices are memory-mapped from disk
    # judged queries with no relevant document: counted as 0 like trec_eval (False) or left out
    skip_unanswerable: bool = False
    # where the corpus is encoded: "local" (this process, or one worker per device when ``device``
    # names several) or "ray" (tasks on the Ray cluster at ``ray_address``); the numbers are the same
    executor: str = "local"
    ray_address: str | None = None

    def __post_init__(self) -> None:
        from embtui.engine.executors import EXECUTORS

        if self.executor not in EXECUTORS:
            raise EmbtuiError(f"unknown executor '{self.executor}'", f"use one of {', '.join(EXECUTORS)}")
        if self.index not in INDEX_KINDS:
            raise EmbtuiError(f"unknown index '{self.index}'", f"use one of {', '.join(INDEX_KINDS)}")
        object.__setattr__(self, "ks", check_ks(self.ks))
        if self.depth is not None and (isinstance(self.depth, bool) or not isinstance(self.depth, int)
                                       or self.depth < 1):
            raise EmbtuiError(f"result depth {self.depth!r} must be a positive integer")

    @property
    def result_depth(self) -> int:
        return max(max(self.ks), self.depth or 100)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (for job files); ``from_dict`` reverses it."""
        return {"project": self.project, "model": self.model.to_dict(), "split": self.split,
                "device": self.device, "index": self.index, "hnsw": self.hnsw.to_dict(),
                "ks": list(self.ks), "ignore_identical_ids": self.ignore_identical_ids,
                "depth": self.depth, "cache_dtype": self.cache_dtype, "chunk_texts": self.chunk_texts,
                "max_in_memory_bytes": self.max_in_memory_bytes,
                "skip_unanswerable": self.skip_unanswerable, "executor": self.executor,
                "ray_address": self.ray_address}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvalRequest":
        data = dict(data)
        data["model"] = ModelSpec.from_dict(data["model"])
        data["hnsw"] = HnswConfig.from_dict(data.get("hnsw") or {})
        data["ks"] = tuple(data.get("ks") or DEFAULT_KS)
        return cls(**data)


@dataclass(frozen=True)
class EvalResult:
    run: RunInfo
    metrics: MetricResult
    rankings: dict[str, list[tuple[str, float]]]


def versions() -> dict[str, str]:
    """Versions that can change results, read from package metadata (imports nothing heavy)."""
    out = {"embtui": embtui.__version__, "python": platform.python_version()}
    for pkg in ("torch", "sentence-transformers", "transformers", "usearch", "bm25s", "numpy", "duckdb"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def corpus_hash(corpus: Corpus) -> str:
    """sha256 over (doc_id, blake2b-128 of its encode text) in doc_id order: the texts' hashes
    are the ones the document encode uses, computed once per corpus."""
    from embtui.engine.encode import corpus_text_hashes

    h = hashlib.sha256()
    for doc_id, digest in zip(corpus.ids, corpus_text_hashes(corpus)):
        h.update(doc_id.encode() + b"\0" + digest)
    return h.hexdigest()[:24]


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / (1024 * 1024)


def _gpu_peak_mb(device: str | None) -> float | None:
    if not device or not device.startswith("cuda") or "torch" not in sys.modules:
        return None
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**20


class _Stages:
    """Forwards progress events and records how long each stage took."""

    def __init__(self, progress: ProgressCallback) -> None:
        self.progress = progress
        self.timings: dict[str, float] = {}
        self.current = "starting"
        self._since = time.perf_counter()
        self._begun = self._since

    def start(self, stage: str, total: int = 0) -> float:
        self.current = stage
        self.progress(Progress(stage, 0, total))
        self._since = time.perf_counter()
        return self._since

    def end(self, name: str, t0: float) -> None:
        self.timings[name] = round(time.perf_counter() - t0, 4)

    def cut_short(self) -> dict[str, Any]:
        """The stages that finished, the one that was running and how long it had run: what a
        failed or cancelled run keeps, so a run cut short still says where its time went."""
        now = time.perf_counter()
        return {**self.timings, "cut_at": self.current, "cut_stage_s": round(now - self._since, 4),
                "total_s": round(now - self._begun, 4)}


def _index_config(req: EvalRequest) -> dict[str, Any]:
    return {"kind": req.index, "depth": req.result_depth, "ignore_identical_ids": req.ignore_identical_ids}


def open_run(store: Store, req: EvalRequest, *, job_id: str | None = None) -> int:
    """Create the 'running' row of one evaluation, inline or (with ``job_id``, linked in the same
    transaction) for a detached job: the one place a run row is made. A wrong model path or id
    fails here, before the row exists."""
    resolve_source(req.model)
    return store.create_run(req.project, req.split, req.model.name, model_spec=req.model.to_dict(),
                            model_fingerprint=None, device=req.device or req.model.device,
                            index_config=_index_config(req), versions=versions(), job_id=job_id)


def run_evaluation(store: Store, req: EvalRequest, *, progress: ProgressCallback | None = None,
                   cancel: CancelToken | None = None, run_id: int | None = None) -> EvalResult:
    """Evaluate one model on one split and store everything as a run (status failed/cancelled on error)."""
    progress = progress or no_progress
    cancel = cancel or CancelToken()
    stages = _Stages(progress)

    t0 = stages.start("load data")
    qrels = store.qrels(req.project, req.split)
    queries = store.queries(req.project, req.split)
    corpus = store.corpus(req.project, lazy=True)  # the ids; texts are read a window at a time
    if not len(corpus):
        raise EmbtuiError(f"project '{req.project}' has no documents")
    stages.end("load_data_s", t0)

    device = req.device or req.model.device
    index_config = _index_config(req)
    if run_id is None:
        run_id = open_run(store, req)
    try:
        result = _evaluate(store, req, run_id, corpus, queries, qrels, stages, cancel, device,
                           index_config)
    except Cancelled:
        store.fail_run(run_id, "cancelled", status="cancelled", timings=stages.cut_short())
        raise
    except BaseException as exc:
        fault = (resource_error(exc, _writing(store, stages.current), at=store.ws.root)
                 if isinstance(exc, Exception) else None)
        try:
            store.fail_run(run_id, str(fault) if fault else f"{type(exc).__name__}: {exc}",
                           timings=stages.cut_short())
        except Exception:  # noqa: BLE001 - e.g. the disk is full: the original error says why
            if fault is None:
                raise
        if fault is not None and fault is not exc:
            raise fault from exc
        raise
    finally:
        (store.ws.runs_dir / f"run-{run_id}-documents.f32.npy").unlink(missing_ok=True)
    return result


def _evaluate(store: Store, req: EvalRequest, run_id: int, corpus: Corpus, queries: dict[str, str],
              qrels: dict[str, dict[str, int]], stages: _Stages, cancel: CancelToken, device: str,
              index_config: dict[str, Any]) -> EvalResult:
    t_start = time.perf_counter()
    spec = req.model
    qids = list(queries)
    qtexts = [queries[q] for q in qids]
    # no ranking is longer than the corpus: a huge k or depth costs what the corpus size does
    keep = min(req.result_depth, len(corpus))
    depth = min(keep + (1 if req.ignore_identical_ids else 0), len(corpus))
    tie_order = tie_order_for(corpus.ids)
    info: dict[str, Any] = {"documents": len(corpus), "queries": len(qids),
                            "corpus_hash": corpus_hash(corpus)}
    if keep < req.result_depth:  # index_config keeps the depth asked for; info the one searched
        info["depth_searched"] = keep
        info["depth_note"] = depth_note(req, len(corpus))
    retrieval = retriever_for(spec).retrieve(RetrievalContext(
        store=store, req=req, run_id=run_id, corpus=corpus, query_texts=qtexts, depth=depth,
        tie_order=tie_order, stages=stages, cancel=cancel, device=device, info=info,
        index_config=index_config))
    idx, scores = retrieval.idx, retrieval.scores
    fp, used_device = retrieval.fingerprint, retrieval.device

    cancel.check()
    t0 = stages.start("score", len(qids))
    rankings = _rankings(qids, corpus.ids, idx, scores, req.ignore_identical_ids, keep)
    holes = idx < 0
    if req.ignore_identical_ids or (holes.any() and (np.diff(holes.astype(np.int8), axis=1) < 0).any()):
        # a query's own id dropped, or padding inside a ranking: score the id lists
        result = evaluate(qrels, rankings, ks=req.ks, skip_unanswerable=req.skip_unanswerable)
    else:  # the search's own arrays, vectorised (equal to the above, tests/test_metrics.py)
        result = evaluate_indices(qrels, qids, corpus.ids, idx[:, :keep], ks=req.ks,
                                  skip_unanswerable=req.skip_unanswerable)
    stages.end("metrics_s", t0)
    n_q = max(len(qids), 1)
    if "search_s" in stages.timings:
        stages.timings["query_latency_ms"] = round(1000 * stages.timings["search_s"] / n_q, 4)
    if spec.truncate_dim is not None or spec.quantize is not None:  # a cheaper variant: its retention
        full = float_run_of(store, req, fp)
        info["retention"] = ({"against_run": full.id, **retention(result.aggregate, full.metrics)}
                             if full else None)
    info["scored"] = len(result.scored)
    info["skipped"] = len(result.skipped)
    info["skipped_reasons"] = _count_reasons(result.skipped)
    info["unanswerable"] = len(result.unanswerable)
    info["skip_unanswerable"] = req.skip_unanswerable
    info["summary"] = result.summary()
    info["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    gpu = _gpu_peak_mb(used_device)
    if gpu is not None:
        info["peak_gpu_mb"] = round(gpu, 1)
    stages.timings["total_s"] = round(time.perf_counter() - t_start + stages.timings.get("load_data_s", 0), 4)
    store.finish_run(run_id, metrics=result.aggregate, query_metrics=result.per_query,
                     rankings=rankings, timings=stages.timings, info=info,
                     device=used_device, model_fingerprint=fp,
                     index_config=index_config)
    return EvalResult(store.get_run(run_id), result, rankings)


_CHEAPER = ("truncate_dim", "quantize", "rescore", "name", "batch_size", "device")


def float_run_of(store: Store, req: EvalRequest, fingerprint: str | None) -> RunInfo | None:
    """The latest finished run of the same model on the same split with full float32 vectors
    (no truncation, no quantisation): what a cheaper variant's retention is measured against."""
    if fingerprint is None:
        return None

    def key(spec: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in spec.items() if k not in _CHEAPER}

    want = key(req.model.to_dict())
    for run in reversed(store.list_runs(project=req.project, split=req.split, status="done")):
        spec = run.model_spec
        if (run.model_fingerprint == fingerprint and spec.get("truncate_dim") is None
                and spec.get("quantize") is None and key(spec) == want
                and run.index_config.get("kind") in ("exact", "hnsw")):
            return run
    return None


def retention(cheap: dict[str, float], full: dict[str, float]) -> dict[str, float]:
    """metric -> cheap / full, for the metrics both have (a full value of 0 gives no ratio)."""
    return {m: round(cheap[m] / full[m], 6) for m in cheap if m in full and full[m] > 0}


def depth_note(req: EvalRequest, documents: int) -> str | None:
    """One line saying that k/depth were capped at the corpus size, or None when they were not."""
    if req.result_depth <= documents:
        return None
    what = f"k {max(req.ks)}" if max(req.ks) >= (req.depth or 0) else f"depth {req.depth}"
    return (f"{what} is more than the {documents} documents of project '{req.project}': each query "
            f"ranks all {documents} (metrics @k past that are computed exactly, as trec_eval does)")


def _writing(store: Store, stage: str) -> str:
    """What a stage writes, for a disk-full message."""
    if stage.startswith("encode "):
        return f"encoding {stage[7:]} (writing the embedding cache in {store.ws.cache_dir})"
    if stage == "build index":
        return f"building the index (writing it in {store.ws.index_dir})"
    return f"the '{stage}' step (writing in the workspace {store.ws.root})"


def _rankings(qids: list[str], doc_ids: list[str], idx: np.ndarray, scores: np.ndarray,
              ignore_identical: bool, depth: int) -> dict[str, list[tuple[str, float]]]:
    out: dict[str, list[tuple[str, float]]] = {}
    for qi, q in enumerate(qids):
        row = []
        for i, s in zip(idx[qi].tolist(), scores[qi].tolist()):
            if i < 0:
                continue
            d = doc_ids[i]
            if ignore_identical and d == q:
                continue
            row.append((d, s))
        out[q] = row[:depth]
    return out


def _count_reasons(skipped: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for reason in skipped.values():
        counts[reason] = counts.get(reason, 0) + 1
    return counts


def check_run_file(path: str | Path) -> Path:
    """Fail now, in one line, if a TREC run file cannot be written at ``path`` (a folder, a
    missing or unwritable parent folder): called before a run is created, not after it is stored."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise EmbtuiError(f"--run-file {path} is a folder", f"give a file name, e.g. {p / 'run.trec'}")
    parent = p.absolute().parent
    if not parent.exists():
        raise EmbtuiError(f"--run-file {path}: the folder {parent} does not exist",
                          f"create it first (mkdir -p {parent}) or pick another path")
    if not parent.is_dir():
        raise EmbtuiError(f"--run-file {path}: {parent} is not a folder", "pick another path")
    if not os.access(parent, os.W_OK):
        raise EmbtuiError(f"--run-file {path}: cannot write in {parent}", "pick a writable folder")
    return p


def write_trec_run(path: str | Path, rankings: dict[str, list[tuple[str, float]]], tag: str,
                   depth: int | None = None) -> int:
    """Write a TREC run file (``qid Q0 docid rank score tag``); returns the number of lines.

    Scores are written with full precision so trec_eval reproduces the same order, ties included.
    """
    tag = "".join(ch if not ch.isspace() else "_" for ch in tag) or "embtui"
    n = 0
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for qid, row in rankings.items():
                for rank, (doc, score) in enumerate(row[:depth] if depth else row, 1):
                    f.write(f"{qid} Q0 {doc} {rank} {score!r} {tag}\n")
                    n += 1
        tmp.replace(path)
    except OSError as exc:  # e.g. the disk filled up: leave no half-written file behind
        tmp.unlink(missing_ok=True)
        raise resource_error(exc, f"writing the run file {path}") or exc
    return n
