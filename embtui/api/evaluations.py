"""Evaluating models on a project split: plan once (validate, resolve every model, pick the split,
find identical finished runs), then run inline or submit as detached jobs — the same plan for
`embtui eval`, `eval --detach`, the Jobs pane's `e` and a notebook."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from embtui.errors import EmbtuiError

if TYPE_CHECKING:
    from embtui.engine.evaluate import EvalRequest
    from embtui.store import RunInfo, Store


@dataclass(frozen=True)
class PlannedEval:
    """One model of a plan: the request, and the identical finished run that stands in for it
    (None: it must run)."""

    request: "EvalRequest"
    reused: "RunInfo | None" = None


@dataclass(frozen=True)
class EvalPlan:
    """Everything decided before any run row or job exists. ``depth_note`` is said once (k or
    depth capped at the corpus size), not per model."""

    store: "Store"
    project: str
    split: str
    items: tuple[PlannedEval, ...]
    depth_note: str | None = None

    @property
    def todo(self) -> list["EvalRequest"]:
        return [item.request for item in self.items if item.reused is None]

    @property
    def reused(self) -> list["RunInfo"]:
        return [item.reused for item in self.items if item.reused is not None]


@dataclass(frozen=True)
class EvalOutcome:
    """A finished model of a plan: its run, the rankings when it ran now, whether it was reused."""

    run: "RunInfo"
    rankings: dict[str, list[tuple[str, float]]] | None = None
    reused: bool = False
    warnings: tuple[str, ...] = field(default_factory=tuple)


def default_split(project: Any, split: str | None) -> str:
    """``split`` as given, else the project's only split, else `test` if it has one."""
    if split:
        return split
    splits = list(project.splits)
    if len(splits) == 1:
        return splits[0]
    if "test" in splits or not splits:
        return "test"
    raise EmbtuiError(f"project '{project.name}' has no split 'test'",
                      f"pass --split, one of: {', '.join(splits)}")


def plan_evaluation(store: "Store", project: str, models: Sequence[str], *,
                    split: str | None = None, overrides: dict[str, Any] | None = None,
                    force: bool = False, **request: Any) -> EvalPlan:
    """Validate and decide: every model name resolves (an unknown one fails now, offline in well
    under a second, before any run or job exists), the split exists (default: the project's only
    split, else test), and with ``force`` False each model whose identical finished run exists is
    marked reused. ``request`` holds the other :class:`EvalRequest` fields (device, index, hnsw,
    ks, depth, ...); ``overrides`` the model options given on top of a saved spec."""
    from embtui.engine.devices import check_device_name
    from embtui.engine.evaluate import EvalRequest, depth_note
    from embtui.engine.models import resolve_spec
    from embtui.engine.runs import find_identical_run

    if request.get("device"):
        check_device_name(request["device"])
    specs = [resolve_spec(name, store, **(overrides or {})) for name in models]
    info = store.get_project(project)
    split = default_split(info, split)
    store.qrels(project, split)  # an unknown split fails here, with the splits there are
    items = []
    for spec in specs:
        req = EvalRequest(project=project, model=spec, split=split, **request)
        items.append(PlannedEval(req, None if force else find_identical_run(store, req)))
    note = depth_note(items[0].request, info.documents) if items else None
    return EvalPlan(store, project, split, tuple(items), note)


def run_inline(plan: EvalPlan, progress_for: Callable[[int, "EvalRequest"], Any] | None = None,
               ) -> list[EvalOutcome]:
    """Run the plan's evaluations here, one after another, in the plan's order (reused runs in
    their place). ``progress_for(i, request)`` gives a progress callback with ``close()``, or None."""
    from embtui.engine.evaluate import run_evaluation

    out = []
    for i, item in enumerate(plan.items):
        if item.reused is not None:
            out.append(EvalOutcome(item.reused, None, True))
            continue
        printer = progress_for(i, item.request) if progress_for else None
        try:
            res = run_evaluation(plan.store, item.request, progress=printer)
        finally:
            if printer is not None and hasattr(printer, "close"):
                printer.close()
        out.append(EvalOutcome(res.run, res.rankings, False,
                               tuple(res.run.info.get("warnings") or ())))
    return out


def submit_jobs(plan: EvalPlan) -> list[str]:
    """One detached job per model that must run; returns their ids (none for reused runs)."""
    from embtui.jobs import submit_eval

    return [submit_eval(plan.store.ws, req) for req in plan.todo]
