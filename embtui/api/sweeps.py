"""Sweeps: one model over a grid of cheaper ways to use its embeddings — truncation, int8 or binary
codes, rescoring, HNSW search breadth — each point its own run, all from one encoding (every point
after the first reads the embedding cache). The full float32 point comes first, so every other
point records its retention against it. Points are named after what they change
(``all-MiniLM-L6-v2 d256 int8 x4``), so tables, comparisons and reports tell them apart."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Sequence

from embtui.api.evaluations import EvalPlan, PlannedEval, plan_evaluation
from embtui.errors import EmbtuiError

if TYPE_CHECKING:
    from embtui.store import Store

PRECISIONS = ("float32", "int8", "binary")


@dataclass(frozen=True)
class SweepPoint:
    truncate_dim: int | None
    precision: str
    rescore: int = 1
    hnsw_ef: int | None = None

    def suffix(self) -> str:
        parts = [f"d{self.truncate_dim}" if self.truncate_dim else "",
                 self.precision if self.precision != "float32" else "",
                 f"x{self.rescore}" if self.rescore > 1 else "",
                 f"ef{self.hnsw_ef}" if self.hnsw_ef else ""]
        return " ".join(p for p in parts if p)

    def config(self) -> dict[str, Any]:
        return {"truncate_dim": self.truncate_dim, "precision": self.precision, "rescore": self.rescore,
                "hnsw_ef": self.hnsw_ef}


def sweep_points(truncate_dims: Sequence[int | None] = (None,), precisions: Sequence[str] = ("float32",),
                 rescores: Sequence[int] = (1,), hnsw_efs: Sequence[int | None] = (None,)) -> list[SweepPoint]:
    """The grid, reference (full float32, exact) first; rescoring applies to quantised points only
    and HNSW breadth to float32 ones (quantised search is exact)."""
    for p in precisions:
        if p not in PRECISIONS:
            raise EmbtuiError(f"unknown precision '{p}'", f"use {', '.join(PRECISIONS)}")
    for r in rescores:
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise EmbtuiError(f"--rescore {r!r}: a multiplier is a whole number >= 1")
    for t in truncate_dims:
        if t is not None and t < 1:
            raise EmbtuiError(f"--truncate-dim {t}: a dimension is at least 1")
    points = [SweepPoint(None, "float32")]
    for t in truncate_dims:
        for p in precisions:
            for r in (rescores if p != "float32" else (1,)):
                for ef in (hnsw_efs if p == "float32" else (None,)):
                    point = SweepPoint(t, p, r, ef)
                    if point not in points:
                        points.append(point)
    return points


def plan_sweep(store: "Store", project: str, model: str, points: Sequence[SweepPoint], *,
               split: str | None = None, force: bool = False, **request: Any) -> EvalPlan:
    """One evaluation plan with a request per point (validated all at once, before any run)."""
    from embtui.engine.hnsw import HnswConfig
    from embtui.engine.runs import find_identical_run

    base_hnsw = request.pop("hnsw", None) or HnswConfig()
    items = []
    plan = None
    for point in points:
        overrides: dict[str, Any] = {"truncate_dim": point.truncate_dim,
                                     "quantize": None if point.precision == "float32" else point.precision,
                                     "rescore": point.rescore}
        name = f"{model} {point.suffix()}".strip()
        extra = dict(request)
        if point.hnsw_ef:
            extra.update(index="hnsw", hnsw=HnswConfig.from_dict({**base_hnsw.to_dict(),
                                                                  "expansion_search": point.hnsw_ef}))
        elif point.precision != "float32":
            extra["index"] = "exact"
        plan = plan_evaluation(store, project, [model], split=split, force=True, overrides=overrides,
                               **extra)
        for item in plan.items:  # named after the point; reuse is decided under that name
            req = replace(item.request, model=replace(item.request.model, name=name))
            items.append(PlannedEval(req, None if force else find_identical_run(store, req)))
    assert plan is not None
    return EvalPlan(store, plan.project, plan.split, tuple(items), plan.depth_note)
