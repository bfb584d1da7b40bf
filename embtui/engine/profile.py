"""Profiles: what a model costs on this machine, measured on the project's own texts — load time and
resident memory, encode throughput at several batch sizes, single-query end-to-end latency (encode
the query, search the whole corpus, as serving sees it) p50/p95/p99 after a warm-up, index build
time and bytes per document at each precision — and from these a cost model for N documents.

The cost model extrapolates and says so: exact search time grows linearly with the corpus (the
slope is measured between half the corpus and all of it), HNSW search is assumed to grow with
log(N), memory is bytes per document times N, and encode time is N over the best measured rate.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from embtui.errors import EmbtuiError

if TYPE_CHECKING:
    from embtui.engine.models import ModelSpec
    from embtui.store import Store

BATCH_SIZES = (1, 16, 64)
SAMPLE_DOCS = 512      # documents encoded per batch size for throughput (64 at batch size 1)
LATENCY_QUERIES = 200  # single queries timed end to end, after WARMUP untimed ones
WARMUP = 10
TOP_K = 10


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _percentiles(ms: Sequence[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=np.float64)
    return {"p50": round(float(np.percentile(a, 50)), 3), "p95": round(float(np.percentile(a, 95)), 3),
            "p99": round(float(np.percentile(a, 99)), 3), "mean": round(float(a.mean()), 3), "n": int(len(a))}


@dataclass(frozen=True)
class Profile:
    """One model (or pipeline stage) on one device at one precision, on one project's texts."""

    model: str
    kind: str                      # dense | bm25
    device: str
    precision: str                 # float32 | int8 | binary (how the vectors are searched)
    documents: int
    load_s: float
    load_rss_mb: float
    latency_ms: dict[str, float]   # single query end to end: p50, p95, p99, mean, n
    search_ms: dict[str, Any]      # per query, search only: {"exact": {"docs", "ms", "half_docs", "half_ms"}, "hnsw": ...}
    bytes_per_doc: dict[str, float]
    encode: dict[str, dict[str, float]] = field(default_factory=dict)  # role -> batch size -> texts/s
    index_build_s: float | None = None
    gpu_mb: float | None = None
    load_average: float | None = None  # the 1-minute load average when the profile finished

    @property
    def busy_machine(self) -> bool:
        """True when other work competed for the CPU (load average above half the cores): the
        latencies then say more about the machine than about the model."""
        return self.load_average is not None and self.load_average > max(1, (os.cpu_count() or 1)) / 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Profile":
        return cls(**data)

    @property
    def best_docs_per_s(self) -> float | None:
        rates = list((self.encode.get("documents") or {}).values())
        return max(rates) if rates else None

    def cost(self, n_docs: int) -> dict[str, Any]:
        """The cost model at ``n_docs`` documents (see the module docstring for what is assumed)."""
        out: dict[str, Any] = {"documents": int(n_docs), "measured_at": self.documents}
        rate = self.best_docs_per_s
        if rate:
            out["encode_hours"] = round(n_docs / rate / 3600, 3)
        out["memory_gb"] = {p: round(n_docs * b / 1e9, 3) for p, b in self.bytes_per_doc.items()}
        exact = self.search_ms.get("exact")
        if exact and exact.get("half_docs"):
            slope = (exact["ms"] - exact["half_ms"]) / max(exact["docs"] - exact["half_docs"], 1)
            out["exact_ms"] = round(max(exact["ms"] + max(slope, 0.0) * (n_docs - exact["docs"]), 0.0), 3)
            out["exact_ms_note"] = (f"linear in N, slope measured between {exact['half_docs']:,} and "
                                    f"{exact['docs']:,} documents")
        hnsw = self.search_ms.get("hnsw")
        if hnsw and hnsw.get("docs", 0) > 1:
            out["hnsw_ms"] = round(hnsw["ms"] * math.log(max(n_docs, 2)) / math.log(hnsw["docs"]), 3)
            out["hnsw_ms_note"] = f"assumed to grow with log(N), measured at {hnsw['docs']:,} documents"
        return out


