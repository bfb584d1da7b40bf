"""Understanding the data, timed: the profile, the projection (PCA; UMAP when umap-learn is
installed) and drift, on SciFact with all-MiniLM-L6-v2 and on a 100,000-document synthetic corpus
(words drawn from SciFact's vocabulary; 384-d vectors from a Gaussian mixture seeded into the
embedding cache, so the 100k figures are embtui's own work on cached embeddings, not encoding).
Also the drift "Must show" figures: two random halves of SciFact's 1,109 claims, SciFact claims
against Natural Questions (tests/data/nq_questions.txt, or the full 3,610 with --nq FILE), and a
query log whose third week mixes web questions into claims (per-week verdicts).

Each step runs in this process; peak memory is the resident-set peak above the step's start,
sampled every 10 ms. Usage: python benchmarks/bench_data.py WORKSPACE [--nq FILE] [--skip-100k]
(WORKSPACE with SciFact as 'scifact', made if missing; MiniLM's corpus vectors cached on first use)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, SCIFACT, machine  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
MINILM = "all-MiniLM-L6-v2"
ROWS: list[list[str]] = []


@contextmanager
def measured(name: str, what: str):
    import psutil

    proc = psutil.Process()
    start = proc.memory_info().rss
    peak = [start]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            stop.wait(0.01)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    yield
    secs = time.perf_counter() - t0
    stop.set()
    t.join()
    ROWS.append([name, what, f"{secs:.2f}", f"{(peak[0] - start) / 2**20:.0f}"])
    print(f"  {name} · {what}: {secs:.2f} s, +{(peak[0] - start) / 2**20:.0f} MB", file=sys.stderr)


def synthetic(store, n: int, seed: int = 0) -> None:
    """Project 'synth100k': n documents of SciFact words (Zipf-ish by their SciFact frequency), 300
    queries; MiniLM-keyed cache filled with mixture vectors for documents and queries."""
    import pyarrow as pa

    from embtui.engine.cache import hash_texts
    from embtui.engine.encode import Encoder
    from embtui.engine.models import resolve_spec

    if store.project_exists("synth100k"):
        return
    rng = np.random.default_rng(seed)
    words, counts = np.unique(" ".join(store.corpus("scifact").encode_texts()).lower().split(), return_counts=True)
    p = counts / counts.sum()
    lens = np.clip(rng.lognormal(5.2, 0.45, n).astype(int), 20, 1200)
    draws = rng.choice(len(words), int(lens.sum()), p=p)
    docs, pos = [], 0
    for i, L in enumerate(lens):
        docs.append(" ".join(words[draws[pos:pos + L]]))
        pos += L
    qtexts = [" ".join(words[rng.choice(len(words), 12, p=p)]) for _ in range(300)]
    ids = [f"s{i:06d}" for i in range(n)]
    qrels = {"split": [], "query_id": [], "doc_id": [], "grade": []}
    for qi in range(300):
        for d in rng.choice(n, 2, replace=False):
            qrels["split"].append("test"); qrels["query_id"].append(f"q{qi}")
            qrels["doc_id"].append(ids[d]); qrels["grade"].append(1)
    store.save_project("synth100k", documents=pa.table({"doc_id": ids, "title": [""] * n, "text": docs}),
                       queries=pa.table({"query_id": [f"q{i}" for i in range(300)], "text": qtexts,
                                         "metadata": pa.array([None] * 300, pa.string())}),
                       qrels=pa.table(qrels), source="synthetic")
    enc = Encoder(resolve_spec(MINILM, store), store.ws.cache_dir, store=store)
    centres = rng.normal(0, 1, (20, 384)).astype(np.float32)
    for role, texts in (("document", store.corpus("synth100k").encode_texts()), ("query", qtexts)):
        lab = rng.integers(0, 20, len(texts))
        v = centres[lab] + rng.normal(0, 1.5, (len(texts), 384)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        hashes = hash_texts(texts)
        uniq = {}
        for h, i in zip(hashes, range(len(texts))):
            uniq.setdefault(h, i)
        cache = enc.cache(role)
        missing = {hashes[j] for j in cache.missing(hashes)}
        keep = [i for h, i in uniq.items() if h in missing]
        for s in range(0, len(keep), 20000):
            part = keep[s:s + 20000]
            cache.append([hashes[i] for i in part], v[part])


def cold(store) -> None:
    """Forget cached projections, so a projection step measures the projection itself."""
    import shutil

    shutil.rmtree(Path(store.ws.cache_dir) / "projections", ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workspace")
    ap.add_argument("--nq", default=str(REPO / "tests" / "data" / "nq_questions.txt"),
                    help="questions of another collection, one per line (or NQ's question<TAB>answers)")
    ap.add_argument("--skip-100k", action="store_true")
    a = ap.parse_args()
    from embtui.api.data import build_space, drift, inspect
    from embtui.api.workspace import Store

    store = Store.open(a.workspace)
    if not store.project_exists("scifact"):
        from embtui.api.projects import import_beir

        import_beir(store, SCIFACT, "scifact")
    try:
        import umap  # noqa: F401
        has_umap = True
    except ImportError:
        has_umap = False
    print(f"# understanding the data, {machine()}", file=sys.stderr)
    # warm: MiniLM's corpus and query vectors in the cache (the figures below are on cached embeddings)
    build_space(store, "scifact", MINILM, split=None)
    with measured("SciFact (5,183 docs, 1,109 queries)", "profile (MiniLM tokenizer, near-duplicates)"):
        prof = inspect(store, "scifact", [MINILM])
    m = prof["models"][0]
    cold(store)
    with measured("SciFact (5,183 docs, 1,109 queries)", "projection PCA + space statistics (k=8)"):
        build_space(store, "scifact", MINILM, split=None, seed=1)
    if has_umap:
        with measured("SciFact (5,183 docs, 1,109 queries)", "projection UMAP (+ statistics)"):
            build_space(store, "scifact", MINILM, method="umap", split=None, seed=1)
        with measured("SciFact (5,183 docs, 1,109 queries)", "the same UMAP again, from the projection cache"):
            build_space(store, "scifact", MINILM, method="umap", split=None, seed=1)
    with measured("SciFact (5,183 docs, 1,109 queries)", "drift: random halves of the claims"):
        halves = drift(store, "scifact", MINILM, "queries@half1", "queries@half2", save=False)
    lines = [x.split("\t")[0].strip() for x in Path(a.nq).read_text(encoding="utf-8").splitlines() if x.strip()]
    store.save_query_log("scifact", "nq", lines, [None] * len(lines), replace=True)
    drift(store, "scifact", MINILM, "queries", "log:nq", save=False)  # encodes the questions once
    with measured("SciFact (5,183 docs, 1,109 queries)", f"drift: claims vs {len(lines):,} NQ questions"):
        other = drift(store, "scifact", MINILM, "queries", "log:nq", save=False)
    claims = list(store.queries("scifact").values())
    random.Random(7).shuffle(claims)
    ref, rest = claims[:550], claims[550:]
    texts = rest[:150] + rest[150:300] + rest[300:450] + lines[:150]
    t0 = 1_764_547_200
    stamps = ([t0 + i * 600 for i in range(150)] + [t0 + 7 * 86400 + i * 600 for i in range(150)]
              + [t0 + 14 * 86400 + i * 600 for i in range(300)])
    store.save_query_log("scifact", "ref550", ref, [None] * len(ref), replace=True)
    store.save_query_log("scifact", "weeks", texts, stamps, replace=True)
    drift(store, "scifact", MINILM, "log:ref550", "log:weeks", save=False)
    with measured("SciFact (5,183 docs, 1,109 queries)", "drift per week (3 weeks, 600 queries)"):
        weeks = drift(store, "scifact", MINILM, "log:ref550", "log:weeks", window="week", save=False)
    if not a.skip_100k:
        with measured("synthetic 100,000 docs", "build the project and seed the cache (setup, not embtui work)"):
            synthetic(store, 100_000)
        with measured("synthetic 100,000 docs", "profile (MiniLM tokenizer, near-duplicates over 100k)"):
            inspect(store, "synth100k", [MINILM])
        cold(store)
        with measured("synthetic 100,000 docs", "projection PCA + space statistics (k=8)"):
            build_space(store, "synth100k", MINILM, split=None, max_points=100_000)
        if has_umap:
            with measured("synthetic 100,000 docs", "projection UMAP (+ statistics)"):
                build_space(store, "synth100k", MINILM, method="umap", split=None, max_points=100_000)
        with measured("synthetic 100,000 docs", "drift: corpus halves (1,000 sampled per side)"):
            drift(store, "synth100k", MINILM, "docs@half1", "docs@half2", save=False)
    print(f"# understanding the data, {machine()}")
    print("| data | step | seconds | peak memory above start (MB) |")
    print("|---|---|---|---|")
    for r in ROWS:
        print("| " + " | ".join(r) + " |")
    t = m["truncation"]
    print(f"\nSciFact at MiniLM's {t['max_length']} tokens: {t['truncated']:,} of {prof['documents']:,} documents "
          f"truncated ({t['rate']:.1%}); relevant {t['relevant_truncated']}/{t['relevant']} ({t['relevant_rate']:.1%}); "
          f"{t['tokens_lost_share']:.1%} of tokens unseen; near-duplicate pairs at 0.95: {m['near_duplicates']['pairs']}")
    for name, r in (("halves", halves), ("claims vs NQ", other)):
        print(f"drift {name}: MMD² {r['mmd']['mmd2']:.4f} p {r['mmd']['p_value']:.4f}, AUC {r['auc']:.3f}, "
              f"PSI {r['psi']:.3f}, centroid shift {r['centroid_shift']:.4f}, drifted {r['drifted']}")
    print("per week: " + json.dumps([{k: w[k] for k in ("window", "n", "mmd_p", "auc", "psi", "drifted")}
                                     for w in weeks["windows"]], default=lambda x: round(x, 4)))


if __name__ == "__main__":
    main()
