"""SciFact test: all-MiniLM-L6-v2 swept over truncate_dim 384/256/128/64 x float32/int8/binary x
rescore 1/4 from one encoding; every point checked against an independent computation on the same
inputs (the cached full vectors truncated and normalised in numpy, codes from sentence-transformers'
quantize_embeddings, plain numpy search, pytrec_eval) to 1e-4.

Usage: python benchmarks/bench_sweep.py [WORKSPACE]   (a workspace where SciFact and MiniLM are
already encoded, e.g. the one bench_pipelines.py used, shows the sweep's own cost)
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


def main() -> None:
    import pytrec_eval

    from embtui.api.evaluations import run_inline
    from embtui.api.models import ModelSpec
    from embtui.api.projects import import_beir
    from embtui.api.sweeps import plan_sweep, sweep_points
    from embtui.api.workspace import Store
    from embtui.engine.encode import Encoder

    ws = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="embtui-sweep-"))
    store = Store.open(ws)
    if "scifact" not in [p.name for p in store.list_projects()]:
        import_beir(store, SCIFACT, "scifact")
    store.save_model(MINILM, ModelSpec(MINILM, device="cpu").to_dict())
    points = sweep_points([384, 256, 128, 64], ["float32", "int8", "binary"], [1, 4])
    t0 = time.perf_counter()
    outcomes = run_inline(plan_sweep(store, "scifact", MINILM, points, split="test", device="cpu", force=True))
    wall = time.perf_counter() - t0

    corpus = store.corpus("scifact")
    queries = store.queries("scifact", "test")
    qids = list(queries)
    enc = Encoder(ModelSpec(MINILM), store.ws.cache_dir, store=store)
    d_full = enc.encode(corpus.encode_texts(), "document")[0]
    q_full = enc.encode([queries[x] for x in qids], "query")[0]
    order = sorted(range(len(corpus.ids)), key=corpus.ids.__getitem__, reverse=True)
    tie = np.empty(len(order), dtype=np.int64)
    tie[order] = np.arange(len(order))
    qrels = store.qrels("scifact", "test")
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"})

    print(f"machine: {machine()}")
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


if __name__ == "__main__":
    main()
