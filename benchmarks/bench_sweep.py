"""SciFact test: all-MiniLM-L6-v2 swept over truncate_dim 384/256/128/64 x float32/int8/binary x
rescore 1/4 from one encoding; every point checked against an independent computation on the same
inputs (the cached full vectors truncated and normalised in numpy, codes from sentence-transformers'
quantize_embeddings, plain numpy search, pytrec_eval) to 1e-4.

Then (``--codes``) int8/binary codes searched exactly and through USearch i8/b1 HNSW indexes over the
codes (``--hnsw-ef``): each exact point against the same numpy reference, each HNSW point's recorded
recall@10 against that exact reference recomputed here, with its index bytes per document; and
(``--depth``) a ``bm25 → rerank MiniLM`` pipeline at rerank depths 20/50/100, each point against
plain numpy rescoring of bm25's top-depth with the cached MiniLM vectors, scored by pytrec_eval.

Usage: python benchmarks/bench_sweep.py [WORKSPACE] [--demo] [--no-grid] [--codes] [--depth]
(a workspace where SciFact and MiniLM are already encoded, e.g. the one bench_pipelines.py used,
shows the sweep's own cost; ``--demo`` uses the bundled 400-document demo project instead)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SCIFACT, machine  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
MINILM = "all-MiniLM-L6-v2"


def reference(q, d, precision, k, rescore, tie):
    """Plain numpy, full score matrices (tests/test_quantized.py has the same, on random data)."""
    from sentence_transformers.util.quantization import quantize_embeddings

    if precision == "float32":
        s = q @ d.T
        return [np.lexsort((tie, -s[i].astype(np.float32)))[:k] for i in range(len(q))]
    ranges = np.vstack((d.min(0), d.max(0))) if precision == "int8" else None
    dc = quantize_embeddings(d, precision=precision, ranges=ranges)
    qc = quantize_embeddings(q, precision=precision, ranges=ranges)

    def bits(x):
        return np.unpackbits((x.astype(np.int16) + 128).astype(np.uint8), axis=1)

    if precision == "int8":
        cheap = qc.astype(np.int64) @ dc.astype(np.int64).T
    else:
        bd = bits(dc).astype(np.int32) * 2 - 1
        cheap = (bits(qc).astype(np.int32) * 2 - 1) @ bd.T  # dim - 2 * hamming
    out = []
    for i in range(len(q)):
        order = np.lexsort((tie, -cheap[i]))
        if rescore == 1:
            out.append(order[:k])
            continue
        cand = order[:k * rescore]
        if precision == "int8":
            steps = (ranges[1] - ranges[0]) / 255
            vecs = (dc[cand].astype(np.float64) + 128) * steps + ranges[0]
        else:
            vecs = bits(dc[cand]).astype(np.float64)
        s = (vecs @ q[i].astype(np.float64)).astype(np.float32)
        out.append(cand[np.lexsort((tie[cand], -s))][:k])
    return out


class Inputs:
    """The project's corpus, queries, judgments, tie order and cached MiniLM vectors."""

    def __init__(self, store, project: str) -> None:
        import pytrec_eval

        from embtui.api.models import ModelSpec
        from embtui.engine.encode import Encoder

        self.corpus = store.corpus(project)
        queries = store.queries(project, "test")
        self.qids = list(queries)
        enc = Encoder(ModelSpec(MINILM), store.ws.cache_dir, store=store)
        self.d_full = enc.encode(self.corpus.encode_texts(), "document")[0]
        self.q_full = enc.encode([queries[x] for x in self.qids], "query")[0]
        order = sorted(range(len(self.corpus.ids)), key=self.corpus.ids.__getitem__, reverse=True)
        self.tie = np.empty(len(order), dtype=np.int64)
        self.tie[order] = np.arange(len(order))
        self.qrels = store.qrels(project, "test")
        self.evaluator = pytrec_eval.RelevanceEvaluator(self.qrels, {"ndcg_cut.10", "recall.100"})

    def vectors(self, dim: int | None):
        d, q = self.d_full[:, :dim or self.d_full.shape[1]], self.q_full[:, :dim or self.q_full.shape[1]]
        return (q / np.linalg.norm(q, axis=1, keepdims=True), d / np.linalg.norm(d, axis=1, keepdims=True))

    def trec(self, run: dict) -> tuple[float, float]:
        res = self.evaluator.evaluate(run)
        return (float(np.mean([v["ndcg_cut_10"] for v in res.values()])),
                float(np.mean([v["recall_100"] for v in res.values()])))

    def rows_run(self, rows) -> dict:
        return {qid: {self.corpus.ids[i]: float(len(row) - j) for j, i in enumerate(row)}
                for qid, row in zip(self.qids, rows)}


