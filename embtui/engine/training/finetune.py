"""Bi-encoder fine-tuning with sentence-transformers' trainer, evaluated on the dev split by embtui.

``train`` builds the dataset (anchor, positive[, negative_1..n]), the loss
(``MultipleNegativesRankingLoss`` by default, ``CachedMultipleNegativesRankingLoss`` for a large
batch in little memory, ``GISTEmbedLoss`` guided by the frozen base model, each optionally wrapped
in ``MatryoshkaLoss``), the no-duplicates batch sampler, and runs ``SentenceTransformerTrainer``.
Every ``eval_steps`` the dev split is scored by ``DevEvaluator`` with embtui's own metric engine
(the numbers the Metrics pane shows, equal to trec_eval); the best checkpoint by the dev metric is
kept (``load_best_model_at_end``), early stopping waits ``patience`` evaluations. Two warnings
guard the classic mistakes: dev quality falling while the training loss falls (overfitting), and
a first dev evaluation already below the base model (learning rate or data problem).

Checkpoints are written to ``<work>/checkpoints`` at each evaluation; a killed training resumes
from the newest one (the trainer's ``resume_from_checkpoint`` restores weights, optimizer,
scheduler, RNG state and the position in the epoch). Curves and warnings go to
``<work>/curves.json`` (replaced atomically) for the Train pane to draw while training runs.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from embtui.engine.progress import CancelToken, Progress, ProgressCallback, no_progress
from embtui.errors import Cancelled, EmbtuiError

if TYPE_CHECKING:  # pragma: no cover
    from embtui.engine.models import ModelSpec
    from embtui.engine.training.data import TrainingData

LOSSES = ("mnrl", "cmnrl", "gist")
PRECISIONS = ("fp32", "bf16", "fp16")
DEV_METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "map@100")
DEV_DEPTH = 100


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the trained weights (saved in the model's lineage)."""

    loss: str = "mnrl"
    matryoshka: tuple[int, ...] | None = None
    epochs: float = 1.0
    batch_size: int = 32
    mini_batch_size: int = 32          # cmnrl/gist: texts per forward pass (memory, not the math)
    lr: float = 2e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_seq_length: int | None = 256
    seed: int = 42
    precision: str = "fp32"
    eval_steps: int | None = None      # default: about four dev evaluations per epoch
    metric: str = "ndcg@10"
    patience: int | None = None        # early stopping after this many evaluations without a gain
    dev_corpus: int | None = 2000      # documents the dev queries search (None: the whole corpus)
    report_to: tuple[str, ...] = ()    # tensorboard, wandb, mlflow: where the Trainer reports too

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise EmbtuiError(f"unknown loss '{self.loss}'", f"use one of {', '.join(LOSSES)}")
        if self.precision not in PRECISIONS:
            raise EmbtuiError(f"unknown training precision '{self.precision}'",
                              f"use one of {', '.join(PRECISIONS)}")
        for name in ("batch_size", "mini_batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise EmbtuiError(f"{name.replace('_', ' ')} must be a positive integer, got {v!r}")
        if self.loss == "mnrl" and self.batch_size < 2:
            raise EmbtuiError("MultipleNegativesRankingLoss needs a batch of at least 2 (in-batch negatives)")
        if not self.epochs > 0:
            raise EmbtuiError(f"--epochs must be positive, got {self.epochs}")
        if not self.lr > 0:
            raise EmbtuiError(f"--lr must be positive, got {self.lr}")
        if self.matryoshka is not None and (not self.matryoshka or any(d < 1 for d in self.matryoshka)):
            raise EmbtuiError("--matryoshka needs positive dimensions, e.g. 384,256,128,64")
        if self.metric not in DEV_METRICS:
            raise EmbtuiError(f"unknown dev metric '{self.metric}'", f"use one of {', '.join(DEV_METRICS)}")
        if self.patience is not None and self.patience < 1:
            raise EmbtuiError(f"--patience must be at least 1, got {self.patience}")
        if self.eval_steps is not None and self.eval_steps < 1:
            raise EmbtuiError(f"--eval-steps must be at least 1, got {self.eval_steps}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["matryoshka"] = list(self.matryoshka) if self.matryoshka else None
        d["report_to"] = list(self.report_to)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in data.items() if k in known}
        if d.get("matryoshka"):
            d["matryoshka"] = tuple(int(x) for x in d["matryoshka"])
        d["report_to"] = tuple(d.get("report_to") or ())
        return cls(**d)


# -- the dev evaluator: embtui's metric engine inside the trainer -----------------------------------
def dev_corpus_ids(all_ids: list[str], dev_qrels: dict[str, dict[str, int]], size: int | None,
                   seed: int) -> list[str]:
    """The documents dev queries search: every dev-judged document plus a seeded sample of the rest
    up to ``size`` (all of them when ``size`` is None or the corpus is small)."""
    if size is None or size >= len(all_ids):
        return list(all_ids)
    judged = {d for j in dev_qrels.values() for d in j}
    rest = [d for d in all_ids if d not in judged]
    k = max(0, size - len(judged))
    sample = set(random.Random(seed).sample(rest, min(k, len(rest))))
    return [d for d in all_ids if d in judged or d in sample]


def _base_evaluator() -> type:
    from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

    return BaseEvaluator


def make_dev_evaluator(queries: dict[str, str], docs: dict[str, str], qrels: dict[str, dict[str, int]],
                       spec: "ModelSpec", metric: str, batch_size: int) -> Any:
    """An evaluator the trainer calls every ``eval_steps``: exact search over ``docs`` with the model
    being trained, scored by ``embtui.engine.metrics.evaluate`` (returned as ``dev_<metric>``)."""
    from embtui.engine.metrics import evaluate_run

    base = _base_evaluator()

    class DevEvaluator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.primary_metric = metric
            self.qids = sorted(q for q in qrels if q in queries)
            self.doc_ids = list(docs)
            self.last: dict[str, float] = {}

        def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                     steps: int = -1) -> dict[str, float]:
            qp, qpn = spec.prompt_for("query")
            dp, dpn = spec.prompt_for("document")
            q = model.encode([queries[x] for x in self.qids], batch_size=batch_size, prompt=qp,
                             prompt_name=qpn, normalize_embeddings=spec.normalize,
                             convert_to_numpy=True, show_progress_bar=False)
            d = model.encode([docs[x] for x in self.doc_ids], batch_size=batch_size, prompt=dp,
                             prompt_name=dpn, normalize_embeddings=spec.normalize,
                             convert_to_numpy=True, show_progress_bar=False)
            scores = np.asarray(q, dtype=np.float32) @ np.asarray(d, dtype=np.float32).T
            k = min(DEV_DEPTH, scores.shape[1])
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            run = {qid: {self.doc_ids[j]: float(scores[i, j]) for j in top[i]}
                   for i, qid in enumerate(self.qids)}
            # the top k by score, ties broken as trec_eval does (evaluate_run)
            res = evaluate_run({x: qrels[x] for x in self.qids}, run, metrics=list(DEV_METRICS))
            self.last = {m: float(res.aggregate[m]) for m in DEV_METRICS}
            return self.prefix_name_to_metrics(dict(self.last), "dev")

    return DevEvaluator()


