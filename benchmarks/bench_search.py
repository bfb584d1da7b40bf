"""Benchmark exact vs HNSW search (embtui.engine.search) to set EXACT_MAX_DOCS and the HNSW defaults.

Synthetic data shaped like all-MiniLM-L6-v2 output: d=384, L2-normalised float32, drawn from a
two-level gaussian mixture (topics -> subtopics -> points) whose within-cluster variation lives mostly
in a low-dimensional subspace, since real sentence embeddings are clustered and have low intrinsic
dimension (uniform random vectors are unrealistically hard for HNSW).

    /work/venv/bin/python benchmarks/bench_search.py                # full run, ~3-5 min on 2 cores
    /work/venv/bin/python benchmarks/bench_search.py --sizes 5000 20000 --queries 200

Prints a markdown table: exact batch time (all queries), HNSW build, HNSW batch search, single-query
p50 latency of both, recall@10 of HNSW vs exact, index size; then recall@10 vs expansion_search
for every N (a search-time knob, measured on the same index without rebuilding).

    python benchmarks/bench_search.py --vs-faiss                    # exact search vs FAISS, ~4 min

``--vs-faiss``: embtui's exact search against ``faiss.IndexFlatIP`` (the benchmark's baseline only;
faiss is not a dependency of embtui) on the same vectors: a batch of 1,000 queries, k = 100, d = 384,
float32, L2-normalised, uniformly random directions (gaussian, then normalised: speed does not
depend on the data here, only the candidate count does, and random data is the harder case for
the threshold test), at 100k and 1M documents. Both sides get the same numpy arrays; FAISS's
``add`` (a copy) is outside the timing. The rows alternate within each round (R rounds, each
starting one row later; best time per row) and the ratio is taken within the same run, so a shared
machine's load hits both alike.
It also times float16 documents (embtui converts each chunk to float32; FAISS IndexScalarQuantizer
QT_fp16) at 100k and, with --memmap-dir, a read-only np.memmap of the 1M file (page cache warm);
prints which BLAS kernel numpy and FAISS use (threadpoolctl); compares embtui's top-100 with a
float64 full-matrix ranking on a sample of queries, and reports how much of it FAISS returns.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from embtui.engine.hnsw import HnswConfig, HnswIndex, recall_at_k  # noqa: E402
from embtui.engine.search import EXACT_MAX_DOCS, exact_search  # noqa: E402

D = 384
EF_SWEEP = (32, 64, 128, 256)


def make_data(n: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Docs and queries from the same mixture; queries get extra noise (a query/document gap).

    Calibrated so cosine statistics resemble MiniLM retrieval: query->top-1 doc ~0.5, query->10th
    doc ~0.43, median query/doc pair ~0.08.
    """
    rng = np.random.default_rng(seed)
    n_topics, n_sub, latent = 50, 10_000, 128
    topics = rng.standard_normal((n_topics, D)).astype(np.float32)
    subs = topics[rng.integers(0, n_topics, n_sub)] + 0.8 * rng.standard_normal((n_sub, D)).astype(np.float32)
    basis = rng.standard_normal((latent, D)).astype(np.float32) / np.sqrt(latent)
    common = rng.standard_normal(D).astype(np.float32)  # shared offset: embeddings are anisotropic

    def sample(m: int, iso: float) -> np.ndarray:
        out = np.empty((m, D), dtype=np.float32)
        for s in range(0, m, 50_000):
            e = min(s + 50_000, m)
            v = subs[rng.integers(0, n_sub, e - s)] + 0.6 * common
            v += 1.2 * (rng.standard_normal((e - s, latent)).astype(np.float32) @ basis)
            v += iso * rng.standard_normal((e - s, D)).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            out[s:e] = v
        return out

    return sample(n, 0.6), sample(n_queries, 1.2)


