"""Recall@k vs query time (the Pareto frontier) of USearch HNSW against FAISS IndexHNSWFlat.

Same clustered MiniLM-like vectors as bench_search.py (d=384, L2-normalised float32), a batch of
Q queries, k=10; the ground truth is embtui's exact search. Families (one index each, built once):

* ``faiss-M{m}``        faiss.IndexHNSWFlat(d, M, inner product), efConstruction = --efc, searched
                        at every efSearch (FAISS's OpenMP threads: all cores).
* ``usearch-f32-c{c}``  usearch Index(metric cos, dtype f32, connectivity c, expansion_add --efc),
                        built with embtui's add_in_batches (all cores above 20k rows), searched with
                        ``Index.search(q, k, threads=0)`` at every expansion_search; also threads=1
                        and threads=2 (does the batch search use the cores?) and embtui's own
                        ``HnswIndex.search`` (k+8 fetched, tie rule) at the same settings.
* ``usearch-{f16,i8}-c{c}``  the same graph settings with f16 / i8 stored vectors, searched for
                        ``r*k`` candidates and rescored exactly against the float32 vectors (numpy
                        gather + dot, included in the time) down to k, for each rescoring factor r.
                        r=1 is the raw quantised ranking. USearch searches with max(ef, r*k).

Timing: every (family, ef, variant) point is one batch call of all Q queries; each round runs every
point once in a rotated order, the best wall time and the least process CPU time (all threads) of
--rounds are kept, so a shared machine's load hits all points alike; quote ratios within one run.
On a busy machine the CPU time is the steadier cost; CPU / wall > 1 shows a batch ran on several
cores. ``--single-thread`` searches on one thread on both sides (FAISS omp 1, USearch threads=1).
Builds run once each (alternating FAISS / USearch), with wall and CPU seconds; ``--build-only``
stops there. Prints markdown tables: builds (seconds, index bytes), all points, and by wall and by
CPU time: the per-family frontier, the cheapest point each side reaches for each recall target with
the USearch / FAISS ratio (also log-time interpolated between a family's ef steps) and each family's
interpolated cost; then the thread check.

    nice -n 10 .venv/bin/python benchmarks/bench_hnsw_pareto.py     # 100k docs; ~20 min on 2 idle cores
    nice -n 10 .venv/bin/python benchmarks/bench_hnsw_pareto.py --n 20000 --rounds 3 --connectivity 32

faiss is the benchmark's baseline only, not a dependency of embtui.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_search import D, make_data  # noqa: E402

from embtui.engine.hnsw import HnswConfig, HnswIndex, add_in_batches, recall_at_k  # noqa: E402
from embtui.engine.search import exact_search  # noqa: E402


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ------------------------------------------------------------------------------------------------
# builds


def build_faiss(docs: np.ndarray, m: int, efc: int):
    import faiss

    index = faiss.IndexHNSWFlat(docs.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = efc
    c = time.process_time()
    t = time.perf_counter()
    index.add(docs)
    dt = time.perf_counter() - t
    cpu = time.process_time() - c
    nbytes = int(faiss.serialize_index(index).size)
    return index, dt, cpu, nbytes


def build_usearch(docs: np.ndarray, dtype: str, c: int, efc: int):
    from usearch.index import Index

    index = Index(ndim=docs.shape[1], metric="cos", dtype=dtype, connectivity=c, expansion_add=efc,
                  expansion_search=64)
    c = time.process_time()
    t = time.perf_counter()
    add_in_batches(index, docs, 8192, dtype=np.float32)
    dt = time.perf_counter() - t
    cpu = time.process_time() - c
    return index, dt, cpu, int(index.serialized_length)


# ------------------------------------------------------------------------------------------------
# search callables: each returns [Q, k] row indices


def faiss_search(index, ef: int, k: int):
    import faiss

    params = faiss.SearchParametersHNSW()
    params.efSearch = ef

    def run(q: np.ndarray) -> np.ndarray:
        return index.search(q, k, params=params)[1]

    return run


def usearch_keys(res, n_q: int, count: int) -> np.ndarray:
    keys = np.asarray(res.keys).reshape(n_q, -1)[:, :count].astype(np.int64)
    counts = np.asarray(res.counts).reshape(n_q)
    return np.where(np.arange(keys.shape[1])[None, :] < counts[:, None], keys, -1)


def usearch_search(index, ef: int, k: int, threads: int):
    def run(q: np.ndarray) -> np.ndarray:
        index.expansion_search = ef
        return usearch_keys(index.search(q, k, threads=threads), len(q), k)

    return run


def usearch_rescored(index, ef: int, k: int, r: int, docs: np.ndarray, threads: int):
    count = k * r

    def run(q: np.ndarray) -> np.ndarray:
        index.expansion_search = ef
        cand = usearch_keys(index.search(q, count, threads=threads), len(q), count)
        if r == 1:
            return cand
        safe = np.maximum(cand, 0)
        scores = np.einsum("qd,qcd->qc", q, docs[safe])  # float32 gather + dot
        scores[cand < 0] = -np.inf
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
        return np.take_along_axis(cand, np.take_along_axis(part, order, 1), 1)

    return run


def embtui_search(hnsw: HnswIndex, ef: int, k: int, docs: np.ndarray | None = None):
    def run(q: np.ndarray) -> np.ndarray:
        hnsw._index.expansion_search = ef
        return hnsw.search(q, k, docs=docs)[0]

    return run


# ------------------------------------------------------------------------------------------------


def frontier(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Points (recall, seconds, label) not beaten by a faster point with at least their recall."""
    out, best = [], -1.0
    for rec, sec, label in sorted(points, key=lambda p: (p[1], -p[0])):
        if rec > best:
            out.append((rec, sec, label))
            best = rec
    return out