# -- curves, warnings, progress and cancel: one trainer callback ---------------------------------
@dataclass
class Curves:
    """What the Train pane draws: training loss and dev metrics by step, plus warnings."""

    metric: str
    total_steps: int = 0
    step: int = 0
    loss: list[tuple[int, float]] = field(default_factory=list)
    dev: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    base_dev: dict[str, float] | None = None
    warnings: list[str] = field(default_factory=list)
    samples_per_s: float = 0.0
    eta_s: float | None = None
    state: str = "training"

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "total_steps": self.total_steps, "step": self.step,
                "loss": [list(x) for x in self.loss], "dev": [[s, m] for s, m in self.dev],
                "base_dev": self.base_dev, "warnings": self.warnings,
                "samples_per_s": self.samples_per_s, "eta_s": self.eta_s, "state": self.state}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Curves":
        return cls(metric=d.get("metric", "ndcg@10"), total_steps=int(d.get("total_steps") or 0),
                   step=int(d.get("step") or 0), loss=[(int(s), float(v)) for s, v in d.get("loss") or []],
                   dev=[(int(s), dict(m)) for s, m in d.get("dev") or []], base_dev=d.get("base_dev"),
                   warnings=list(d.get("warnings") or []),
                   samples_per_s=float(d.get("samples_per_s") or 0.0), eta_s=d.get("eta_s"),
                   state=str(d.get("state") or "training"))

    def dev_values(self) -> list[tuple[int, float]]:
        return [(s, m[self.metric]) for s, m in self.dev if self.metric in m]

    def best(self) -> tuple[int, dict[str, float]] | None:
        return max(self.dev, key=lambda x: (x[1].get(self.metric, -1.0), -x[0]), default=None)

    def check_warnings(self) -> list[str]:
        """New warnings after the latest evaluation (each kind fires once)."""
        new: list[str] = []
        values = self.dev_values()
        kinds = {w.split(":")[0] for w in self.warnings}
        if values and self.base_dev is not None and "below the base" not in kinds and len(values) == 1:
            base = self.base_dev.get(self.metric)
            if base is not None and values[0][1] < base - 1e-4:
                new.append(f"below the base: the first dev evaluation (step {values[0][0]}) gives "
                           f"{self.metric} {values[0][1]:.4f} < the base model's {base:.4f}; "
                           "check the learning rate (try lower) and the training pairs")
        if len(values) >= 3 and "overfitting" not in kinds:
            (s0, v0), (s1, v1), (s2, v2) = values[-3:]
            if v2 < v1 < v0:
                before = [v for s, v in self.loss if s <= s0][-3:]
                after = [v for s, v in self.loss if s1 < s <= s2][-3:]
                if before and after and sum(after) / len(after) < sum(before) / len(before):
                    new.append(f"overfitting: dev {self.metric} fell {v0:.4f} -> {v1:.4f} -> {v2:.4f} "
                               f"(steps {s0}-{s2}) while the training loss fell; the best checkpoint "
                               "is kept; use fewer epochs, more pairs or --patience")
        self.warnings += new
        return new


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _callback(curves: Curves, path: Path, progress: ProgressCallback, cancel: CancelToken,
              batch_size: int, log: Callable[[str], None]) -> Any:
    from transformers import TrainerCallback

    class EmbtuiCallback(TrainerCallback):
        def __init__(self) -> None:
            self.t0 = time.perf_counter()
            self.step0 = 0
            self.cancelled = False

        def _write(self) -> None:
            try:
                write_json_atomic(path, curves.to_dict())
            except OSError:  # a full disk must not stop the training
                pass

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            curves.total_steps = state.max_steps
            self.t0, self.step0 = time.perf_counter(), state.global_step
            self._write()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            curves.step = state.global_step
            done = state.global_step - self.step0
            elapsed = max(time.perf_counter() - self.t0, 1e-9)
            rate = done / elapsed
            curves.samples_per_s = round(rate * batch_size, 2)
            curves.eta_s = round((state.max_steps - state.global_step) / rate, 1) if rate > 0 else None
            progress(Progress("train", state.global_step, state.max_steps, rate, curves.eta_s,
                              f"{curves.samples_per_s:.1f} samples/s", batch_size))
            if cancel.cancelled:  # stop after this step, with a checkpoint to resume from
                self.cancelled = True
                control.should_save = True
                control.should_training_stop = True
            self._write()

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            logs = logs or {}
            if "loss" in logs and math.isfinite(float(logs["loss"])):
                curves.loss.append((state.global_step, round(float(logs["loss"]), 6)))
            dev = {k[len("eval_dev_"):]: float(v) for k, v in logs.items() if k.startswith("eval_dev_")}
            if dev and (not curves.dev or curves.dev[-1][0] != state.global_step):
                curves.dev.append((state.global_step, dev))
                log(f"step {state.global_step}: dev " + ", ".join(f"{k} {v:.4f}" for k, v in dev.items()
                                                                 if k == curves.metric))
                for w in curves.check_warnings():
                    log(f"warning: {w}")
            self._write()

    return EmbtuiCallback()


