"""SciFact test: hybrid fusion and a rerank cascade against their parts, each checked against an
independent computation on the same inputs (plain-Python RRF over the parts' full rankings;
sentence-transformers rescoring of the bm25 candidates), scored by pytrec_eval; the hybrid's
significance against both parts (randomization test, Holm).

Usage: python benchmarks/bench_pipelines.py [WORKSPACE]   (default: a fresh temporary folder;
a workspace that already has SciFact encoded reuses its embedding cache)
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


def trec(qrels, run) -> dict[str, float]:
    import pytrec_eval

    res = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    return {"ndcg@10": float(np.mean([v["ndcg_cut_10"] for v in res.values()])),
            "recall@100": float(np.mean([v["recall_100"] for v in res.values()]))}


def top(scores: dict[str, float], k: int) -> dict[str, float]:
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], tuple(-ord(c) for c in kv[0])))
    return dict(ranked[:k])


def main() -> None:
    from sentence_transformers import SentenceTransformer

    from embtui.api.compare import compare_runs
    from embtui.api.evaluations import plan_evaluation, run_inline
    from embtui.api.models import ModelSpec
    from embtui.api.pipelines import make_pipeline
    from embtui.api.projects import import_beir
    from embtui.api.workspace import Store
    from embtui.engine.models import bundled_minilm_path

    ws = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="embtui-pipe-"))
    store = Store.open(ws)
    if "scifact" not in [p.name for p in store.list_projects()]:
        import_beir(store, SCIFACT, "scifact")
    store.save_model(MINILM, ModelSpec(MINILM, device="cpu").to_dict())

    def run(model: str, **req):
        t0 = time.perf_counter()
        [o] = run_inline(plan_evaluation(store, "scifact", [model], split="test", device="cpu",
                                         force=True, **req))
        return o.run, time.perf_counter() - t0

    rows = []
    bm25_full, t_bm25 = run("bm25", depth=1000)
    dense_full, t_dense = run(MINILM, depth=1000)
    rows += [("bm25", bm25_full, t_bm25), (MINILM, dense_full, t_dense)]
    for name, retrieve, kw in [("rrf(bm25, minilm)", ["bm25", MINILM], {"fuse": "rrf"}),
                               ("bm25@100 -> minilm", ["bm25"], {"rerank": [MINILM], "rerank_depth": [100]})]:
        make_pipeline(store, name, retrieve, replace=True, **kw)
        r, t = run(name)
        rows.append((name, r, t))
    qrels = store.qrels("scifact", "test")

    # independent (a): RRF k=60 over the parts' depth-1000 rankings, cut at 100
    full = [store.run_rankings(bm25_full.id), store.run_rankings(dense_full.id)]
    fused = {}
    for q in full[0]:
        s: dict[str, float] = {}
        for ranking in full:
            for rank, (d, _x) in enumerate(ranking.get(q, []), 1):
                s[d] = s.get(d, 0.0) + 1.0 / (60 + rank)
        fused[q] = top(s, 100)
    # independent (b): sentence-transformers rescoring of bm25's top 100
    model = SentenceTransformer(str(bundled_minilm_path()), device="cpu")
    queries = store.queries("scifact", "test")
    corpus = store.corpus("scifact")
    text_of = dict(zip(corpus.ids, corpus.encode_texts()))
    cand = {q: [d for d, _ in row[:100]] for q, row in full[0].items()}
    ids = sorted({d for row in cand.values() for d in row})
    dv = dict(zip(ids, model.encode([text_of[d] for d in ids], normalize_embeddings=True, batch_size=64)))
    qids = list(cand)
    qv = dict(zip(qids, model.encode([queries[q] for q in qids], normalize_embeddings=True)))
    rescored = {q: top({d: float(np.dot(qv[q], dv[d])) for d in cand[q]}, 100) for q in qids}
    ref = {"rrf(bm25, minilm)": trec(qrels, fused), "bm25@100 -> minilm": trec(qrels, rescored)}

    print(f"machine: {machine()}")
    print(f"{'pipeline':<22} {'ndcg@10':>8} {'recall@100':>10} {'indep. ndcg@10':>14} {'|diff|':>8} "
          f"{'cand. recall':>12} {'time_s':>7}")
    for name, r, t in rows:
        ind = ref.get(name)
        stages = r.info.get("pipeline", {}).get("stages", [])
        cr = next((v for s in stages for k, v in s.items() if k.startswith("candidate_recall")), None)
        diff = abs(ind["ndcg@10"] - r.metrics["ndcg@10"]) if ind else None
        ind_s = f"{ind['ndcg@10']:.4f}" if ind else "-"
        diff_s = f"{diff:.1e}" if diff is not None else "-"
        cr_s = f"{cr:.4f}" if cr is not None else "-"
        print(f"{name:<22} {r.metrics['ndcg@10']:>8.4f} {r.metrics['recall@100']:>10.4f} "
              f"{ind_s:>14} {diff_s:>8} {cr_s:>12} {t:>7.1f}")
        if ind:
            assert diff < 1e-4 and abs(ind["recall@100"] - r.metrics["recall@100"]) < 1e-4, (name, ind, r.metrics)
    hybrid = rows[2][1]
    comp = compare_runs(store, [hybrid.id, bm25_full.id, dense_full.id], "ndcg@10", baseline=hybrid.id)
    names = {bm25_full.id: "bm25", dense_full.id: MINILM}
    for test in comp.tests:
        # the part minus the hybrid: the hybrid is better when this is negative
        print(f"hybrid vs {names[test.run_id]}: hybrid − part {-test.mean_delta:+.4f} ndcg@10, p (randomization, "
              f"Holm) {test.p_primary:.4g}: {'significant' if test.significant else 'not significant'}")


if __name__ == "__main__":
    main()