def cheapest(points: list[tuple[float, float, str]], target: float) -> tuple[float, float, str] | None:
    ok = [p for p in points if p[0] >= target]
    return min(ok, key=lambda p: p[1]) if ok else None


def interpolated(curve: list[tuple[float, float]], target: float) -> float | None:
    """Seconds at ``target`` recall on one family's (recall, seconds) curve ordered by ef:
    log-time linear in recall between the last point below and the first point at or above."""
    curve = sorted(curve, key=lambda p: p[1])
    prev = None
    for rec, sec in curve:
        if rec >= target:
            if prev is None or prev[0] >= rec:
                return sec
            f = (target - prev[0]) / (rec - prev[0])
            return math.exp(math.log(prev[1]) + f * (math.log(sec) - math.log(prev[1])))
        if prev is None or rec > prev[0]:
            prev = (rec, sec)
    return None


def report(keys: list, recall: dict, cost: dict, what: str, targets: list[float]) -> None:
    """Frontier, cheapest point per recall target and per-family interpolation, by ``cost`` (seconds)."""
    # the families a user would pick from: FAISS; USearch f32 threads=0; quantised with each rescoring
    fams: dict[str, list[tuple[float, float, str]]] = {}
    for key in keys:
        fam, ef, var = key
        if var.startswith("threads="):  # the thread check, not a family of its own
            continue
        label = fam if var == "main" else f"{fam} {var}"
        fams.setdefault(label, []).append((recall[key], cost[key], f"{label} ef={ef}"))
    side = {label: ("FAISS" if label.startswith("faiss") else "USearch") for label in fams}

    print(f"\n## By {what} time: frontier per family (points not beaten by a cheaper point of the family)\n")
    print(f"| family | frontier: recall@10 @ {what} ms per batch |")
    print("|---|---|")
    for label, pts in fams.items():
        cells = ", ".join(f"{lab.rsplit(' ', 1)[1]}: {r:.4f} @ {1e3 * s:.1f}" for r, s, lab in frontier(pts))
        print(f"| {label} | {cells} |")

    print(f"\n## By {what} time: cheapest point reaching each recall target\n")
    print(f"| target | FAISS: cheapest point | {what} s | USearch: cheapest point | {what} s | USearch / FAISS | "
          f"interpolated: FAISS {what} s | USearch {what} s | ratio |")
    print("|---:|---|---:|---|---:|---:|---:|---:|---:|")
    for target in targets:
        row = {}
        for s in ("FAISS", "USearch"):
            pts = [p for label, ps in fams.items() if side[label] == s for p in ps]
            row[s] = cheapest(pts, target)
            interp = [(interpolated([(r, t) for r, t, _ in ps], target), label)
                      for label, ps in fams.items() if side[label] == s]
            interp = [x for x in interp if x[0] is not None]
            row[s + "i"] = min(interp) if interp else None
        f, u, fi, ui = row["FAISS"], row["USearch"], row["FAISSi"], row["USearchi"]
        cell = lambda p: (f"{p[2]} ({p[0]:.4f})", f"{p[1]:.4f}") if p else ("not reached", "-")  # noqa: E731
        ratio = f"{u[1] / f[1]:.2f}" if f and u else "-"
        iratio = f"{ui[0] / fi[0]:.2f}" if fi and ui else "-"
        print(f"| {target} | {' | '.join(cell(f))} | {' | '.join(cell(u))} | {ratio} | "
              f"{(f'{fi[0]:.4f} ({fi[1]})' if fi else '-')} | {(f'{ui[0]:.4f} ({ui[1]})' if ui else '-')} | {iratio} |")

    print(f"\n## By {what} time: per family, interpolated seconds at each target and ratio to the best FAISS\n")
    print("| family | " + " | ".join(f"{what} s @ {t}" for t in targets) + " | "
          + " | ".join(f"/ FAISS @ {t}" for t in targets) + " |")
    print("|---|" + "---:|" * (2 * len(targets)))
    best_f = {}
    for t in targets:
        vals = [interpolated([(r, s) for r, s, _ in ps], t) for lab, ps in fams.items() if side[lab] == "FAISS"]
        vals = [v for v in vals if v is not None]
        best_f[t] = min(vals) if vals else None
    for label, ps in fams.items():
        vals = [interpolated([(r, s) for r, s, _ in ps], t) for t in targets]
        cells = [f"{v:.4f}" if v else "not reached" for v in vals]
        ratios = [f"{v / best_f[t]:.2f}" if v and best_f[t] else "-" for v, t in zip(vals, targets)]
        print(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--efc", type=int, default=128, help="efConstruction = expansion_add")
    ap.add_argument("--efs", type=int, nargs="+", default=[16, 24, 32, 48, 64, 96, 128, 192, 256])
    ap.add_argument("--connectivity", type=int, nargs="+", default=[32, 16], help="M = connectivity")
    ap.add_argument("--quantised", nargs="*", default=["f16", "i8"], help="USearch dtypes searched with rescoring")
    ap.add_argument("--quantised-connectivity", type=int, nargs="+", default=[32, 16])
    ap.add_argument("--rescore", type=int, nargs="+", default=[1, 2, 4], help="rescoring factors r (fetch r*k)")
    ap.add_argument("--threads-check", type=int, nargs="*", default=[1, 2],
                    help="also time USearch f32 with these search thread counts (0 is always timed)")
    ap.add_argument("--targets", type=float, nargs="+", default=[0.99, 0.995])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--single-thread", action="store_true",
                    help="search on one thread on both sides (FAISS omp 1, USearch threads=1); builds still use all")
    ap.add_argument("--build-only", action="store_true", help="only build (and time) the indexes")
    ap.add_argument("--seed", type=int, default=None, help="data seed (default: N, as bench_search)")
    args = ap.parse_args()

    import faiss
    import usearch
    from threadpoolctl import threadpool_info
    from usearch.index import Index

    k, n = args.k, args.n
    print(f"# HNSW Pareto: N={n:,} d={D} Q={args.queries} k={k} efC=expansion_add={args.efc} "
          f"rounds={args.rounds}")
    print(f"cores={os.cpu_count()} numpy {np.__version__} usearch {usearch.__version__} faiss {faiss.__version__} "
          f"(faiss omp threads {faiss.omp_get_max_threads()}, {faiss.get_compile_options().strip()})")
    print("usearch kernels: " + ", ".join(
        f"{dt}={Index(ndim=D, metric='cos', dtype=dt).hardware_acceleration}" for dt in ("f32", "f16", "i8")))
    for lib in threadpool_info():
        print(f"  {lib['internal_api']} {lib.get('version')} threads={lib['num_threads']} "
              f"({os.path.basename(lib['filepath'])})")
    print(f"load average at start: {loadavg()}", flush=True)

    t_all = time.perf_counter()
    docs, queries = make_data(n, args.queries, seed=n if args.seed is None else args.seed)
    truth, _ = exact_search(queries, docs, k)

    # builds, alternating FAISS / USearch per connectivity, then the quantised ones
    builds: list[tuple[str, float, float, int, str]] = []
    faiss_idx: dict[int, object] = {}
    us_idx: dict[tuple[str, int], object] = {}
    order: list[tuple[str, str, int]] = []
    for c in args.connectivity:
        order += [("faiss", "f32", c), ("usearch", "f32", c)]
    for c in args.quantised_connectivity:
        order += [("usearch", dt, c) for dt in args.quantised]
    for lib, dt, c in order:
        la = loadavg()
        if lib == "faiss":
            faiss_idx[c], sec, bcpu, nb = build_faiss(docs, c, args.efc)
            name = f"faiss-M{c}"
        else:
            us_idx[(dt, c)], sec, bcpu, nb = build_usearch(docs, dt, c, args.efc)
            name = f"usearch-{dt}-c{c}"
        builds.append((name, sec, bcpu, nb, la + " -> " + loadavg()))
        print(f"  built {name}: {sec:.1f} s, CPU {bcpu:.1f} s, {nb / 2**20:.1f} MiB (load {builds[-1][4]})",
              flush=True)

    print(f"\n## Builds (N={n:,}, efC=expansion_add={args.efc}; one build each, in this order)\n")
    print("| index | build s | build CPU s | CPU / wall | index MiB | bytes/doc | load avg before -> after |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, sec, bcpu, nb, la in builds:
        print(f"| {name} | {sec:.1f} | {bcpu:.1f} | {bcpu / sec:.2f} | {nb / 2**20:.1f} | {nb / n:.0f} | {la} |")
    if args.build_only:
        return

    threads = 1 if args.single_thread else 0  # USearch: 0 = all cores
    if args.single_thread:
        faiss.omp_set_num_threads(1)
        args.threads_check = []
    print(f"\nsearch threads: FAISS omp {faiss.omp_get_max_threads()}, USearch threads={threads} "
          f"(0 = all cores); 'main' below is that setting", flush=True)

    # the points: (family, ef, variant) -> callable
    points: dict[tuple[str, int, str], object] = {}
    for c, index in faiss_idx.items():
        for ef in args.efs:
            points[(f"faiss-M{c}", ef, "main")] = faiss_search(index, ef, k)
    for (dt, c), index in us_idx.items():
        fam = f"usearch-{dt}-c{c}"
        for ef in args.efs:
            if dt == "f32":
                points[(fam, ef, "main")] = usearch_search(index, ef, k, threads)
                for th in args.threads_check:
                    points[(fam, ef, f"threads={th}")] = usearch_search(index, ef, k, th)
                cfg = HnswConfig(connectivity=c, expansion_add=args.efc, expansion_search=ef)
                points[(fam, ef, "embtui HnswIndex.search")] = embtui_search(HnswIndex(index, cfg, D), ef, k)
            else:
                for r in args.rescore:
                    points[(fam, ef, f"rescore x{r}")] = usearch_rescored(index, ef, k, r, docs, threads)
                    if dt == "i8" and r > 1:  # embtui's own path: --hnsw-dtype i8 --hnsw-rescore r
                        cfg = HnswConfig(dtype="i8", connectivity=c, expansion_add=args.efc,
                                         expansion_search=ef, rescore=r)
                        points[(fam, ef, f"embtui HnswIndex.search x{r}")] = embtui_search(
                            HnswIndex(index, cfg, D), ef, k, docs)

    keys = list(points)
    recall: dict = {}
    for key in keys:  # warm-up and recall (deterministic for a fixed index and ef)
        recall[key] = recall_at_k(points[key](queries), truth, k)
    best = dict.fromkeys(keys, float("inf"))
    cpu = dict.fromkeys(keys, float("inf"))
    load_rounds: list[str] = []
    for rnd in range(args.rounds):
        shift = (rnd * max(1, len(keys) // args.rounds)) % len(keys)
        for key in keys[shift:] + keys[:shift]:
            c = time.process_time()  # all threads of this process
            t = time.perf_counter()
            points[key](queries)
            best[key] = min(best[key], time.perf_counter() - t)
            cpu[key] = min(cpu[key], time.process_time() - c)
        load_rounds.append(loadavg())
        print(f"  round {rnd + 1}/{args.rounds} done, load {load_rounds[-1]}", flush=True)

    # ---------------------------------------------------------------------------------- tables
    print(f"\n## All points: recall@{k} vs exact, best of {args.rounds} batch times ({args.queries} queries)\n")
    print("CPU s: the least process CPU time (all threads) of the rounds; CPU / wall > 1 means the batch ran on "
          "more than one core at once.\n")
    print("| family | ef | variant | recall@10 | batch s | µs/query | CPU s | CPU / wall |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for key in keys:
        fam, ef, var = key
        print(f"| {fam} | {ef} | {var} | {recall[key]:.4f} | {best[key]:.4f} | {1e6 * best[key] / args.queries:.0f} "
              f"| {cpu[key]:.4f} | {cpu[key] / best[key]:.2f} |")

    for cost, what in ((best, "wall"), (cpu, "CPU")):
        report(keys, recall, cost, what, args.targets)

    f32 = [key for key in keys if key[2] == "main" and "-f32-" in key[0]]
    if f32 and args.threads_check:
        print("\n## USearch batch search threads (f32): batch s with threads=0 (all cores) and others\n")
        print("| family | ef | threads=0 s | " + " | ".join(f"threads={t} s" for t in args.threads_check)
              + " | " + " | ".join(f"t{t} / t0" for t in args.threads_check) + " | embtui wrapper s | wrapper / t0 | "
              + " | ".join(f"CPU/wall t{t}" for t in [0] + args.threads_check) + " |")
        print("|---|---:|" + "---:|" * (3 * len(args.threads_check) + 4))
        for fam, ef, _ in f32:
            t0 = best[(fam, ef, "main")]
            ts = [best[(fam, ef, f"threads={t}")] for t in args.threads_check]
            w = best[(fam, ef, "embtui HnswIndex.search")]
            print(f"| {fam} | {ef} | {t0:.4f} | " + " | ".join(f"{x:.4f}" for x in ts) + " | "
                  + " | ".join(f"{x / t0:.2f}" for x in ts) + f" | {w:.4f} | {w / t0:.2f} | "
                  + " | ".join(f"{cpu[(fam, ef, v)] / best[(fam, ef, v)]:.2f}"
                               for v in ["main"] + [f"threads={t}" for t in args.threads_check]) + " |")

    print(f"\nload average per round: {'; '.join(load_rounds)}")
    print(f"total {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