# -- the training itself ----------------------------------------------------------------------------
def _dataset(data: "TrainingData", doc_text: dict[str, str]) -> Any:
    from datasets import Dataset

    n_neg = min((len(p.negatives) for p in data.pairs), default=0)
    cols: dict[str, list[str]] = {"anchor": [], "positive": []}
    for j in range(n_neg):
        cols[f"negative_{j + 1}"] = []
    for p in data.pairs:
        cols["anchor"].append(data.queries[p.qid])
        cols["positive"].append(doc_text[p.doc_id])
        for j in range(n_neg):
            cols[f"negative_{j + 1}"].append(doc_text[p.negatives[j]])
    return Dataset.from_dict(cols)


def _loss(cfg: TrainConfig, model: Any, guide: Any) -> Any:
    from sentence_transformers.sentence_transformer import losses

    if cfg.loss == "mnrl":
        loss = losses.MultipleNegativesRankingLoss(model)
    elif cfg.loss == "cmnrl":
        loss = losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=cfg.mini_batch_size)
    else:
        loss = losses.GISTEmbedLoss(model, guide)
    if cfg.matryoshka:
        dim = model.get_embedding_dimension()
        bad = [d for d in cfg.matryoshka if d > dim]
        if bad:
            raise EmbtuiError(f"--matryoshka dimension {bad[0]} exceeds the model's {dim}")
        loss = losses.MatryoshkaLoss(model, loss, matryoshka_dims=sorted(cfg.matryoshka, reverse=True))
    return loss