def _time_search(fn: Callable[[int], Any], n: int) -> float:
    """Median milliseconds of ``fn(i)`` over ``n`` calls."""
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1000)
    return round(float(np.median(times)), 4)


def profile_model(store: "Store", project: str, spec: "ModelSpec", device: str | None = None, *,
                  n_queries: int = LATENCY_QUERIES, warmup: int = WARMUP,
                  batch_sizes: Sequence[int] = BATCH_SIZES, sample_docs: int = SAMPLE_DOCS,
                  max_docs: int | None = None, progress: Callable[[str], None] | None = None) -> Profile:
    """Measure ``spec`` on ``project`` (its documents — the first ``max_docs`` of them when given,
    with the cost model extrapolating from there — and the texts of its queries)."""
    say = progress or (lambda _msg: None)
    if spec.is_pipeline:
        raise EmbtuiError(f"'{spec.name}' is a pipeline: profile its models one by one",
                          "a pipeline's latency is the sum of its stages'")
    corpus = store.corpus(project)
    if not len(corpus):
        raise EmbtuiError(f"project '{project}' has no documents")
    queries = list(store.queries(project).values())
    if not queries:
        raise EmbtuiError(f"project '{project}' has no queries to time")
    texts = corpus.encode_texts()
    if max_docs is not None:
        if max_docs < 2:
            raise EmbtuiError(f"--max-docs {max_docs}: profile on at least 2 documents")
        texts = texts[:max_docs]
    timed = [queries[i % len(queries)] for i in range(warmup + n_queries)]
    if spec.is_bm25:
        prof = _profile_bm25(spec, texts, timed, warmup, say)
    else:
        prof = _profile_dense(store, spec, device, texts, timed, warmup, batch_sizes, sample_docs, say)
    return replace(prof, load_average=round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None)


