"""Improving a model, for the CLI, the Train pane and notebooks: fine-tune (inline or as a job),
distill, the gate for a model update, and the A/B report of live traffic.

A foreground ``finetune`` is a job run in this process: the same checkpoints, curves, log and
resume as a detached one (`embtui jobs resume ID` continues it after a Ctrl-C or a kill).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable

from embtui.engine.training.finetune import DEV_METRICS, LOSSES, PRECISIONS, TrainConfig
from embtui.engine.training.reranker import RerankerRequest
from embtui.engine.training.run import FinetuneRequest, read_lineage
from embtui.errors import EmbtuiError

if TYPE_CHECKING:  # pragma: no cover
    from embtui.store import Store

__all__ = ["DEV_METRICS", "FinetuneRequest", "LOSSES", "PRECISIONS", "RerankerRequest", "TrainConfig", "ab_test", "distill", "finetune", "gate",
           "model_lineage", "parse_dims", "run_or_model"]


def parse_dims(text: str | None) -> tuple[int, ...] | None:
    """``"384,256,128"`` -> (384, 256, 128); None/empty -> None."""
    if not text:
        return None
    try:
        dims = tuple(int(x) for x in str(text).split(",") if x.strip())
    except ValueError:
        raise EmbtuiError(f"--matryoshka takes dimensions like 384,256,128,64, not '{text}'") from None
    if not dims or any(d < 1 for d in dims):
        raise EmbtuiError(f"--matryoshka takes positive dimensions, not '{text}'")
    return dims


def finetune(workspace: str | os.PathLike[str] | Any, request: FinetuneRequest | RerankerRequest, *,
             detach: bool = False) -> dict[str, Any]:
    """Fine-tune as a job: detached -> ``{"model", "job_id"}`` at once; else run it here and return
    ``{"model", "job_id", "best_step", "dev", "run", "base_run", "vs_base", ...}``."""
    from embtui.jobs import api as jobs
    from embtui.jobs.worker import run_job

    job_id = jobs.submit_finetune(workspace, request, start=detach)
    if detach:
        return {"model": request.name, "job_id": job_id}
    ws = workspace.ws if hasattr(workspace, "ws") else workspace
    state = run_job(ws.root if hasattr(ws, "root") else ws, job_id)
    info = jobs.get_job(ws, job_id)
    if state != "done":
        raise EmbtuiError(f"fine-tuning job {job_id} {state}: {info.error or ''}".strip(),
                          f"see `embtui jobs log {job_id}`; `embtui jobs resume {job_id}` continues "
                          "from the last checkpoint")
    return {"job_id": job_id, **(jobs.job_result(ws, job_id) or {})}


def distill(store: "Store", teacher: str, name: str, *, student: str | None = None,
            **kw: Any) -> dict[str, Any]:
    """A static model2vec model from ``teacher`` or, with ``student``, that model trained to match
    the teacher's embeddings (MSELoss; needs ``project``)."""
    from embtui.engine.training.distill import distill_static, distill_student

    if student is None:
        return distill_static(store, teacher, name, **kw)
    if not kw.get("project"):
        raise EmbtuiError("a student is trained on a project's texts", "pass --project")
    kw.pop("pca_dims", None)
    return distill_student(store, teacher, student, name, **kw)


def model_lineage(store: "Store", name: str) -> dict[str, Any] | None:
    """The lineage record of a model trained or distilled here (None for other models)."""
    spec = store.get_model(name)
    if not spec or spec.get("model") in (None, "bm25", "pipeline"):
        return None
    return read_lineage(spec["model"])


def run_or_model(store: "Store", project: str, split: str, what: str,
                 progress_for: Callable[[int, Any], Any] | None = None) -> Any:
    """A finished run: ``what`` as a run id, else the run of that model or pipeline on the split
    (an identical finished run is reused, otherwise it is evaluated now)."""
    from embtui.api.evaluations import plan_evaluation, run_inline

    text = str(what).strip().lstrip("#")
    if text.isdigit():
        run = store.get_run(int(text))
        if run.status != "done":
            raise EmbtuiError(f"run {run.id} is {run.status}, not done")
        if (run.project, run.split) != (project, split):
            raise EmbtuiError(f"run {run.id} is of {run.project}/{run.split}, not {project}/{split}",
                              "compare runs of the same project split")
        return run
    plan = plan_evaluation(store, project, [text], split=split)
    return run_inline(plan, progress_for)[0].run


def gate(store: "Store", project: str, baseline: str, candidate: str, *, split: str = "test",
         metric: str = "ndcg@10", margin: float = 0.0, alpha: float = 0.05,
         progress_for: Callable[[int, Any], Any] | None = None) -> dict[str, Any]:
    """Non-inferiority of ``candidate`` against ``baseline`` (analysis/gate.py); both a run id or a
    model/pipeline name evaluated (or reused) on ``split``."""
    from embtui.analysis.gate import gate as gate_test
    from embtui.engine.compare import run_values
    from embtui.engine.metric_names import parse_metric

    parse_metric(metric)
    if not 0 < alpha < 1:
        raise EmbtuiError(f"--alpha must be between 0 and 1, got {alpha}")
    if margin < 0:
        raise EmbtuiError(f"--margin is a tolerance, 0 or more, got {margin}")
    base_run = run_or_model(store, project, split, baseline, progress_for)
    cand_run = run_or_model(store, project, split, candidate, progress_for)
    a, b = run_values(store, cand_run, metric), run_values(store, base_run, metric)
    qids = sorted(set(a) & set(b))
    if not qids:
        raise EmbtuiError("the two runs score no query in common")
    res = gate_test([a[q] for q in qids], [b[q] for q in qids], metric=metric, margin=margin, alpha=alpha)
    return {"baseline": {"run": base_run.id, "model": base_run.model_name},
            "candidate": {"run": cand_run.id, "model": cand_run.model_name},
            "split": split, **res.to_dict()}


def ab_test(path: str | os.PathLike[str], *, control: str | None = None, alpha: float = 0.05,
            effect: float = 0.01, power: float = 0.8) -> dict[str, Any]:
    from embtui.analysis.ab import ab_report
    from embtui.data.interactions import read_interactions

    impressions = read_interactions(path)
    try:
        return {"log": str(path), **ab_report(impressions, control=control, alpha=alpha, effect=effect,
                                              power=power)}
    except ValueError as exc:
        raise EmbtuiError(f"{path}: {exc}") from None
