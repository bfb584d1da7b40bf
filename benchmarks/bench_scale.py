"""Scale: import and BM25 on synthetic BEIR corpora of 10k, 100k and 1M documents.

Each corpus is a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) made in a temp folder:
words drawn from a Zipf vocabulary of 500,000 made-up words, document lengths log-normal around
80 words (shorter than SciFact's abstracts, ~200), titles of 3-12 words, 1,000 queries of 4-12
words taken from one document each (that document judged relevant, plus two random ones judged 0).

Every measurement runs in its own child process (``--child STAGE``), so peak memory is the
child's own: ``ru_maxrss`` for the whole child, and for each step the resident-set peak sampled
every 10 ms. Stages per size:

  duckdb    DuckDB reading corpus.jsonl natively (CREATE TABLE t AS SELECT * FROM read_json(...)),
            the baseline the import is held to (<= 2x at 1M)
  import    embtui's import_beir into a fresh workspace (validation, dataset hash, one transaction)
  bm25      run_evaluation with bm25 on the imported project: index build, search, metrics
  plain     model2vec's own StaticModel.from_pretrained + encode of the same document texts
            (title + " " + text, read from corpus.jsonl): the baseline the encode stage is held to
  dense     run_evaluation with that static model (tokenlearn-static-model, 64-d, from
            benchmarks/fetch_models.py) and exact search: load, encode (model load, hashing,
            batches, checksummed cache chunks), search, metrics, each timed, and peak RSS

Usage: python benchmarks/bench_scale.py [--sizes 10000,100000,1000000] [--dir DIR] [--keep]
Prints one table (seconds, peak RSS MB) and the growth ratios between consecutive sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, machine  # noqa: E402

VOCAB = 500_000
MEAN_WORDS = 80
N_QUERIES = 1_000
SEED = 13

STATIC_MODEL = Path(os.environ.get("EMBTUI_TEST_MODELS", Path.home() / ".cache" / "embtui" / "models")) \
    / "tokenlearn-static-model"


# -- the synthetic corpus -------------------------------------------------------------------------
def _vocabulary(rng: np.random.Generator) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(3, 11, size=VOCAB)
    chars = letters[rng.integers(0, 26, size=int(lengths.sum()))]
    flat = "".join(chars.tolist())
    ends = np.cumsum(lengths)
    starts = ends - lengths
    # a few common English suffixes so the stemmer has work to do
    suffixes = ["", "", "", "s", "ing", "ed", "ation", "ly"]
    suf = rng.integers(0, len(suffixes), size=VOCAB)
    return [flat[a:b] + suffixes[s] for a, b, s in zip(starts.tolist(), ends.tolist(), suf.tolist())]


def make_corpus(folder: Path, n_docs: int, seed: int = SEED) -> dict[str, float]:
    """Write a BEIR folder of ``n_docs`` documents; returns its size figures."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    vocab = _vocabulary(rng)
    ranks = np.arange(1, VOCAB + 1, dtype=np.float64)
    cdf = np.cumsum(1.0 / ranks**1.07)
    cdf /= cdf[-1]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    q_rng = np.random.default_rng(seed + 1)
    query_docs = set(q_rng.choice(n_docs, size=min(N_QUERIES, n_docs), replace=False).tolist())
    queries: dict[int, str] = {}
    words_total = 0
    batch = 50_000
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as out:
        for start in range(0, n_docs, batch):
            n = min(batch, n_docs - start)
            lengths = np.clip(rng.lognormal(np.log(MEAN_WORDS) - 0.18, 0.6, size=n), 1, 2000).astype(np.int64)
            t_lengths = rng.integers(3, 13, size=n)
            total = int(lengths.sum() + t_lengths.sum())
            ids = np.searchsorted(cdf, rng.random(total))
            words = [vocab[i] for i in ids.tolist()]
            words_total += total
            pos = 0
            lines = []
            for j in range(n):
                tl, bl = int(t_lengths[j]), int(lengths[j])
                title = " ".join(words[pos:pos + tl])
                body = words[pos + tl:pos + tl + bl]
                pos += tl + bl
                doc = start + j
                if doc in query_docs:
                    k = int(q_rng.integers(4, 13))
                    at = int(q_rng.integers(0, max(1, len(body) - k)))
                    queries[doc] = " ".join(body[at:at + k])
                text = " ".join(body).capitalize() + "."
                lines.append(dumps({"_id": f"d{doc}", "title": title, "text": text}))
            out.write("\n".join(lines) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as out:
        for qi, doc in enumerate(sorted(queries)):
            out.write(dumps({"_id": f"q{qi}", "text": queries[doc]}) + "\n")
    with open(folder / "qrels" / "test.tsv", "w", encoding="utf-8") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        for qi, doc in enumerate(sorted(queries)):
            out.write(f"q{qi}\td{doc}\t1\n")
            for other in q_rng.choice(n_docs, size=2, replace=False).tolist():
                if other != doc:
                    out.write(f"q{qi}\td{other}\t0\n")
    mb = (folder / "corpus.jsonl").stat().st_size / 2**20
    return {"make_s": time.perf_counter() - t0, "corpus_mb": mb, "words_per_doc": words_total / n_docs}


# -- measuring in a child -------------------------------------------------------------------------
STEPS: dict[str, dict[str, float]] = {}


@contextmanager
def step(name: str):
    import psutil

    proc = psutil.Process()
    peak = [proc.memory_info().rss]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            stop.wait(0.01)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    try:
        yield
    finally:
        secs = time.perf_counter() - t0
        stop.set()
        t.join()
        STEPS[name] = {"s": round(secs, 3), "peak_mb": round(peak[0] / 2**20, 1)}


def child(stage: str, folder: Path, work: Path) -> dict:
    if stage == "duckdb":
        import duckdb

        work.mkdir(parents=True, exist_ok=True)
        db = work / "native.duckdb"
        db.unlink(missing_ok=True)
        con = duckdb.connect(str(db))
        with step("duckdb"):
            con.execute(f"CREATE TABLE t AS SELECT * FROM read_json('{folder / 'corpus.jsonl'}')")
            con.close()
        db.unlink(missing_ok=True)
    elif stage == "import":
        from embtui.data.beir import import_beir
        from embtui.store import Store

        shutil.rmtree(work / "ws", ignore_errors=True)
        store = Store.open(work / "ws")
        with step("import"):
            import_beir(store, folder, "scale")
    elif stage == "bm25":
        from embtui.engine.evaluate import EvalRequest, run_evaluation
        from embtui.engine.models import resolve_spec
        from embtui.store import Store

        store = Store.open(work / "ws")
        with step("bm25"):
            result = run_evaluation(store, EvalRequest("scale", resolve_spec("bm25", store)))
        timings = result.run.timings
        STEPS["bm25"].update({k: timings.get(k) for k in ("load_data_s", "index_build_s",
                                                         "search_s", "metrics_s")})
        STEPS["bm25"]["ndcg@10"] = result.metrics.aggregate.get("ndcg@10") if hasattr(
            result.metrics, "aggregate") else None
    elif stage == "plain":
        if not STATIC_MODEL.exists():
            return {"skipped": f"{STATIC_MODEL} is missing: run benchmarks/fetch_models.py"}
        from model2vec import StaticModel

        with open(folder / "corpus.jsonl") as f:
            rows = [json.loads(line) for line in f]
        texts = [((r.get("title") or "") + " " + (r.get("text") or "")).strip() for r in rows]
        del rows
        with step("plain"):
            model = StaticModel.from_pretrained(str(STATIC_MODEL))
            vecs = model.encode(texts, max_length=model.max_length, use_multiprocessing=False)
            vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    elif stage == "dense":
        if not STATIC_MODEL.exists():
            return {"skipped": f"{STATIC_MODEL} is missing: run benchmarks/fetch_models.py"}
        from embtui.engine.evaluate import EvalRequest, run_evaluation
        from embtui.engine.models import ModelSpec
        from embtui.store import Store

        store = Store.open(work / "ws")
        spec = ModelSpec(model=str(STATIC_MODEL), name="static")
        with step("dense"):
            result = run_evaluation(store, EvalRequest("scale", spec, index="exact"))
        timings = result.run.timings
        STEPS["dense"].update({k: timings.get(k) for k in (
            "load_data_s", "encode_documents_s", "encode_queries_s", "search_s", "metrics_s")})
        STEPS["dense"]["ndcg@10"] = result.metrics.aggregate.get("ndcg@10")
    else:
        raise SystemExit(f"unknown stage {stage}")
    out = dict(STEPS)
    out["maxrss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def run_child(stage: str, folder: Path, work: Path, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", stage, "--folder", str(folder), "--work", str(work)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--dir", default=None, help="where the corpora go (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the corpora and workspaces")
    ap.add_argument("--stages", default="duckdb,import,bm25,plain,dense")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--child", default=None)
    ap.add_argument("--folder", default=None)
    ap.add_argument("--work", default=None)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.folder), Path(args.work))))
        return

    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="embtui-scale-"))
    sizes = [int(s) for s in args.sizes.split(",")]
    stages = args.stages.split(",")
    print(f"# {machine()}; load average {os.getloadavg()[0]:.2f} at start", flush=True)
    results: dict[int, dict] = {}
    try:
        for n in sizes:
            folder = base / f"beir-{n}"
            work = base / f"work-{n}"
            work.mkdir(parents=True, exist_ok=True)
            if not (folder / "corpus.jsonl").exists():
                info = make_corpus(folder, n)
                print(f"made {n:,} docs: {info['corpus_mb']:.0f} MB, {info['words_per_doc']:.0f} "
                      f"words/doc in {info['make_s']:.1f} s", flush=True)
            row: dict = {}
            for stage in stages:
                row[stage] = run_child(stage, folder, work, args.timeout)
                print(f"  {n:,} {stage}: {json.dumps(row[stage])}", flush=True)
            results[n] = row
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(base, ignore_errors=True)
    print(f"\n# load average {os.getloadavg()[0]:.2f} at the end\n")
    print(table(results))