def latest_checkpoint(work: Path) -> Path | None:
    """The newest complete checkpoint under ``work/checkpoints`` (one with its trainer state)."""
    found = []
    for p in (work / "checkpoints").glob("checkpoint-*"):
        try:
            step = int(p.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if (p / "trainer_state.json").exists():
            found.append((step, p))
    return max(found)[1] if found else None


def default_eval_steps(pairs: int, cfg: TrainConfig) -> int:
    steps_per_epoch = max(1, math.ceil(pairs / cfg.batch_size))
    return max(1, math.ceil(steps_per_epoch / 4))


def _is_oom(exc: BaseException) -> bool:
    from embtui.engine.encode import is_oom

    return is_oom(exc)


@dataclass
class TrainResult:
    model_dir: Path
    best_step: int | None
    best_dev: dict[str, float] | None
    base_dev: dict[str, float] | None
    curves: Curves
    seconds: float
    loop_seconds: float        # trainer.train() alone (what a plain script's timing covers)
    steps: int
    device: str
    batch_size: int
    mini_batch_size: int
    resumed_from: str | None


def train(data: "TrainingData", base: "ModelSpec", cfg: TrainConfig, doc_text: dict[str, str],
          dev_docs: dict[str, str], work: Path, out: Path, *, device: str = "cpu",
          progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
          log: Callable[[str], None] = lambda _: None, resume: bool = True) -> TrainResult:
    """Fine-tune ``base`` on ``data``; the best checkpoint by the dev metric is saved to ``out``."""
    import torch
    from sentence_transformers import (SentenceTransformerTrainer, SentenceTransformerTrainingArguments)
    from sentence_transformers.base.sampler import BatchSamplers
    from transformers import EarlyStoppingCallback
    from transformers.trainer_callback import PrinterCallback

    from embtui.engine.loading import load_model

    progress = progress or no_progress
    cancel = cancel or CancelToken()
    if cfg.precision != "fp32" and not device.startswith("cuda"):
        raise EmbtuiError(f"{cfg.precision} training needs a CUDA device (this one is {device})",
                          "train in fp32 on the CPU, or pass --device cuda:0")
    if device.startswith("cuda:"):  # the trainer places the model on the current CUDA device
        torch.cuda.set_device(int(device.split(":")[1]))
    work.mkdir(parents=True, exist_ok=True)
    curves_path = work / "curves.json"
    previous = latest_checkpoint(work) if resume else None
    curves = Curves(cfg.metric)
    if previous is not None and curves_path.exists():
        try:
            curves = Curves.from_dict(json.loads(curves_path.read_text()))
        except (OSError, ValueError):
            curves = Curves(cfg.metric)
        step_then = int(previous.name.split("-")[1])
        curves.loss = [x for x in curves.loss if x[0] <= step_then]
        curves.dev = [x for x in curves.dev if x[0] <= step_then]
    spec = base.with_overrides(max_seq_length=cfg.max_seq_length)
    model = load_model(spec, device)
    if cfg.max_seq_length:
        model.max_seq_length = cfg.max_seq_length
    evaluator = make_dev_evaluator(data.queries, dev_docs, data.dev_qrels, spec, cfg.metric,
                                   max(cfg.batch_size, 32))
    if curves.base_dev is None:
        progress(Progress("evaluate base on dev", 0, 1, message="scoring the base model on the dev split"))
        evaluator(model)
        curves.base_dev = dict(evaluator.last)
        log(f"base model on dev: {cfg.metric} {curves.base_dev[cfg.metric]:.4f}")
    guide = load_model(spec, device) if cfg.loss == "gist" else None
    dataset = _dataset(data, doc_text)
    eval_steps = cfg.eval_steps or default_eval_steps(len(dataset), cfg)
    batch, mini = cfg.batch_size, cfg.mini_batch_size
    t0 = time.perf_counter()
    while True:
        loss = _loss(TrainConfig.from_dict({**cfg.to_dict(), "mini_batch_size": mini}), model, guide)
        steps_per_epoch = max(1, math.ceil(len(dataset) / batch))
        total = max(1, math.ceil(steps_per_epoch * cfg.epochs))
        args = SentenceTransformerTrainingArguments(
            output_dir=str(work / "checkpoints"), num_train_epochs=cfg.epochs,
            per_device_train_batch_size=batch, per_device_eval_batch_size=batch,
            learning_rate=cfg.lr, warmup_steps=int(round(cfg.warmup_ratio * total)),
            weight_decay=cfg.weight_decay, seed=cfg.seed, data_seed=cfg.seed,
            batch_sampler=BatchSamplers.NO_DUPLICATES, eval_strategy="steps", eval_steps=eval_steps,
            save_strategy="steps", save_steps=eval_steps, save_total_limit=2,
            load_best_model_at_end=True, metric_for_best_model=f"eval_dev_{cfg.metric}",
            greater_is_better=True, logging_steps=max(1, min(eval_steps, math.ceil(total / 50))),
            report_to=list(cfg.report_to) or "none", bf16=cfg.precision == "bf16",
            fp16=cfg.precision == "fp16", use_cpu=device == "cpu", dataloader_num_workers=0,
            disable_tqdm=True, save_only_model=False)
        callback = _callback(curves, curves_path, progress, cancel, batch, log)
        callbacks = [callback] + ([EarlyStoppingCallback(early_stopping_patience=cfg.patience)]
                                  if cfg.patience else [])
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss,
                                             evaluator=evaluator, callbacks=callbacks)
        trainer.remove_callback(PrinterCallback)  # the curves and the job log say it once
        resume_from = latest_checkpoint(work) if resume else None
        if resume_from is not None:
            log(f"resuming from {resume_from.name}")
        try:
            t_loop = time.perf_counter()
            trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
            loop_seconds = time.perf_counter() - t_loop
            break
        except Exception as exc:  # noqa: BLE001
            if not _is_oom(exc):
                raise
            if cfg.loss in ("cmnrl",) and mini > 1:
                mini = max(1, mini // 2)
                log(f"out of memory: mini-batch halved to {mini} (the loss is unchanged)")
            elif batch > 2:
                batch = max(2, batch // 2)
                log(f"out of memory: batch halved to {batch} (fewer in-batch negatives per step)")
            else:
                raise EmbtuiError("out of memory even at the smallest batch",
                                  "lower --max-seq-length or use another device") from None
            del trainer
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
            resume = True
            if latest_checkpoint(work) is None:  # steps taken before the OOM: start clean again
                model = load_model(spec, device)
                if cfg.max_seq_length:
                    model.max_seq_length = cfg.max_seq_length
    if callback.cancelled:
        curves.state = "cancelled"
        write_json_atomic(curves_path, curves.to_dict())
        raise Cancelled()
    best = curves.best()
    if out.exists():
        shutil.rmtree(out)
    trainer.model.save_pretrained(str(out))
    curves.state = "done"
    write_json_atomic(curves_path, curves.to_dict())
    return TrainResult(out, best[0] if best else None, best[1] if best else None, curves.base_dev,
                       curves, time.perf_counter() - t0, loop_seconds, trainer.state.global_step, device, batch,
                       mini, previous.name if previous else None)