def main() -> None:
    import argparse

    from embtui.api.models import ModelSpec
    from embtui.api.projects import import_beir
    from embtui.api.workspace import Store

    ap = argparse.ArgumentParser()
    ap.add_argument("workspace", nargs="?")
    ap.add_argument("--demo", action="store_true", help="the bundled 400-document demo project")
    ap.add_argument("--no-grid", action="store_true", help="skip the truncate x precision x rescore grid")
    ap.add_argument("--codes", action="store_true", help="int8/binary exact and USearch i8/b1 HNSW points")
    ap.add_argument("--depth", action="store_true", help="bm25 -> rerank MiniLM at depths 20/50/100")
    args = ap.parse_args()
    ws = Path(args.workspace) if args.workspace else Path(tempfile.mkdtemp(prefix="embtui-sweep-"))
    store = Store.open(ws)
    project = "demo" if args.demo else "scifact"
    if project not in [p.name for p in store.list_projects()]:
        src = Path(__file__).resolve().parents[1] / "embtui" / "demo" / "scifact-mini" if args.demo else SCIFACT
        import_beir(store, src, project)
    store.save_model(MINILM, ModelSpec(MINILM, device="cpu").to_dict())
    print(f"machine: {machine()}")
    print(f"project: {project} ({store.get_project(project).documents} documents)")
    if not args.no_grid:
        grid(store, project)
    if args.codes:
        codes(store, project)
    if args.depth:
        depths(store, project)