def _get(r: dict, stage: str, key: str, sub: str | None = None):
    s = r.get(stage, {})
    if sub:
        return (s.get(sub) or {}).get(key)
    return s.get(key)


def table(results: dict[int, dict]) -> str:
    cols = [
        ("duckdb read s", lambda r: _get(r, "duckdb", "s", "duckdb")),
        ("import s", lambda r: _get(r, "import", "s", "import")),
        ("import/duckdb", lambda r: (_get(r, "import", "s", "import") or 0) /
         (_get(r, "duckdb", "s", "duckdb") or float("nan")) if _get(r, "import", "s", "import") else None),
        ("import RSS MB", lambda r: _get(r, "import", "maxrss_mb")),
        ("duckdb RSS MB", lambda r: _get(r, "duckdb", "maxrss_mb")),
        ("bm25 index s", lambda r: _get(r, "bm25", "index_build_s", "bm25")),
        ("bm25 search s", lambda r: _get(r, "bm25", "search_s", "bm25")),
        ("bm25 metrics s", lambda r: _get(r, "bm25", "metrics_s", "bm25")),
        ("bm25 load s", lambda r: _get(r, "bm25", "load_data_s", "bm25")),
        ("bm25 RSS MB", lambda r: _get(r, "bm25", "maxrss_mb")),
        ("plain encode s", lambda r: _get(r, "plain", "s", "plain")),
        ("dense encode s", lambda r: _get(r, "dense", "encode_documents_s", "dense")),
        ("encode/plain", lambda r: (_get(r, "dense", "encode_documents_s", "dense") or 0) /
         (_get(r, "plain", "s", "plain") or float("nan")) if _get(r, "dense", "encode_documents_s", "dense") else None),
        ("dense search s", lambda r: _get(r, "dense", "search_s", "dense")),
        ("dense metrics s", lambda r: _get(r, "dense", "metrics_s", "dense")),
        ("dense total s", lambda r: _get(r, "dense", "s", "dense")),
        ("dense RSS MB", lambda r: _get(r, "dense", "maxrss_mb")),
    ]
    sizes = sorted(results)
    head = "| documents | " + " | ".join(c for c, _ in cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 1)]
    values = {n: [f(results[n]) for _, f in cols] for n in sizes}
    for n in sizes:
        lines.append(f"| {n:,} | " + " | ".join(
            _fmt(v, 0 if "MB" in c else 2) for (c, _), v in zip(cols, values[n])) + " |")
    for a, b in zip(sizes, sizes[1:]):
        ratios = []
        for i, (c, _) in enumerate(cols):
            va, vb = values[a][i], values[b][i]
            ratios.append(f"{vb / va:.1f}x" if va and vb and "/" not in c else "")
        lines.append(f"| growth {a:,}->{b:,} | " + " | ".join(ratios) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
