"""Fine-tuning all-MiniLM-L6-v2 on SciFact train (MNRL): embtui against a plain sentence-transformers
script with the same data, configuration and seed, in the same run.

embtui: ``embtui.api.training.finetune`` (a job run in this process: data and leakage check, dev
hold-out, the trainer with embtui's dev evaluator, best checkpoint, lineage, the test run and a
paired test against the base). Plain: the same training rows and dev queries handed to
``SentenceTransformerTrainer`` with ``MultipleNegativesRankingLoss``, the no-duplicates sampler,
``InformationRetrievalEvaluator`` on the same dev corpus for checkpoint selection, and the test
NDCG@10 from ``InformationRetrievalEvaluator`` over the whole corpus (independent of embtui's
metric code). Printed: test NDCG@10 of both and their difference, training wall time of both and
their ratio.

Usage: python benchmarks/bench_finetune.py WORKSPACE [--epochs 2 --lr 3e-5 --batch-size 32
       --eval-steps 12 --dev-corpus 1000] [--skip-embtui NAME]
(WORKSPACE with SciFact imported as project 'scifact'; made if missing)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SCIFACT, machine  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def plain_st(store, data, doc_text, dev_ids, test_q, test_qrels, cfg, base_path, out):
    """The plain script: what a user writes by hand with sentence-transformers alone."""
    from datasets import Dataset
    from sentence_transformers import (SentenceTransformer, SentenceTransformerTrainer,
                                       SentenceTransformerTrainingArguments)
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    t_all = time.perf_counter()
    model = SentenceTransformer(base_path, device="cpu")
    model.max_seq_length = cfg.max_seq_length
    train = Dataset.from_dict({"anchor": [data.queries[p.qid] for p in data.pairs],
                               "positive": [doc_text[p.doc_id] for p in data.pairs]})
    dev_q = {q: data.queries[q] for q in data.dev_qrels}
    dev_rel = {q: {d for d, g in j.items() if g > 0} for q, j in data.dev_qrels.items()}
    dev_eval = InformationRetrievalEvaluator(dev_q, {d: doc_text[d] for d in dev_ids}, dev_rel, name="dev",
                                             batch_size=max(cfg.batch_size, 32), show_progress_bar=False)
    dev_eval(model)  # the base on dev, as a careful script does first
    import math
    total = math.ceil(math.ceil(len(train) / cfg.batch_size) * cfg.epochs)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "checkpoints"), num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        learning_rate=cfg.lr, warmup_steps=int(round(cfg.warmup_ratio * total)),
        weight_decay=cfg.weight_decay, seed=cfg.seed, data_seed=cfg.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES, eval_strategy="steps", eval_steps=cfg.eval_steps,
        save_strategy="steps", save_steps=cfg.eval_steps, save_total_limit=2, load_best_model_at_end=True,
        metric_for_best_model="eval_dev_cosine_ndcg@10", greater_is_better=True,
        logging_steps=max(1, min(cfg.eval_steps, math.ceil(total / 50))), report_to="none",
        use_cpu=True, dataloader_num_workers=0, disable_tqdm=True)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train,
                                         loss=MultipleNegativesRankingLoss(model), evaluator=dev_eval)
    t0 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t0
    trainer.model.save_pretrained(str(out / "model"))
    wall = time.perf_counter() - t_all
    test_eval = InformationRetrievalEvaluator(test_q, doc_text, test_qrels, name="test", batch_size=32,
                                              show_progress_bar=False)
    res = test_eval(trainer.model)
    return {"test_ndcg@10": res["test_cosine_ndcg@10"], "train_s": train_s, "wall_s": wall,
            "best": trainer.state.best_model_checkpoint}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workspace")
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--eval-steps", type=int, default=12)
    ap.add_argument("--dev-corpus", type=int, default=1000)
    ap.add_argument("--name", default="bench-mnrl")
    ap.add_argument("--skip-embtui", action="store_true", help="reuse the model NAME trained before")
    a = ap.parse_args()

    from embtui.api.training import FinetuneRequest, TrainConfig, finetune
    from embtui.engine.models import bundled_minilm_path
    from embtui.engine.training.data import build_training_data
    from embtui.engine.training.finetune import dev_corpus_ids
    from embtui.engine.training.run import read_lineage
    from embtui.store import Store

    store = Store(a.workspace)
    store.ws.init()
    if not store.project_exists("scifact"):
        from embtui.data.beir import import_beir
        import_beir(store, SCIFACT, "scifact")
    cfg = TrainConfig(epochs=a.epochs, lr=a.lr, batch_size=a.batch_size, eval_steps=a.eval_steps,
                      dev_corpus=a.dev_corpus)
    req = FinetuneRequest(project="scifact", base="all-MiniLM-L6-v2", name=a.name, config=cfg,
                          drop_leaked=True)
    t0 = time.perf_counter()
    if a.skip_embtui:
        res = {}
        lin = read_lineage(Path(store.ws.root) / "models" / a.name)
    else:
        res = finetune(store.ws, req)
        lin = read_lineage(res["path"])
    e_wall = time.perf_counter() - t0
    # the same rows and dev split for the plain script
    data = build_training_data(store, "scifact", seed=cfg.seed, drop_leaked=True)
    corpus = store.corpus("scifact")
    doc_text = dict(zip(corpus.ids, corpus.encode_texts()))
    dev_ids = dev_corpus_ids(corpus.ids, data.dev_qrels, cfg.dev_corpus, cfg.seed)
    tq = store.qrels("scifact", "test")
    test_q = {q: t for q, t in store.queries("scifact", "test").items() if q in tq}
    test_rel = {q: {d for d, g in j.items() if g > 0} for q, j in tq.items()}
    out = Path(tempfile.mkdtemp(prefix="bench-ft-"))
    try:
        p = plain_st(store, data, doc_text, dev_ids, test_q, test_rel, cfg, str(bundled_minilm_path()), out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    e_ndcg = (res.get("run") or {}).get("ndcg@10")
    print(f"# fine-tuning all-MiniLM-L6-v2 on SciFact train (MNRL), {machine()}")
    print(json.dumps({"config": cfg.to_dict(), "embtui": {k: res.get(k) for k in ("best_step", "vs_base")}},
                     default=str))
    loop = lin.get("trainer_seconds", lin["train_seconds"])
    print("| | test NDCG@10 | trainer.train() wall | best step |")
    print("|---|---|---|---|")
    print(f"| embtui finetune | {e_ndcg} | {loop:.0f} s (with setup and save {lin['train_seconds']:.0f} s) | "
          f"{lin['best_step']} |")
    print(f"| plain sentence-transformers script | {p['test_ndcg@10']:.4f} | {p['train_s']:.0f} s | "
          f"{p['best']} |")
    if e_ndcg is not None:
        print(f"\ndifference {e_ndcg - p['test_ndcg@10']:+.4f}; wall ratio embtui/plain "
              f"{loop / p['train_s']:.3f}; embtui end to end {e_wall:.0f} s")


if __name__ == "__main__":
    main()
