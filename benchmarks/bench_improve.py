"""The improvement loop on SciFact, end to end on real models (the issue's "Must show" figures):

1. second iteration: the fine-tuned model evaluated on the train split, negatives from its own
   rankings (documents judged or marked relevant left out), trained again from it; test NDCG@10 of
   base, first and second iteration with paired tests;
2. overfitting: many epochs on 50 pairs with a high learning rate; the warnings the trainer gave;
3. the gate: a model trained on shuffled pairs (damaged on purpose) against the base -> exit 1,
   the fine-tuned model against the base -> exit 0 (the CLI, runs reused);
4. a static model2vec distillation of MiniLM: NDCG@10, encode docs/s and size against MiniLM.

Usage: python benchmarks/bench_improve.py WORKSPACE FIRST_MODEL [--steps 1,2,3,4]
(WORKSPACE: SciFact as 'scifact' with MiniLM's test run and FIRST_MODEL fine-tuned there, e.g. by
bench_finetune.py or `embtui finetune ... --name ft-mnrl`)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def embtui(ws: str, *args: str) -> tuple[int, str]:
    p = subprocess.run([sys.executable, "-m", "embtui", "--workspace", ws, *args], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def encode_rate(store, name: str, n: int = 1000) -> float:
    from embtui.engine.loading import load_model
    from embtui.engine.models import resolve_spec

    spec = resolve_spec(name, store)
    model = load_model(spec, "cpu")
    texts = store.corpus("scifact").encode_texts()[:n]
    model.encode(texts[:32])
    t0 = time.perf_counter()
    model.encode(texts, batch_size=32 if "MiniLM" in name else 1024)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workspace")
    ap.add_argument("first")
    ap.add_argument("--steps", default="1,2,3,4")
    a = ap.parse_args()
    steps = {int(s) for s in a.steps.split(",")}
    from embtui.api.training import FinetuneRequest, TrainConfig, distill, finetune
    from embtui.engine.training.run import read_lineage
    from embtui.store import Store

    store = Store(a.workspace)
    ws = str(store.ws.root)
    first = read_lineage(Path(ws) / "models" / a.first)
    cfg = TrainConfig.from_dict(first["config"])
    print(f"# improvement loop on SciFact, {machine()}")
    if 1 in steps:
        code, out = embtui(ws, "eval", "--project", "scifact", "--model", a.first, "--split", "train", "--json")
        assert code == 0, out
        run = json.loads(out)[0]["id"] if out.strip().startswith("[") else json.loads(out)["runs"][0]["id"]
        req = FinetuneRequest("scifact", a.first, f"{a.first}-it2", negatives_from=run, hard_negatives=1,
                              drop_leaked=True, config=replace(cfg, epochs=1.0, lr=cfg.lr / 2))
        t0 = time.perf_counter()
        res = finetune(store.ws, req)
        print(f"\n## 1. second iteration: negatives from run {run} ({a.first} on train), {time.perf_counter() - t0:.0f} s")
        print(json.dumps({k: res.get(k) for k in ("best_step", "dev", "base_dev", "vs_base", "warnings")}))
        base_run = first_run = None
        for r in store.list_runs(project="scifact", split="test", status="done"):
            if r.model_name == "all-MiniLM-L6-v2" and base_run is None:
                base_run = r.id
            if r.model_name == a.first:
                first_run = r.id
        code, out = embtui(ws, "compare", str(base_run), str(first_run), str(res["run"]["id"]))
        print(out)
    if 2 in steps:
        over = replace(cfg, epochs=20.0, lr=2e-4, batch_size=16, eval_steps=6, dev_corpus=300,
                       max_seq_length=128, patience=None)
        req = FinetuneRequest("scifact", "all-MiniLM-L6-v2", "overfit-50", max_pairs=50, drop_leaked=True,
                              config=over, evaluate_test=False)
        t0 = time.perf_counter()
        res = finetune(store.ws, req)
        lin = read_lineage(res["path"])
        print(f"\n## 2. over-training: 50 pairs x 20 epochs, lr 2e-4 ({time.perf_counter() - t0:.0f} s)")
        print("dev ndcg@10 by step:", [(s, round(m["ndcg@10"], 4)) for s, m in lin["curves"]["dev"]])
        print("warnings:", json.dumps(lin["warnings"], indent=1))
    if 3 in steps:
        from embtui.engine.models import ModelSpec, resolve_spec
        from embtui.engine.training.data import Pair, build_training_data
        from embtui.engine.training.finetune import dev_corpus_ids, train
        from embtui.engine.training.run import models_dir, work_dir

        data = build_training_data(store, "scifact", drop_leaked=True, seed=cfg.seed)
        docs = [p.doc_id for p in data.pairs]
        random.Random(0).shuffle(docs)
        data.pairs = [Pair(p.qid, d) for p, d in zip(data.pairs, docs)]  # every positive wrong
        corpus = store.corpus("scifact")
        text = dict(zip(corpus.ids, corpus.encode_texts()))
        dev = {d: text[d] for d in dev_corpus_ids(corpus.ids, data.dev_qrels, 300, cfg.seed)}
        out = models_dir(store) / "shuffled"
        train(data, resolve_spec("all-MiniLM-L6-v2", store), replace(cfg, epochs=1.0, lr=1e-4, dev_corpus=300),
              text, dev, work_dir(store, "shuffled"), out)
        store.save_model("shuffled", ModelSpec(str(out), name="shuffled", max_seq_length=cfg.max_seq_length).to_dict())
        code_bad, out_bad = embtui(ws, "gate", "--project", "scifact", "--baseline", "all-MiniLM-L6-v2",
                                   "--candidate", "shuffled")
        code_good, out_good = embtui(ws, "gate", "--project", "scifact", "--baseline", "all-MiniLM-L6-v2",
                                     "--candidate", a.first)
        print(f"\n## 3. gate\nbase vs shuffled-pairs model: exit {code_bad}\n{out_bad}\n"
              f"base vs {a.first}: exit {code_good}\n{out_good}")
    if 4 in steps:
        t0 = time.perf_counter()
        res = distill(store, "all-MiniLM-L6-v2", "minilm-static", project="scifact", pca_dims=256)
        print(f"\n## 4. model2vec distillation of MiniLM ({time.perf_counter() - t0:.0f} s with its test run)")
        print(json.dumps({k: res.get(k) for k in ("dim", "size_mib", "teacher_size_mib", "distill_seconds",
                                                  "vs_base")}))
        r_static, r_mini = encode_rate(store, "minilm-static"), encode_rate(store, "all-MiniLM-L6-v2")
        print("| model | test NDCG@10 | encode docs/s (1,000 SciFact docs, CPU) | size |")
        print("|---|---|---|---|")
        print(f"| all-MiniLM-L6-v2 | {res['base_run']['ndcg@10']:.4f} | {r_mini:.0f} | {res['teacher_size_mib']} MiB |")
        print(f"| minilm-static (model2vec, 256 d) | {res['run']['ndcg@10']:.4f} | {r_static:.0f} | "
              f"{res['size_mib']} MiB |")
        print(f"speed-up {r_static / r_mini:.0f}x")


if __name__ == "__main__":
    main()