def grid(store, project: str) -> None:
    from embtui.api.evaluations import run_inline
    from embtui.api.sweeps import plan_sweep, sweep_points

    points = sweep_points([384, 256, 128, 64], ["float32", "int8", "binary"], [1, 4])
    t0 = time.perf_counter()
    outcomes = run_inline(plan_sweep(store, project, MINILM, points, split="test", device="cpu", force=True))
    wall = time.perf_counter() - t0
    inp = Inputs(store, project)
    corpus, qids, d_full, q_full, tie, evaluator = (inp.corpus, inp.qids, inp.d_full, inp.q_full, inp.tie,
                                                     inp.evaluator)

    print(f"sweep: {len(outcomes)} points in {wall:.1f} s wall "
          f"(documents encoded after the first point: "
          f"{sum(o.run.info['encode']['documents']['encoded'] for o in outcomes[1:])})")
    print(f"{'point':<34} {'ndcg@10':>8} {'indep.':>8} {'|diff|':>8} {'recall@100':>10} {'retention':>9} "
          f"{'bytes/doc':>9} {'search_ms/q':>11}")
    worst = 0.0
    for point, o in zip(points, outcomes):
        r = o.run
        dim = point.truncate_dim or d_full.shape[1]
        d, q = d_full[:, :dim], q_full[:, :dim]
        d = d / np.linalg.norm(d, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        rows = reference(q, d, point.precision, 100, point.rescore, tie)
        run = {qid: {corpus.ids[i]: float(100 - j) for j, i in enumerate(row)} for qid, row in zip(qids, rows)}
        res = evaluator.evaluate(run)
        ndcg = float(np.mean([v["ndcg_cut_10"] for v in res.values()]))
        rec = float(np.mean([v["recall_100"] for v in res.values()]))
        diff = max(abs(ndcg - r.metrics["ndcg@10"]), abs(rec - r.metrics["recall@100"]))
        worst = max(worst, diff)
        ret = (r.info.get("retention") or {}).get("ndcg@10")
        print(f"{r.model_name:<34} {r.metrics['ndcg@10']:>8.4f} {ndcg:>8.4f} {diff:>8.1e} "
              f"{r.metrics['recall@100']:>10.4f} {'' if ret is None else f'{ret:.3f}':>9} "
              f"{r.info.get('bytes_per_doc', ''):>9} {r.timings.get('query_latency_ms', 0):>11.3f}")
    print(f"largest difference from the independent computation: {worst:.1e}")
    assert worst < 1e-4


def codes(store, project: str) -> None:
    """int8/binary at full dimension, exact and through USearch i8/b1 indexes over the codes."""
    from embtui.api.evaluations import run_inline
    from embtui.api.sweeps import plan_sweep, sweep_points, sweep_rows
    from embtui.engine.hnsw import recall_at_k

    points = sweep_points([None], ["float32", "int8", "binary"], [1, 4], [None, 32, 128])
    t0 = time.perf_counter()
    outcomes = run_inline(plan_sweep(store, project, MINILM, points, split="test", device="cpu", force=True))
    wall = time.perf_counter() - t0
    rows = sweep_rows(points, outcomes)
    inp = Inputs(store, project)
    q, d = inp.vectors(None)
    print(f"\ncodes: {len(points)} points in {wall:.1f} s wall (documents encoded after the first point: "
          f"{sum(r['documents_encoded'] or 0 for r in rows[1:])})")
    print(f"{'point':<32} {'ndcg@10':>8} {'recall@100':>10} {'|diff|':>8} {'r@10 vs exact':>13} {'indep.':>7} "
          f"{'bytes/doc':>9} {'index B/doc':>11} {'build_s':>7} {'search_ms/q':>11}")
    worst = 0.0
    for point, row, o in zip(points, rows, outcomes):
        r = o.run
        ref = reference(q, d, point.precision, 100, point.rescore, inp.tie)
        stored = store.run_rankings(r.id)
        if point.hnsw_ef is None:  # exact: the metrics equal the numpy reference's
            ndcg, rec = inp.trec(inp.rows_run(ref))
            diff = max(abs(ndcg - r.metrics["ndcg@10"]), abs(rec - r.metrics["recall@100"]))
            indep, recorded = "", ""
        else:  # HNSW: the recorded recall@10 equals the overlap with the exact reference, computed here
            index_of = {x: i for i, x in enumerate(inp.corpus.ids)}
            approx = np.array([[index_of[x] for x, _ in stored[qid][:10]] for qid in inp.qids])
            mine = recall_at_k(approx, np.array([row_[:10] for row_ in ref]), 10)
            diff = abs(mine - row["ann_recall@10"])
            indep, recorded = f"{mine:.3f}", f"{row['ann_recall@10']:.3f}"
        worst = max(worst, diff)
        print(f"{r.model_name:<32} {r.metrics['ndcg@10']:>8.4f} {r.metrics['recall@100']:>10.4f} {diff:>8.1e} "
              f"{recorded:>13} {indep:>7} {row['bytes_per_doc'] or '':>9} {row['index_bytes_per_doc'] or '':>11} "
              f"{r.timings.get('index_build_s', 0):>7.2f} {r.timings.get('query_latency_ms', 0):>11.3f}")
    print(f"largest difference from the independent computation: {worst:.1e}")
    assert worst < 1e-4


def depths(store, project: str) -> None:
    """bm25 -> rerank MiniLM at depths 20/50/100 against numpy rescoring of bm25's top-depth."""
    from embtui.api.evaluations import plan_evaluation, run_inline
    from embtui.api.pipelines import make_pipeline
    from embtui.api.sweeps import plan_sweep, sweep_points, sweep_rows

    make_pipeline(store, "bm25>minilm", ["bm25"], rerank=[MINILM], rerank_depth=[100], replace=True)
    [bm25] = run_inline(plan_evaluation(store, project, ["bm25"], split="test", device="cpu"))
    first = store.run_rankings(bm25.run.id)
    points = sweep_points(depths=[20, 50, 100])
    t0 = time.perf_counter()
    outcomes = run_inline(plan_sweep(store, project, "bm25>minilm", points, split="test", device="cpu",
                                     force=True))
    wall = time.perf_counter() - t0
    rows = sweep_rows(points, outcomes)
    inp = Inputs(store, project)
    q, d = inp.vectors(None)
    index_of = {x: i for i, x in enumerate(inp.corpus.ids)}
    print(f"\ndepth: {len(points)} points in {wall:.1f} s wall (documents encoded: "
          f"{[r['documents_encoded'] for r in rows]}; MiniLM's corpus vectors may already be cached)")
    print(f"{'point':<24} {'ndcg@10':>8} {'indep.':>8} {'recall@100':>10} {'|diff|':>8} {'cand_recall':>11} "
          f"{'retention':>9} {'rerank_s':>8} {'total_s':>7}")
    worst = 0.0
    for point, row, o in zip(points, rows, outcomes):
        r = o.run
        run = {}
        for qi, qid in enumerate(inp.qids):
            cand = np.array([index_of[x] for x, _ in first[qid][:point.depth]])
            s = (d[cand] @ q[qi]).astype(np.float32)
            ranked = cand[np.lexsort((inp.tie[cand], -s))]
            run[qid] = {inp.corpus.ids[i]: float(len(ranked) - j) for j, i in enumerate(ranked)}
        ndcg, rec = inp.trec(run)
        diff = max(abs(ndcg - r.metrics["ndcg@10"]), abs(rec - r.metrics["recall@100"]))
        worst = max(worst, diff)
        ret = (row["retention"] or {}).get("ndcg@10")
        rerank_s = sum(st.get("seconds", 0) for st in r.info["pipeline"]["stages"] if st["stage"].startswith("rerank"))
        print(f"{r.model_name:<24} {r.metrics['ndcg@10']:>8.4f} {ndcg:>8.4f} {r.metrics['recall@100']:>10.4f} "
              f"{diff:>8.1e} {row['candidate_recall']:>11.4f} {'' if ret is None else f'{ret:.3f}':>9} "
              f"{rerank_s:>8.2f} {r.timings.get('total_s', 0):>7.2f}")
    print(f"largest difference from the independent computation: {worst:.1e}")
    assert worst < 1e-4


if __name__ == "__main__":
    main()
