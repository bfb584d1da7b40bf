"""The frontier of a project split: every finished run as a point — quality (a metric), single-query
p99 latency from the matching profile (a pipeline: the sum of its stages', an upper bound), bytes
per document (the run's own record, else the profile's) — the Pareto-optimal runs on each cost, and "best under constraints" answered with the
run and its paired significance test against the next best one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from embtui.analysis.frontier import Point, pareto, under_constraints

if TYPE_CHECKING:
    from embtui.engine.profile import Profile
    from embtui.store import RunInfo, Store


@dataclass(frozen=True)
class Answer:
    """The best run under the constraints, the next best, and the test between them."""

    best: Point | None
    runner_up: Point | None = None
    p_value: float | None = None
    significant: bool | None = None
    note: str = ""


@dataclass(frozen=True)
class FrontierView:
    metric: str
    points: tuple[Point, ...]
    on_latency: frozenset[int] = field(default_factory=frozenset)
    on_memory: frozenset[int] = field(default_factory=frozenset)
    documents: int = 0
    missing_profiles: tuple[str, ...] = ()


def _precision(run: "RunInfo") -> str:
    return run.model_spec.get("quantize") or "float32"


def _profile_for(run: "RunInfo", profiles: Sequence["Profile"]) -> "Profile | None":
    """The profile of the run's model at the run's precision (by model name, else by the model the
    name stands for — a sweep point names its model and precision), preferring the run's device."""
    want = _precision(run)
    base = str(run.model_spec.get("model", ""))
    matches = [p for p in profiles if p.precision == want and p.model in (run.model_name, base)]
    matches.sort(key=lambda p: (p.model != run.model_name, p.device != (run.device or "")))
    return matches[0] if matches else None


def _pipeline_p99(run: "RunInfo", profiles: Sequence["Profile"]) -> float | None:
    """A pipeline's p99 as the sum of its stages' p99 (an upper bound: the p99 of a sum is at most
    the sum of the p99s); None unless every stage has a profile."""
    from embtui.engine.models import ModelSpec

    total = 0.0
    for stage in ModelSpec.from_dict(run.model_spec).stages():
        found = [p for p in profiles if p.model in (stage.name, stage.model) and p.precision == "float32"]
        if not found:
            return None
        total += found[0].latency_ms["p99"]
    return round(total, 3)


def load_frontier(store: "Store", project: str, split: str, metric: str = "ndcg@10") -> FrontierView:
    from embtui.engine.profile import Profile

    runs = [r for r in store.list_runs(project=project, split=split, status="done") if metric in r.metrics]
    profiles = [Profile.from_dict(p["result"]) for p in store.list_profiles(project)]
    points, missing = [], []
    for run in runs:
        if run.model_spec.get("pipeline") is not None:
            p99 = _pipeline_p99(run, profiles)
            if p99 is None:
                missing.append(run.model_name)
            points.append(Point(run.id, f"#{run.id} {run.model_name}", float(run.metrics[metric]), p99, None))
            continue
        prof = _profile_for(run, profiles)
        size = run.info.get("bytes_per_doc")
        if size is None and prof is not None:
            size = prof.bytes_per_doc.get(_precision(run)) or prof.bytes_per_doc.get("index")
        if prof is None:
            missing.append(run.model_name)
        points.append(Point(run.id, f"#{run.id} {run.model_name}", float(run.metrics[metric]),
                            prof.latency_ms["p99"] if prof else None, size))
    return FrontierView(metric, tuple(points), frozenset(pareto(points, "p99_ms")),
                        frozenset(pareto(points, "bytes_per_doc")), store.get_project(project).documents,
                        tuple(dict.fromkeys(missing)))


def best_under(store: "Store", view: FrontierView, *, max_p99_ms: float | None = None,
               max_gb: float | None = None, at_docs: int | None = None) -> Answer:
    """The best run meeting ``p99 <= max_p99_ms`` and ``memory <= max_gb`` at ``at_docs``
    documents (default: the project's size), with the randomization test (as `embtui compare`
    runs it) against the next best run that also meets them."""
    from embtui.engine.compare import compare_runs

    docs = at_docs or view.documents
    max_bytes = None if max_gb is None else max_gb * 1e9 / max(docs, 1)
    ranked = under_constraints(view.points, max_p99_ms=max_p99_ms, max_bytes_per_doc=max_bytes)
    if not ranked:
        return Answer(None, note="no run meets the constraints (runs without a profile have no latency)")
    best = ranked[0]
    if len(ranked) == 1:
        return Answer(best, note="the only run that meets the constraints")
    runner = ranked[1]
    comp = compare_runs(store, [runner.run_id, best.run_id], view.metric, baseline=runner.run_id)
    [test] = comp.tests
    return Answer(best, runner, test.p_primary, test.significant,
                  f"{'significantly' if test.significant else 'not significantly'} better than the next "
                  f"best (randomization test, p = {test.p_primary:.3g})")


def describe_answer(answer: Answer, metric: str) -> str:
    if answer.best is None:
        return answer.note
    line = f"best: {answer.best.label} ({metric} {answer.best.quality:.4f})"
    if answer.runner_up is not None:
        line += f"; next: {answer.runner_up.label} ({answer.runner_up.quality:.4f}); {answer.note}"
    else:
        line += f"; {answer.note}"
    return line


__all__ = ["Answer", "FrontierView", "best_under", "describe_answer", "load_frontier"]
