"""SciFact end to end: NDCG@10 vs the published 0.6451, run file vs pytrec_eval, cold/warm eval, BM25.

Usage: python benchmarks/bench_eval.py [WORKSPACE]   (default: a fresh temporary folder)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SCIFACT, machine  # noqa: E402


def embtui(ws: Path, *args: str) -> tuple[float, dict, str]:
    script = ("import sys, json; from embtui.cli import main; rc = main(sys.argv[1:]); "
              "print(json.dumps({'rc': rc, 'torch': 'torch' in sys.modules}), file=sys.stderr)")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", script, "--workspace", str(ws), *args],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - t0
    status = json.loads(proc.stderr.strip().splitlines()[-1])
    if status["rc"] != 0:
        raise SystemExit(proc.stderr)
    return wall, status, proc.stdout


def pytrec_scores(run_file: Path) -> dict[str, float]:
    import pytrec_eval

    qrels: dict[str, dict[str, int]] = {}
    for line in (SCIFACT / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        q, d, g = line.split("\t")
        qrels.setdefault(q, {})[d] = int(g)
    run: dict[str, dict[str, float]] = {}
    for line in run_file.read_text().splitlines():
        q, _, d, _, s, _ = line.split()
        run.setdefault(q, {})[d] = float(s)
    res = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    return {"ndcg@10": sum(v["ndcg_cut_10"] for v in res.values()) / len(res),
            "recall@100": sum(v["recall_100"] for v in res.values()) / len(res)}


def main() -> None:
    ws = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="embtui-bench-"))
    print(f"machine: {machine()}\nworkspace: {ws}\n")
    t_import, _, out = embtui(ws, "import", "beir", str(SCIFACT), "--project", "scifact", "--replace")
    print(out.strip(), f"({t_import:.1f} s)")
    run_file = ws / "minilm.trec"
    base = ["eval", "--project", "scifact", "--model", "all-MiniLM-L6-v2", "--split", "test",
            "--device", "cpu", "--json", "--force"]  # measure a real (cached) eval, not a reused run
    cold, _, out = embtui(ws, *base, "--run-file", str(run_file))
    cold_run = json.loads(out)["runs"][0]
    warm, warm_status, out = embtui(ws, *base)
    warm_run = json.loads(out)["runs"][0]
    bm25_t, _, out = embtui(ws, "eval", "--project", "scifact", "--model", "bm25", "--json")
    bm25_run = json.loads(out)["runs"][0]
    trec = pytrec_scores(run_file)
    m = cold_run["metrics"]
    print("| check | value | expected |")
    print("|---|---|---|")
    print(f"| all-MiniLM-L6-v2 NDCG@10 (embtui) | {m['ndcg@10']:.5f} | 0.6451 ± 0.0005 |")
    print(f"| MRR@10 / Recall@10 / MAP@100 | {m['mrr@10']:.4f} / {m['recall@10']:.4f} / {m['map@100']:.4f} | 0.6047 / 0.7833 / 0.6031 (ST evaluator) |")
    print(f"| run file NDCG@10 by pytrec_eval | {trec['ndcg@10']:.6f} | = {m['ndcg@10']:.6f} |")
    print(f"| run file Recall@100 by pytrec_eval | {trec['recall@100']:.6f} | = {m['recall@100']:.6f} |")
    print(f"| cold eval wall time | {cold:.1f} s | ~200 s (ST evaluator) |")
    print(f"| warm eval wall time | {warm:.2f} s | < 5 s |")
    print(f"| warm eval imported torch | {warm_status['torch']} | False |")
    print(f"| warm eval documents encoded | {warm_run['info']['encode']['documents']['encoded']} | 0 |")
    print(f"| BM25 NDCG@10 | {bm25_run['metrics']['ndcg@10']:.4f} | 0.66–0.70 |")
    print(f"| BM25 eval wall time | {bm25_t:.1f} s | |")
    enc = cold_run["info"]["encode"]["documents"]
    print(f"| cold encode documents | {enc['items_per_s']:.1f} docs/s (batch {enc['batch_size']}) | |")
    print(f"\ncold timings: {json.dumps(cold_run['timings'])}\nwarm timings: {json.dumps(warm_run['timings'])}")
    assert abs(m["ndcg@10"] - 0.6451) <= 0.0005, m["ndcg@10"]
    assert abs(trec["ndcg@10"] - m["ndcg@10"]) < 1e-4 and abs(trec["recall@100"] - m["recall@100"]) < 1e-4


if __name__ == "__main__":
    main()
