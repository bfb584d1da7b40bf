"""Sweeps: one model over a grid of cheaper ways to use its embeddings — truncation, int8 or binary
codes, rescoring, HNSW search breadth (float32 or over the int8/binary codes) — each point its own
run, all from one encoding (every point after the first reads the embedding cache). The full
float32 point comes first, so every other point records its retention against it. Points are named
after what they change (``all-MiniLM-L6-v2 d256 int8 x4 ef64``), so tables, comparisons and reports
tell them apart.

A pipeline with a rerank stage sweeps its reranker's depth instead (``depths``): each point sets the
last rerank stage's depth, deepest first, so the first point encodes every candidate document any
point needs and the others read them from the cache; the others' retention is against it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Sequence

from embtui.api.evaluations import EvalPlan, PlannedEval, plan_evaluation
from embtui.errors import EmbtuiError

if TYPE_CHECKING:
    from embtui.store import RunInfo, Store

PRECISIONS = ("float32", "int8", "binary")


@dataclass(frozen=True)
class SweepPoint:
    truncate_dim: int | None
    precision: str
    rescore: int = 1
    hnsw_ef: int | None = None
    depth: int | None = None  # the last rerank stage's depth (a pipeline's points)

    def suffix(self) -> str:
        parts = [f"d{self.truncate_dim}" if self.truncate_dim else "",
                 self.precision if self.precision != "float32" else "",
                 f"x{self.rescore}" if self.rescore > 1 else "",
                 f"ef{self.hnsw_ef}" if self.hnsw_ef else "",
                 f"depth{self.depth}" if self.depth else ""]
        return " ".join(p for p in parts if p)

    def config(self) -> dict[str, Any]:
        return {"truncate_dim": self.truncate_dim, "precision": self.precision, "rescore": self.rescore,
                "hnsw_ef": self.hnsw_ef, "depth": self.depth}


def sweep_points(truncate_dims: Sequence[int | None] = (None,), precisions: Sequence[str] = ("float32",),
                 rescores: Sequence[int] = (1,), hnsw_efs: Sequence[int | None] = (None,),
                 depths: Sequence[int] = ()) -> list[SweepPoint]:
    """The grid, reference (full float32, exact) first; rescoring applies to quantised points only;
    HNSW breadth to every precision (``None`` among ``hnsw_efs``: exact search as well; quantised
    points are otherwise exact). With ``depths`` (a pipeline's reranker) the grid is those depths
    alone, deepest first, and the other axes must be left at their defaults."""
    if depths:
        if (list(truncate_dims) != [None] or list(precisions) != ["float32"] or list(rescores) != [1]
                or list(hnsw_efs) != [None]):
            raise EmbtuiError("--depth sweeps a pipeline's reranker; --truncate-dim, --precision, --rescore "
                              "and --hnsw-ef sweep a dense model", "sweep them separately")
        for d in depths:
            if isinstance(d, bool) or not isinstance(d, int) or d < 1:
                raise EmbtuiError(f"--depth {d!r}: a rerank depth is a whole number >= 1")
        return [SweepPoint(None, "float32", depth=d) for d in sorted(set(depths), reverse=True)]
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
                for ef in hnsw_efs:
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
    pipeline = _rerank_pipeline(store, model, points) if any(p.depth for p in points) else None
    items = []
    plan = None
    for point in points:
        overrides: dict[str, Any] = {"truncate_dim": point.truncate_dim,
                                     "quantize": None if point.precision == "float32" else point.precision,
                                     "rescore": point.rescore}
        if point.depth:
            assert pipeline is not None
            overrides["pipeline"] = _with_last_depth(pipeline, point.depth)
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


def _rerank_pipeline(store: "Store", model: str, points: Sequence[SweepPoint]) -> dict[str, Any]:
    """The saved pipeline ``model`` names, checked to have a rerank stage that every depth can
    reach (no deeper than the candidates the stage before hands it)."""
    from embtui.engine.models import resolve_spec
    from embtui.engine.pipelines import Pipeline

    spec = resolve_spec(model, store)
    if spec.pipeline is None or not Pipeline.from_dict(spec.pipeline).rerank:
        what = "a pipeline without a rerank stage" if spec.pipeline is not None else "not a pipeline"
        raise EmbtuiError(f"--depth sweeps a reranker's depth, and '{model}' is {what}",
                          "make one with `embtui pipelines add NAME --retrieve M --rerank M2 --depth N`")
    p = Pipeline.from_dict(spec.pipeline)
    before = p.rerank[-2].depth if len(p.rerank) > 1 else p.depth
    deepest = max(pt.depth or 0 for pt in points)
    if before is not None and deepest > before:
        raise EmbtuiError(f"--depth {deepest}: the reranker of '{model}' is handed only {before} candidates",
                          f"sweep depths up to {before}")
    return spec.pipeline


def _with_last_depth(pipeline: dict[str, Any], depth: int) -> dict[str, Any]:
    from embtui.engine.pipelines import Pipeline

    p = Pipeline.from_dict(pipeline)
    return replace(p, rerank=(*p.rerank[:-1], replace(p.rerank[-1], depth=depth))).to_dict()


def documents_encoded(run: "RunInfo") -> int | None:
    """Documents a run ran through a model now (not from the cache): a dense run's corpus encoding,
    or a pipeline's over its stages (first-stage encodings and bi-encoder rerank candidates);
    None when nothing says (bm25, a cross-encoder alone: they encode nothing)."""
    enc = (run.info.get("encode") or {}).get("documents") or {}
    if "encoded" in enc:
        return int(enc["encoded"])
    stages = (run.info.get("pipeline") or {}).get("stages")
    if not stages:
        return None
    found = [((st.get("info") or {}).get("encode") or st.get("encode") or {}).get("documents", {}).get("encoded")
             for st in stages]
    found = [int(n) for n in found if n is not None]
    return sum(found) if found else 0


def sweep_rows(points: Sequence[SweepPoint], outcomes: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per point: run id, name, metrics, config, bytes per document, retention (a depth
    point's against the sweep's first, deepest, point), documents encoded, the index's recall@10
    against exact search and its bytes per document where it has one, a reranker's candidate
    recall, seconds, and whether an identical run was reused."""
    from embtui.engine.evaluate import retention

    rows = []
    first = outcomes[0].run if outcomes else None
    for point, o in zip(points, outcomes):
        run = o.run
        kept = run.info.get("retention")
        if kept is None and point.depth and first is not None and run.id != first.id:
            kept = {"against_run": first.id, **retention(run.metrics, first.metrics)}
        stages = (run.info.get("pipeline") or {}).get("stages") or []
        reranks = [st for st in stages if str(st.get("stage", "")).startswith("rerank")]
        cand = {k: v for k, v in (reranks[-1] if reranks else {}).items() if k.startswith("candidate_recall@")}
        rows.append({"id": run.id, "model": run.model_name, "metrics": run.metrics, "config": point.config(),
                     "bytes_per_doc": run.info.get("bytes_per_doc"),
                     "index_bytes_per_doc": run.info.get("index_bytes_per_doc"),
                     "ann_recall@10": run.info.get("ann_recall@10"),
                     "candidate_recall": next(iter(cand.values()), None),
                     "retention": kept, "documents_encoded": documents_encoded(run),
                     "seconds": run.timings.get("total_s"), "reused": o.reused})
    return rows
