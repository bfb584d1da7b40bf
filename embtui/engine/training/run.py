"""One fine-tuning, end to end: data, negatives, training, the saved model with its lineage, the
registered spec, and its test run beside the base model's with a paired significance test.

``FinetuneRequest`` is what a job stores (plain JSON); ``run_finetune`` is what the job worker
(and a foreground ``embtui finetune``) runs. The trained model lands in ``<workspace>/models/NAME``
in sentence-transformers format (``SentenceTransformer(path)`` loads it anywhere) with
``lineage.json``: base model and fingerprint, data source and hash, dev split definition, loss and
hyperparameters, seed, best step, curves, versions and device. The work folder
``<workspace>/models/.NAME.training`` holds checkpoints (a killed job resumes from the newest) and
the live curves; its checkpoints are removed once the model is saved.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from embtui.engine.progress import CancelToken, Progress, ProgressCallback, no_progress
from embtui.engine.training.finetune import TrainConfig, dev_corpus_ids, train, write_json_atomic
from embtui.errors import EmbtuiError

if TYPE_CHECKING:  # pragma: no cover
    from embtui.store import Store

LINEAGE_FILE = "lineage.json"
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@dataclass(frozen=True)
class FinetuneRequest:
    project: str
    base: str
    name: str
    train_split: str = "train"
    dev_split: str | None = None
    dev_fraction: float = 0.1
    test_split: str = "test"
    hard_negatives: int = 0            # negatives per pair: mined with the base model, or
    negatives_from: int | None = None  # taken from this run's rankings (then 0 means 3)
    mining: dict[str, Any] = field(default_factory=dict)  # range_min/max, margins, sampling_strategy
    max_pairs: int | None = None
    drop_leaked: bool = False
    config: TrainConfig = field(default_factory=TrainConfig)
    device: str | None = None
    evaluate_test: bool = True

    def __post_init__(self) -> None:
        check_model_name(self.name)
        if self.hard_negatives < 0:
            raise EmbtuiError(f"--hard-negatives must be 0 or more, got {self.hard_negatives}")

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["config"] = self.config.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FinetuneRequest":
        d = dict(data)
        d["config"] = TrainConfig.from_dict(d.get("config") or {})
        return cls(**d)


def check_model_name(name: str) -> None:
    if not name or not set(name) <= _NAME_CHARS or name.startswith(".") or name.lower() in ("bm25", "pipeline"):
        raise EmbtuiError(f"'{name}' cannot name a trained model",
                          "use letters, digits, '-', '_' and '.', not starting with '.'")


def models_dir(store: "Store") -> Path:
    return store.ws.root / "models"


def work_dir(store: "Store", name: str) -> Path:
    return models_dir(store) / f".{name}.training"


def check_new_model(store: "Store", name: str, *, resuming: bool = False) -> None:
    """A new model's name must be free (a saved spec or a finished model folder with it is kept)."""
    if resuming:
        return
    if store.get_model(name) is not None or (models_dir(store) / name / LINEAGE_FILE).exists():
        raise EmbtuiError(f"a model named '{name}' already exists",
                          "choose another --name, or remove it with `embtui models remove NAME`")


