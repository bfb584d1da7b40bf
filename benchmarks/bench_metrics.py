"""Benchmark: embtui metrics vs pytrec_eval on 10,000 queries x 1,000 ranked results.

Run: python benchmarks/bench_metrics.py [--queries N] [--depth D] [--repeat R]
Prints a markdown table (best-of-R seconds, ratio vs pytrec_eval) and checks that the
aggregates agree to 1e-9.
"""

from __future__ import annotations

import argparse
import gc
import platform
import time

import numpy as np
import pytrec_eval

from embtui.engine.metrics import evaluate, evaluate_indices, evaluate_run, rank_run

MEASURES = {"ndcg_cut.10", "map_cut.100", "recall.100", "P.10", "recip_rank"}
METRICS = ["ndcg@10", "map@100", "recall@100", "p@10", "mrr@1000"]
# pytrec_eval name -> embtui name (recip_rank on the full run = mrr at the run depth)
PAIRS = {"ndcg_cut_10": "ndcg@10", "map_cut_100": "map@100", "recall_100": "recall@100", "P_10": "p@10"}


def build(n_queries: int, depth: int, n_docs: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    pool = [f"doc{i}" for i in range(n_docs)]
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for q in range(n_queries):
        qid = f"q{q}"
        ids = rng.choice(n_docs, size=depth + 8, replace=False)
        # ~5 relevant (grade 1..3) and ~3 judged non-relevant; most judged docs are retrieved
        n_rel = int(rng.integers(1, 10))
        grades = rng.integers(1, 4, size=n_rel).tolist() + [0, 0, 0]
        judged = ids[: len(grades)] if rng.random() < 0.8 else ids[-len(grades):]
        qrels[qid] = {pool[d]: int(g) for d, g in zip(judged.tolist(), grades)}
        scores = rng.random(depth + 8)
        boost = np.zeros(depth + 8)  # relevant docs tend to score higher, so the metrics are not ~0
        boost[: len(grades)] = np.array(grades) * 0.3 * (rng.random(len(grades)) < 0.7)
        if judged[0] != ids[0]:
            boost[:] = 0.0
        scores = np.round(scores + boost, 3)[:depth].tolist()  # rounding leaves many ties
        run[qid] = dict(zip([pool[d] for d in ids[:depth].tolist()], scores))
    return qrels, run


def best_of(repeat: int, fn):
    times, out = [], None
    for _ in range(repeat):
        out = None
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--depth", type=int, default=1_000)
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    t0 = time.perf_counter()
    qrels, run = build(args.queries, args.depth, args.docs)
    ranked = rank_run(run)
    print(f"built {args.queries} queries x {args.depth} results in {time.perf_counter() - t0:.1f}s")

    def trec():
        res = pytrec_eval.RelevanceEvaluator(qrels, MEASURES).evaluate(run)
        return {m: float(np.mean([r[m] for r in res.values()])) for m in [*PAIRS, "recip_rank"]}

    t_trec, ref = best_of(args.repeat, trec)
    t_run, res_run = best_of(args.repeat, lambda: evaluate_run(qrels, run, metrics=METRICS))
    t_eval, res_eval = best_of(args.repeat, lambda: evaluate(qrels, ranked, metrics=METRICS))
    t_rank, _ = best_of(args.repeat, lambda: rank_run(run))
    # the search's own output: a [queries, depth] matrix of corpus positions (built outside the timing)
    pool = [f"doc{i}" for i in range(args.docs)]
    at = {d: i for i, d in enumerate(pool)}
    qids = list(ranked)
    mat = np.array([[at[d] for d, _ in ranked[q]] for q in qids], dtype=np.int64)
    t_idx, res_idx = best_of(args.repeat, lambda: evaluate_indices(qrels, qids, pool, mat, metrics=METRICS,
                                                                  doc_index=at))

    # every query has a relevant judgment and a ranking here, so the means are over the same set
    for res in (res_run, res_eval, res_idx):
        assert len(res.scored) == args.queries and not res.missing, res.summary()
        for trec_name, name in PAIRS.items():
            assert abs(res.aggregate[name] - ref[trec_name]) < 1e-9, (name, res.aggregate[name], ref[trec_name])
        assert abs(res.aggregate["mrr@1000"] - ref["recip_rank"]) < 1e-9

    print()
    print(f"{args.queries:,} queries x {args.depth:,} results, best of {args.repeat} "
          f"({platform.processor() or platform.machine()}, numpy {np.__version__})")
    print()
    print("| step | seconds | vs pytrec_eval |")
    print("|---|---:|---:|")
    print(f"| pytrec_eval RelevanceEvaluator + evaluate | {t_trec:.2f} | 1.00x |")
    print(f"| embtui evaluate_run (dict run, ranks judged docs) | {t_run:.2f} | {t_trec / t_run:.1f}x faster |")
    print(f"| embtui evaluate (pre-ranked lists) | {t_eval:.2f} | {t_trec / t_eval:.1f}x faster |")
    print(f"| embtui evaluate_indices (the search's index matrix, as embtui eval scores it) | {t_idx:.2f} | "
          f"{t_trec / t_idx:.1f}x faster |")
    print(f"| embtui rank_run (full trec_eval ordering, for reference) | {t_rank:.2f} | {t_trec / t_rank:.1f}x |")
    print()
    print(f"aggregates agree with pytrec_eval to 1e-9: ndcg@10 = {res_run.aggregate['ndcg@10']:.6f}")


if __name__ == "__main__":
    main()