def p50_ms(fn, queries: np.ndarray, reps: int) -> float:
    times = []
    for i in range(reps):
        q = queries[i % len(queries)][None, :]
        t = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def random_unit(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, D), dtype=np.float32)
    for s in range(0, n, 100_000):
        e = min(s + 100_000, n)
        v = rng.standard_normal((e - s, D), dtype=np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        out[s:e] = v
    return out


def vs_faiss(sizes: list[int], n_queries: int, k: int, repeat: int, memmap_dir: str | None) -> None:
    import faiss  # the benchmark's baseline only
    from threadpoolctl import threadpool_info

    print(f"cores={os.cpu_count()} d={D} Q={n_queries} k={k} numpy {np.__version__} faiss {faiss.__version__} "
          f"faiss omp threads {faiss.omp_get_max_threads()}")
    for lib in threadpool_info():
        print(f"  {lib['internal_api']} {lib.get('version')} kernel={lib.get('architecture', '-')} "
              f"threads={lib['num_threads']} ({os.path.basename(lib['filepath'])})")
    env = " ".join(f"{v}={os.environ[v]}" for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                     "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS") if v in os.environ)
    print(f"  env: {env or 'no OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE/OPENBLAS_NUM_THREADS/OMP_NUM_THREADS set'}")
    queries = random_unit(n_queries, seed=1)
    print("\n| N | variant | embtui (s) | FAISS (s) | FAISS / embtui | top-100 equal to reference | "
          "FAISS top-100 overlap |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n in sizes:
        docs = random_unit(n, seed=n)
        flat = faiss.IndexFlatIP(D)
        flat.add(docs)
        fns = {
            "faiss": lambda: flat.search(queries, k)[::-1],
            "ip": lambda: exact_search(queries, docs, k, metric="ip"),
            "cos": lambda: exact_search(queries, docs, k, metric="cos"),
        }
        pairs = [("float32, metric ip", "ip", "faiss"), ("float32, metric cos", "cos", "faiss")]
        if n <= 200_000:
            docs16 = docs.astype(np.float16)
            sq = faiss.IndexScalarQuantizer(D, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
            sq.train(docs16.astype(np.float32))
            sq.add(docs16.astype(np.float32))
            fns["faiss16"] = lambda: sq.search(queries, k)[::-1]
            fns["ip16"] = lambda: exact_search(queries, docs16, k, metric="ip")
            pairs.append(("float16 documents, ip (FAISS: SQ fp16)", "ip16", "faiss16"))
        if memmap_dir is not None and n > 200_000:
            path = os.path.join(memmap_dir, f"bench-docs-{n}.npy")
            np.save(path, docs)
            mm = np.load(path, mmap_mode="r")
            fns["ipmm"] = lambda: exact_search(queries, mm, k, metric="ip")
            pairs.append(("float32 np.memmap (page cache warm), ip", "ipmm", "faiss"))
        best = dict.fromkeys(fns, float("inf"))
        out: dict = {}
        names = list(fns)
        for r in range(repeat):
            for name in names[r % len(names):] + names[:r % len(names)]:  # each round starts one later
                fn = fns[name]
                out[name] = None
                t = time.perf_counter()
                out[name] = fn()
                best[name] = min(best[name], time.perf_counter() - t)
        # a sample of queries against the whole float64 matrix, ranked by score then row (the tie rule)
        sample = np.arange(0, n_queries, max(1, n_queries // 20))
        refs: dict = {}
        for label, ours, theirs in pairs:
            src = docs16 if ours == "ip16" else docs
            if ours == "ip16" or "f32" not in refs:
                full = np.empty((len(sample), n))
                q64 = queries[sample].astype(np.float64)
                for a in range(0, n, 100_000):
                    full[:, a:a + 100_000] = q64 @ src[a:a + 100_000].astype(np.float64).T
                refs["f16" if ours == "ip16" else "f32"] = np.lexsort(
                    (np.broadcast_to(np.arange(n), full.shape), -full), axis=-1)[:, :k]
                del full
            ref = refs["f16" if ours == "ip16" else "f32"]
            idx = out[ours][0]
            equal = float((idx[sample] == ref).all(axis=1).mean())
            fidx = out[theirs][0]
            overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(idx.tolist(), fidx.tolist())])
            print(f"| {n:,} | {label} | {best[ours]:.2f} | {best[theirs]:.2f} | {best[theirs] / best[ours]:.2f}x "
                  f"| {equal:.0%} of sampled queries | {overlap:.4f} |", flush=True)
        if memmap_dir is not None and n > 200_000:
            del mm, fns
            os.unlink(path)
        del flat, docs
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vs-faiss", action="store_true", help="exact search vs faiss.IndexFlatIP (see above)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--memmap-dir", default=None, help="--vs-faiss: also time a memmap of the 1M file here")
    ap.add_argument("--sizes", type=int, nargs="+", default=[5_000, 20_000, 50_000, 100_000, 200_000])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    if args.vs_faiss:
        sizes = args.sizes if args.sizes != ap.get_default("sizes") else [100_000, 1_000_000]
        k = args.k if args.k != ap.get_default("k") else 100
        vs_faiss(sizes, args.queries, k, args.repeat, args.memmap_dir)
        return

    cfg = HnswConfig()
    print(f"cores={os.cpu_count()} d={D} Q={args.queries} k={args.k} config={cfg.to_dict()} "
          f"EXACT_MAX_DOCS={EXACT_MAX_DOCS}\n")
    print("| N | exact batch (s) | exact 1q p50 (ms) | HNSW build (s) | HNSW batch (s) | HNSW 1q p50 (ms) "
          "| build+batch (s) | recall@10 | index MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    t_all = time.perf_counter()
    sweep: list[tuple[int, int, float, float]] = []
    for n in args.sizes:
        docs, queries = make_data(n, args.queries, seed=n)
        exact_search(queries[:50], docs, args.k)  # warm BLAS / page in
        t = time.perf_counter()
        exact_idx, _ = exact_search(queries, docs, args.k)
        t_exact = time.perf_counter() - t
        ex_p50 = p50_ms(lambda q: exact_search(q, docs, args.k), queries, reps=15 if n >= 100_000 else 40)

        t = time.perf_counter()
        index = HnswIndex.build(docs, cfg)
        t_build = time.perf_counter() - t
        t = time.perf_counter()
        hnsw_idx, _ = index.search(queries, args.k)
        t_hnsw = time.perf_counter() - t
        hn_p50 = p50_ms(lambda q: index.search(q, args.k), queries, reps=200)
        rec = recall_at_k(hnsw_idx, exact_idx, args.k)
        for ef in EF_SWEEP:
            index._index.expansion_search = ef
            t = time.perf_counter()
            got, _ = index.search(queries, args.k)
            sweep.append((n, ef, recall_at_k(got, exact_idx, args.k), time.perf_counter() - t))
        index._index.expansion_search = cfg.expansion_search
        print(f"| {n:,} | {t_exact:.2f} | {ex_p50:.1f} | {t_build:.1f} | {t_hnsw:.3f} | {hn_p50:.2f} "
              f"| {t_build + t_hnsw:.1f} | {rec:.4f} | {index.nbytes / 2**20:.0f} |", flush=True)

    print(f"\nrecall@{args.k} and HNSW batch search time vs expansion_search (same index; "
          f"connectivity={cfg.connectivity}, expansion_add={cfg.expansion_add}):\n")
    print("| N | " + " | ".join(f"ef={ef}" for ef in EF_SWEEP) + " |")
    print("|---:|" + "---:|" * len(EF_SWEEP))
    for n in args.sizes:
        cells = [f"{r:.4f} ({dt:.3f}s)" for m, _, r, dt in sweep if m == n]
        print(f"| {n:,} | " + " | ".join(cells) + " |")
    print(f"\ntotal {time.perf_counter() - t_all:.0f}s")


if __name__ == "__main__":
    main()
