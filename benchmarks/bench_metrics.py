"""Benchmark: embtui metrics vs pytrec_eval on 10,000 queries x 1,000 ranked results.

Run: python benchmarks/bench_metrics.py [--queries N] [--depth D] [--repeat R]

What is timed: every row gets the same qrels ({query: {doc: grade}}, ~8 judgments a query, 200,000
documents) and the same ranking, and returns the five aggregate metrics (nDCG@10, MAP@100,
recall@100, P@10, MRR over the full depth). The rows alternate within each round (round after
round, R rounds, best time per row), so a shared machine's load hits all rows alike; ratios are
against the pytrec_eval row of the same run.

* pytrec_eval: RelevanceEvaluator(qrels) + evaluate(run dict) + the means (its qrels preparation
  included); "evaluate only" reuses one RelevanceEvaluator built outside the timing.
* embtui evaluate_run / evaluate: the dict run / the pre-ranked id lists, qrels as the mapping.
* embtui evaluate_indices: the search's own output, a [queries, depth] int64 matrix of corpus
  positions built outside the timing, and the corpus' {doc id: position} dict (embtui eval has
  one). "from the qrels mapping" includes all qrels preparation (flattening the mapping, looking up
  every judged document's position): what one `embtui eval` pays. "QrelsArrays prepared once"
  leaves that one-time preparation out (QrelsArrays made, and its positions looked up, before the
  timing): what each further scoring of the same split against the same corpus pays.

Checks that every path's aggregates agree with pytrec_eval to 1e-9.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import time

import numpy as np
import pytrec_eval

from embtui.engine.metrics import QrelsArrays, evaluate, evaluate_indices, evaluate_run, rank_run

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


def rounds(repeat: int, fns: dict):
    """Run every fn once per round, in turn, ``repeat`` rounds; best time and last output of each."""
    best = dict.fromkeys(fns, float("inf"))
    out: dict = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            out[name] = None
            gc.collect()
            t0 = time.perf_counter()
            out[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best, out


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

    evaluator = pytrec_eval.RelevanceEvaluator(qrels, MEASURES)

    def trec_prepared():
        res = evaluator.evaluate(run)
        return {m: float(np.mean([r[m] for r in res.values()])) for m in [*PAIRS, "recip_rank"]}

    # the search's own output: a [queries, depth] matrix of corpus positions (built outside the timing)
    pool = [f"doc{i}" for i in range(args.docs)]
    at = {d: i for i, d in enumerate(pool)}
    qids = list(ranked)
    mat = np.array([[at[d] for d, _ in ranked[q]] for q in qids], dtype=np.int64)
    prepared = QrelsArrays(qrels)
    prepared.positions(at)
    t, res = rounds(args.repeat, {
        "trec": trec,
        "trec_prepared": trec_prepared,
        "run": lambda: evaluate_run(qrels, run, metrics=METRICS),
        "eval": lambda: evaluate(qrels, ranked, metrics=METRICS),
        "idx": lambda: evaluate_indices(qrels, qids, pool, mat, metrics=METRICS, doc_index=at),
        "idx_prepared": lambda: evaluate_indices(prepared, qids, pool, mat, metrics=METRICS, doc_index=at),
        "rank": lambda: rank_run(run),
    })
    ref = res["trec"]
    assert res["trec_prepared"] == ref
    t_trec = t["trec"]

    # every query has a relevant judgment and a ranking here, so the means are over the same set
    for name in ("run", "eval", "idx", "idx_prepared"):
        r = res[name]
        assert len(r.scored) == args.queries and not r.missing, r.summary()
        for trec_name, metric in PAIRS.items():
            assert abs(r.aggregate[metric] - ref[trec_name]) < 1e-9, (metric, r.aggregate[metric], ref[trec_name])
        assert abs(r.aggregate["mrr@1000"] - ref["recip_rank"]) < 1e-9

    def row(label: str, key: str, base: float = t_trec) -> str:
        return f"| {label} | {t[key]:.3f} | {base / t[key]:.1f}x |"

    print()
    print(f"{args.queries:,} queries x {args.depth:,} results, best of {args.repeat} alternating rounds "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, "
          f"load average {os.getloadavg()[0]:.2f})")
    print()
    print("| step | seconds | pytrec_eval time / this |")
    print("|---|---:|---:|")
    print(row("pytrec_eval RelevanceEvaluator(qrels) + evaluate + means", "trec"))
    print(row("pytrec_eval evaluate + means (evaluator built once, outside the timing)", "trec_prepared"))
    print(row("embtui evaluate_run (dict run, ranks judged docs)", "run"))
    print(row("embtui evaluate (pre-ranked lists)", "eval"))
    print(row("embtui evaluate_indices, from the qrels mapping (all qrels preparation included; as embtui eval)",
              "idx"))
    print(row("embtui evaluate_indices, QrelsArrays prepared once (outside the timing)", "idx_prepared"))
    print(f"| same, vs pytrec_eval with its evaluator built once | {t['idx_prepared']:.3f} | "
          f"{t['trec_prepared'] / t['idx_prepared']:.1f}x |")
    print(row("embtui rank_run (full trec_eval ordering, for reference)", "rank"))
    print()
    print(f"aggregates agree with pytrec_eval to 1e-9: ndcg@10 = {res['idx'].aggregate['ndcg@10']:.6f}")


if __name__ == "__main__":
    main()
