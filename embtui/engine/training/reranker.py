"""Reranker fine-tuning: a sentence-transformers ``CrossEncoder`` trained on the project's pairs with
binary cross-entropy, negatives from the first stage it will rerank, and a dev evaluation that
reranks that first stage's top-N for the dev queries, scored by embtui's metric engine.

The first stage (default ``bm25``) is evaluated on the training split (or its identical run is
reused): its top-ranked documents that are neither judged nor marked relevant are each pair's
negatives (``--hard-negatives``, default 3), exactly the kind of candidate the reranker must push
down, and its top ``rerank_depth`` for the dev queries are what the dev evaluator reranks. The
trained model is saved to ``<workspace>/models/NAME`` (CrossEncoder format) with ``lineage.json``,
the pipeline ``NAME-pipeline`` (first stage -> this reranker) is saved, and it is evaluated on the
test split against the first stage alone with a paired randomization test. Training runs as a
job like bi-encoder fine-tuning: checkpoints, curves, cancel and resume.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Callable

from embtui.engine.progress import CancelToken, Progress, ProgressCallback, no_progress
from embtui.engine.training.finetune import (DEV_METRICS, Curves, TrainConfig, _callback, latest_checkpoint,
                                             write_json_atomic)
from embtui.errors import Cancelled, EmbtuiError

if TYPE_CHECKING:  # pragma: no cover
    from embtui.store import Store


@dataclass(frozen=True)
class RerankerRequest:
    project: str
    base: str                  # a cross-encoder, or any transformer (a one-logit head is added)
    name: str
    first_stage: str = "bm25"
    rerank_depth: int = 30
    train_split: str = "train"
    dev_split: str | None = None
    dev_fraction: float = 0.1
    test_split: str = "test"
    hard_negatives: int = 3
    max_pairs: int | None = None
    drop_leaked: bool = False
    config: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=16, max_seq_length=256))
    device: str | None = None
    evaluate_test: bool = True

    def __post_init__(self) -> None:
        from embtui.engine.training.run import check_model_name

        check_model_name(self.name)
        if self.rerank_depth < 1 or self.hard_negatives < 1:
            raise EmbtuiError("--rerank-depth and --hard-negatives must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["config"] = self.config.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RerankerRequest":
        d = dict(data)
        d["config"] = TrainConfig.from_dict(d.get("config") or {})
        return cls(**d)


def make_rerank_evaluator(queries: dict[str, str], doc_text: dict[str, str], qrels: dict[str, dict[str, int]],
                          candidates: dict[str, list[str]], metric: str, batch_size: int) -> Any:
    from embtui.engine.metrics import evaluate_run
    from embtui.engine.training.finetune import _base_evaluator

    base = _base_evaluator()

    class RerankDevEvaluator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.primary_metric = metric
            self.qids = sorted(q for q in qrels if q in candidates)
            self.last: dict[str, float] = {}

        def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                     steps: int = -1) -> dict[str, float]:
            pairs = [(queries[q], doc_text[d]) for q in self.qids for d in candidates[q]]
            scores = model.predict(pairs, batch_size=batch_size, show_progress_bar=False) if pairs else []
            run, i = {}, 0
            for q in self.qids:
                n = len(candidates[q])
                run[q], i = dict(zip(candidates[q], map(float, scores[i:i + n]))), i + n
            # ties broken as trec_eval does (evaluate_run)
            res = evaluate_run({q: qrels[q] for q in self.qids}, run, metrics=list(DEV_METRICS))
            self.last = {m: float(res.aggregate[m]) for m in DEV_METRICS}
            return self.prefix_name_to_metrics(dict(self.last), "dev")

    return RerankDevEvaluator()


def run_reranker(store: "Store", req: RerankerRequest, *, progress: ProgressCallback | None = None,
                 cancel: CancelToken | None = None, log: Callable[[str], None] = lambda _: None,
                 resuming: bool = False) -> dict[str, Any]:
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (CrossEncoderTrainer, CrossEncoderTrainingArguments)
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers.trainer_callback import PrinterCallback

    from embtui.engine.devices import resolve_device
    from embtui.engine.evaluate import EvalRequest, run_evaluation, versions
    from embtui.engine.loading import cross_encoder
    from embtui.engine.models import ModelSpec, fingerprint, resolve_spec
    from embtui.engine.runs import find_identical_run
    from embtui.engine.training import negatives
    from embtui.engine.training.data import build_training_data
    from embtui.engine.training.run import (LINEAGE_FILE, check_new_model, evaluate_against_base,
                                            models_dir, work_dir)

    progress = progress or no_progress
    cancel = cancel or CancelToken()
    cfg = req.config
    work = work_dir(store, req.name)
    check_new_model(store, req.name, resuming=resuming or work.exists())
    progress(Progress("prepare data", 0, 1))
    data = build_training_data(store, req.project, train_split=req.train_split, dev_split=req.dev_split,
                               dev_fraction=req.dev_fraction, seed=cfg.seed, test_split=req.test_split,
                               max_pairs=req.max_pairs, drop_leaked=req.drop_leaked)
    first = resolve_spec(req.first_stage, store)
    device = resolve_device(req.device or "auto")
    first_device = device if not first.is_bm25 else "cpu"
    stage_req = EvalRequest(req.project, first, split=req.train_split, device=first_device,
                            depth=max(100, req.rerank_depth))
    first_run = find_identical_run(store, stage_req) or run_evaluation(store, stage_req, progress=progress,
                                                                       cancel=cancel).run
    data, neg_report = negatives.from_run(store, data, first_run.id, num_negatives=req.hard_negatives)
    log(f"{len(data.pairs)} pairs, {req.hard_negatives} negatives each from {first.name} run {first_run.id}")
    corpus = store.corpus(req.project)
    doc_text = dict(zip(corpus.ids, corpus.encode_texts()))
    dev_split = data.dev_definition.get("split", req.train_split)
    dev_rankings = store.run_rankings(first_run.id) if dev_split == req.train_split else \
        store.run_rankings((find_identical_run(store, EvalRequest(req.project, first, split=dev_split))
                            or run_evaluation(store, EvalRequest(req.project, first, split=dev_split))
                            .run).id)
    candidates = {q: [d for d, _ in dev_rankings.get(q, [])[:req.rerank_depth]] for q in data.dev_qrels}
    base_spec = resolve_spec(req.base, store, max_seq_length=cfg.max_seq_length)
    model, used = cross_encoder(base_spec, device)
    evaluator = make_rerank_evaluator(data.queries, doc_text, data.dev_qrels, candidates, cfg.metric,
                                      max(32, cfg.batch_size))
    work.mkdir(parents=True, exist_ok=True)
    curves_path = work / "curves.json"
    previous = latest_checkpoint(work)
    curves = Curves(cfg.metric)
    if previous is not None and curves_path.exists():
        curves = Curves.from_dict(json.loads(curves_path.read_text()))
    if curves.base_dev is None:
        progress(Progress("evaluate base on dev", 0, 1))
        evaluator(model)
        curves.base_dev = dict(evaluator.last)
        log(f"first stage + base reranker on dev: {cfg.metric} {curves.base_dev[cfg.metric]:.4f}")
    rows: dict[str, list[Any]] = {"query": [], "passage": [], "label": []}
    for p in data.pairs:
        for doc, label in ((p.doc_id, 1.0), *((n, 0.0) for n in p.negatives)):
            rows["query"].append(data.queries[p.qid])
            rows["passage"].append(doc_text[doc])
            rows["label"].append(label)
    dataset = Dataset.from_dict(rows)
    total = max(1, math.ceil(math.ceil(len(dataset) / cfg.batch_size) * cfg.epochs))
    eval_steps = cfg.eval_steps or max(1, math.ceil(total / (4 * cfg.epochs)))
    args = CrossEncoderTrainingArguments(
        output_dir=str(work / "checkpoints"), num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.lr,
        warmup_steps=int(round(cfg.warmup_ratio * total)), weight_decay=cfg.weight_decay, seed=cfg.seed,
        data_seed=cfg.seed, eval_strategy="steps", eval_steps=eval_steps, save_strategy="steps",
        save_steps=eval_steps, save_total_limit=2, load_best_model_at_end=True,
        metric_for_best_model=f"eval_dev_{cfg.metric}", greater_is_better=True,
        logging_steps=max(1, min(eval_steps, math.ceil(total / 50))), report_to=list(cfg.report_to) or "none",
        bf16=cfg.precision == "bf16", fp16=cfg.precision == "fp16", use_cpu=used == "cpu",
        dataloader_num_workers=0, disable_tqdm=True)
    callback = _callback(curves, curves_path, progress, cancel, cfg.batch_size, log)
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=dataset,
                                  loss=BinaryCrossEntropyLoss(model), evaluator=evaluator, callbacks=[callback])
    trainer.remove_callback(PrinterCallback)
    t0 = time.perf_counter()
    if previous is not None:
        log(f"resuming from {previous.name}")
    trainer.train(resume_from_checkpoint=str(previous) if previous else None)
    if callback.cancelled:
        raise Cancelled()
    out = models_dir(store) / req.name
    if out.exists():
        shutil.rmtree(out)
    trainer.model.save_pretrained(str(out))
    curves.state = "done"
    write_json_atomic(curves_path, curves.to_dict())
    best = curves.best()
    lineage = {"name": req.name, "kind": "cross-encoder", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "base": {"name": base_spec.name, "model": base_spec.model,
                        "fingerprint": fingerprint(base_spec, store)},
               "first_stage": {"name": first.name, "run": first_run.id, "rerank_depth": req.rerank_depth},
               "data": {**data.summary(), "hash": data.data_hash(doc_text), "rows": len(dataset)},
               "dev": data.dev_definition, "config": cfg.to_dict(), "request": req.to_dict(),
               "best_step": best[0] if best else None, "best_dev": best[1] if best else None,
               "base_dev": curves.base_dev, "steps": trainer.state.global_step,
               "train_seconds": round(time.perf_counter() - t0, 2), "device": used,
               "curves": curves.to_dict(), "warnings": curves.warnings, "versions": versions()}
    write_json_atomic(out / LINEAGE_FILE, lineage)
    shutil.rmtree(work / "checkpoints", ignore_errors=True)
    from embtui.engine.pipelines import Pipeline, RerankStage

    first_dict = first.to_dict()
    pipe = Pipeline(retrieve=(first_dict,), rerank=(RerankStage(
        ModelSpec(str(out), name=req.name, max_seq_length=cfg.max_seq_length).to_dict(),
        depth=req.rerank_depth, kind="cross-encoder"),))
    pipe_name = f"{req.name}-pipeline"
    pipe_spec = ModelSpec("pipeline", name=pipe_name, pipeline=pipe.to_dict())
    store.save_model(pipe_name, pipe_spec.to_dict())
    log(f"saved {out}; pipeline '{pipe_name}': {first.name} -> {req.name} (top {req.rerank_depth})")
    result: dict[str, Any] = {"model": req.name, "path": str(out), "pipeline": pipe_name,
                              "best_step": lineage["best_step"], "dev": lineage["best_dev"],
                              "base_dev": curves.base_dev, "warnings": curves.warnings}
    if req.evaluate_test:
        result.update(evaluate_against_base(store, req.project, req.test_split, pipe_spec, first, device,
                                            progress=progress, cancel=cancel, metric=cfg.metric))
    return result