def _profile_bm25(spec: "ModelSpec", texts: list[str], timed: list[str], warmup: int,
                  say: Callable[[str], None]) -> Profile:
    from embtui.engine.bm25 import BM25Retriever
    from embtui.engine.search import top_k_rows

    say("indexing bm25")
    rss0, t0 = _rss_mb(), time.perf_counter()
    index = BM25Retriever(texts, spec.bm25)
    load_s, load_mb = time.perf_counter() - t0, max(_rss_mb() - rss0, 0.0)
    tie = np.arange(len(texts), dtype=np.int64)

    def one(q: str, idx: BM25Retriever = index) -> Any:
        return top_k_rows(idx.scores(q)[None, :], TOP_K, tie[:idx.n_docs])

    say("timing single queries")
    for q in timed[:warmup]:
        one(q)
    lat = []
    for q in timed[warmup:]:
        t = time.perf_counter()
        one(q)
        lat.append((time.perf_counter() - t) * 1000)
    half = BM25Retriever(texts[:len(texts) // 2], spec.bm25) if len(texts) >= 4 else None
    n_s = min(50, len(timed) - warmup)
    exact: dict[str, Any] = {"docs": len(texts), "ms": _time_search(lambda i: one(timed[warmup + i]), n_s)}
    if half is not None:
        exact.update(half_docs=half.n_docs, half_ms=_time_search(lambda i: one(timed[warmup + i], half), n_s))
    return Profile(spec.name, "bm25", "cpu", "float32", len(texts), round(load_s, 4), round(load_mb, 1),
                   _percentiles(lat), {"exact": exact},
                   {"index": round(index.nbytes / max(len(texts), 1), 1)}, {}, round(load_s, 4))


def _profile_dense(store: "Store", spec: "ModelSpec", device: str | None, texts: list[str], timed: list[str],
                   warmup: int, batch_sizes: Sequence[int], sample_docs: int,
                   say: Callable[[str], None]) -> Profile:
    from embtui.engine.encode import Encoder, truncate
    from embtui.engine.hnsw import HnswConfig, HnswIndex
    from embtui.engine.quantized import bytes_per_doc, quantize_corpus, quantized_search
    from embtui.engine.search import exact_search

    encoder = Encoder(spec, store.ws.cache_dir, store=store, device=device)
    say(f"loading {spec.name}")
    rss0, t0 = _rss_mb(), time.perf_counter()
    model = encoder.model()
    load_s, load_mb = time.perf_counter() - t0, max(_rss_mb() - rss0, 0.0)
    used = encoder.device or "cpu"
    prompt_q = spec.prompt_for("query")
    prompt_d = spec.prompt_for("document")

    def enc(batch: list[str], bs: int, prompt: tuple[str | None, str | None]) -> np.ndarray:
        out = model.encode(batch, batch_size=bs, prompt=prompt[0], prompt_name=prompt[1],
                           convert_to_numpy=True, normalize_embeddings=spec.normalize, show_progress_bar=False)
        return truncate(np.asarray(out, dtype=np.float32), spec)

    rates: dict[str, dict[str, float]] = {"documents": {}, "queries": {}}
    for role, pool, prompt in (("documents", texts, prompt_d), ("queries", timed, prompt_q)):
        for bs in batch_sizes:
            sample = pool[:sample_docs if bs > 1 else min(sample_docs, 64)]
            say(f"encoding {len(sample)} {role} at batch size {bs}")
            enc(sample[:bs], bs, prompt)  # warm this batch shape
            t = time.perf_counter()
            enc(sample, bs, prompt)
            rates[role][str(bs)] = round(len(sample) / max(time.perf_counter() - t, 1e-9), 2)
    say("reading (or encoding) the corpus vectors")
    docs, _ = encoder.encode(texts, "document")
    dim = int(docs.shape[1])
    metric = "ip" if spec.normalize else "cos"
    tie = np.arange(len(texts), dtype=np.int64)
    qc = quantize_corpus(docs if spec.normalize else docs / np.linalg.norm(docs, axis=1, keepdims=True),
                         spec.quantize) if spec.quantize else None

    def search(v: np.ndarray, d: np.ndarray = docs, codes: Any = qc) -> Any:
        if codes is not None:
            return quantized_search(v, codes, TOP_K, rescore=spec.rescore, tie_order=tie[:len(codes.codes)])
        return exact_search(v, d, TOP_K, metric=metric, tie_order=tie[:len(d)])

    say("timing single queries")
    lat = []
    for i, q in enumerate(timed):
        t = time.perf_counter()
        search(enc([q], 1, prompt_q))
        if i >= warmup:
            lat.append((time.perf_counter() - t) * 1000)
    vecs = enc(timed[warmup:warmup + 50], 32, prompt_q)
    half = len(docs) // 2
    half_codes = quantize_corpus(docs[:half], spec.quantize) if spec.quantize and half else None
    exact = {"docs": len(docs), "ms": _time_search(lambda i: search(vecs[i:i + 1]), len(vecs))}
    if half:
        exact.update(half_docs=half, half_ms=_time_search(lambda i: search(vecs[i:i + 1], docs[:half], half_codes),
                                                          len(vecs)))
    say("building an HNSW index")
    t = time.perf_counter()
    index = HnswIndex.build(docs, HnswConfig(metric="cos" if metric == "cos" else "ip"))
    build_s = time.perf_counter() - t
    hnsw = {"docs": len(docs), "ms": _time_search(lambda i: index.search(vecs[i:i + 1], TOP_K, tie_order=tie),
                                                  len(vecs))}
    sizes = {p: float(bytes_per_doc(dim, None if p == "float32" else p)) for p in ("float32", "int8", "binary")}
    sizes["hnsw_f32"] = round(index.nbytes / max(len(docs), 1), 1)
    gpu = None
    if used.startswith("cuda"):
        import torch

        gpu = round(torch.cuda.max_memory_allocated(used) / 2**20, 1)
    encoder.unload()
    return Profile(spec.name, "dense", used, spec.quantize or "float32", len(docs), round(load_s, 4),
                   round(load_mb, 1), _percentiles(lat), {"exact": exact, "hnsw": hnsw}, sizes, rates,
                   round(build_s, 4), gpu)