def read_lineage(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    try:
        return json.loads((Path(folder) / LINEAGE_FILE).read_text())
    except (OSError, ValueError):
        return None


def _doc_texts(store: "Store", project: str) -> tuple[list[str], dict[str, str]]:
    corpus = store.corpus(project)
    return corpus.ids, dict(zip(corpus.ids, corpus.encode_texts()))


def prepare_data(store: "Store", req: FinetuneRequest, *, progress: ProgressCallback | None = None,
                 cancel: CancelToken | None = None, log: Callable[[str], None] = lambda _: None) -> Any:
    """The training data with its negatives (leakage refused here, before any model loads)."""
    from embtui.engine.models import resolve_spec
    from embtui.engine.training import negatives
    from embtui.engine.training.data import build_training_data

    data = build_training_data(store, req.project, train_split=req.train_split,
                               dev_split=req.dev_split, dev_fraction=req.dev_fraction,
                               seed=req.config.seed, test_split=req.test_split, max_pairs=req.max_pairs,
                               drop_leaked=req.drop_leaked)
    leaked = data.leakage.get("leaked_queries", 0)
    log(f"training data: {len(data.pairs)} pairs of {len(data.train_qids)} queries; dev "
        f"{data.dev_definition['kind']} of {len(data.dev_qrels)} queries; leakage: "
        + (f"{leaked} training queries equal to test/dev queries left out (--drop-leaked)" if leaked
           else "none") + f" ({data.leakage['note']})")
    if req.negatives_from is not None:
        data, rep = negatives.from_run(store, data, req.negatives_from,
                                       num_negatives=req.hard_negatives or 3)
        log(f"negatives from run {req.negatives_from}: {rep['pairs_kept']} pairs kept")
    elif req.hard_negatives:
        base = resolve_spec(req.base, store)
        data, rep = negatives.mine(store, data, base, num_negatives=req.hard_negatives,
                                   device=req.device, progress=progress, cancel=cancel,
                                   **{k: v for k, v in req.mining.items() if v is not None})
        log(f"mined negatives: {rep['pairs_kept']} pairs kept, {rep['documents_from_cache']} "
            f"documents from the cache, {rep['documents_encoded_now']} encoded now, "
            f"{rep['excluded_relevant']} relevant or marked-relevant candidates left out")
    return data


def run_finetune(store: "Store", req: FinetuneRequest, *, progress: ProgressCallback | None = None,
                 cancel: CancelToken | None = None, log: Callable[[str], None] = lambda _: None,
                 resuming: bool = False) -> dict[str, Any]:
    """Train, save, register and evaluate (see the module docstring); returns the result JSON."""
    from embtui.engine.devices import resolve_device
    from embtui.engine.evaluate import versions
    from embtui.engine.models import ModelSpec, fingerprint, resolve_spec

    progress = progress or no_progress
    cancel = cancel or CancelToken()
    work = work_dir(store, req.name)
    check_new_model(store, req.name, resuming=resuming or work.exists())
    base = resolve_spec(req.base, store)
    if base.is_bm25 or base.is_pipeline:
        raise EmbtuiError(f"'{req.base}' is not a dense model to fine-tune", "pick a sentence-transformers model")
    base_fp = fingerprint(base, store)
    progress(Progress("prepare data", 0, 1))
    data = prepare_data(store, req, progress=progress, cancel=cancel, log=log)
    all_ids, doc_text = _doc_texts(store, req.project)
    dev_ids = dev_corpus_ids(all_ids, data.dev_qrels, req.config.dev_corpus, req.config.seed)
    dev_docs = {d: doc_text[d] for d in dev_ids}
    device = resolve_device(req.device or base.device)
    out = models_dir(store) / req.name
    t0 = time.perf_counter()
    res = train(data, base, req.config, doc_text, dev_docs, work, out, device=device,
                progress=progress, cancel=cancel, log=log)
    lineage = {
        "name": req.name, "kind": "bi-encoder", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "base": {"name": base.name, "model": base.model, "fingerprint": base_fp},
        "data": {**data.summary(), "hash": data.data_hash(doc_text)},
        "dev": {**data.dev_definition, "corpus_documents": len(dev_ids),
                "corpus": "all" if req.config.dev_corpus is None or len(dev_ids) == len(all_ids)
                else f"dev-judged + seeded sample to {req.config.dev_corpus}"},
        "config": req.config.to_dict(), "request": req.to_dict(),
        "best_step": res.best_step, "best_dev": res.best_dev, "base_dev": res.base_dev,
        "steps": res.steps, "train_seconds": round(res.seconds, 2),
        "trainer_seconds": round(res.loop_seconds, 2), "device": device,
        "batch_size_used": res.batch_size, "curves": res.curves.to_dict(),
        "warnings": res.curves.warnings, "versions": versions(),
    }
    write_json_atomic(out / LINEAGE_FILE, lineage)
    shutil.rmtree(work / "checkpoints", ignore_errors=True)
    spec = ModelSpec(model=str(out), name=req.name, query_prompt=base.query_prompt,
                     document_prompt=base.document_prompt, query_prompt_name=base.query_prompt_name,
                     document_prompt_name=base.document_prompt_name,
                     max_seq_length=req.config.max_seq_length or base.max_seq_length,
                     normalize=base.normalize, batch_size=base.batch_size)
    store.save_model(req.name, spec.to_dict())
    log(f"saved {out} and registered model '{req.name}' (best step {res.best_step})")
    result: dict[str, Any] = {"model": req.name, "path": str(out), "best_step": res.best_step,
                              "dev": res.best_dev, "base_dev": res.base_dev, "warnings": res.curves.warnings,
                              "train_seconds": round(time.perf_counter() - t0, 1)}
    if req.evaluate_test:
        result.update(evaluate_against_base(store, req.project, req.test_split, spec, base, device,
                                            progress=progress, cancel=cancel, metric=req.config.metric))
    return result


def evaluate_against_base(store: "Store", project: str, split: str, spec: Any, base: Any, device: str,
                          *, progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
                          metric: str = "ndcg@10") -> dict[str, Any]:
    """The new model's run on ``split``, the base's (reused when one exists) and a paired test."""
    from embtui.analysis.stats import paired_tests
    from embtui.engine.compare import run_values
    from embtui.engine.evaluate import EvalRequest, float_run_of, run_evaluation
    from embtui.engine.models import fingerprint

    new = run_evaluation(store, EvalRequest(project, spec, split=split, device=device),
                         progress=progress, cancel=cancel).run
    from embtui.engine.runs import find_identical_run

    base_req = EvalRequest(project, base, split=split, device=device)
    base_run = find_identical_run(store, base_req) or float_run_of(store, base_req, fingerprint(base, store))
    if base_run is None:
        base_run = run_evaluation(store, base_req, progress=progress, cancel=cancel).run
    a, b = run_values(store, new, metric), run_values(store, base_run, metric)
    qids = sorted(set(a) & set(b))
    test = paired_tests([a[q] for q in qids], [b[q] for q in qids])
    p = test.p("permutation")
    verdict = "n.s." if p is None or p >= 0.05 else ("better" if test.mean_delta > 0 else "worse")
    return {"run": {"id": new.id, "split": split, **{k: round(v, 6) for k, v in new.metrics.items()}},
            "base_run": {"id": base_run.id, **{k: round(v, 6) for k, v in base_run.metrics.items()}},
            "vs_base": {"metric": metric, "delta": round(test.mean_delta, 6),
                        "p_permutation": test.p("permutation"), "p_ttest": test.p("ttest"),
                        "wins": test.wins, "losses": test.losses, "verdict": verdict}}
