"""Routing over runs of one project split: the oracle (the ceiling), a cross-validated learned
router on cheap query features, each beside the best single run with a paired randomization test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from embtui.analysis.routing import RoutingReport, query_features, route
from embtui.errors import EmbtuiError

if TYPE_CHECKING:
    from embtui.store import Store


@dataclass(frozen=True)
class RoutingResult:
    report: RoutingReport
    metric: str
    names: tuple[str, ...]
    p_router: float | None       # router vs best single run (randomization test)
    p_oracle: float | None
    router_delta: float

    def to_dict(self) -> dict[str, Any]:
        r = self.report
        best = r.run_ids[r.best_single]
        return {"metric": self.metric, "queries": len(r.query_ids), "folds": r.folds,
                "runs": [{"id": rid, "model": n, "mean": m} for rid, n, m in zip(r.run_ids, self.names, r.means)],
                "best_single": {"id": best, "mean": r.means[r.best_single]},
                "oracle": {"mean": float(r.oracle.mean()), "p_vs_best": self.p_oracle},
                "router": {"mean": float(r.router.mean()), "delta_vs_best": self.router_delta,
                           "p_vs_best": self.p_router, "share": r.router_share()}}


def route_runs(store: "Store", run_ids: Sequence[int], metric: str = "ndcg@10", *, folds: int = 5,
               seed: int = 0) -> RoutingResult:
    from embtui.analysis.stats import paired_tests

    runs = [store.get_run(int(r)) for r in dict.fromkeys(run_ids)]
    if len({(r.project, r.split) for r in runs}) > 1:
        raise EmbtuiError("routing compares runs of one project split",
                          "pick runs from `embtui runs` with the same project and split")
    for r in runs:
        if r.status != "done":
            raise EmbtuiError(f"run {r.id} is {r.status}, not done")
    values = {}
    for r in runs:
        per_query = store.run_query_metrics(r.id)
        values[r.id] = {q: m[metric] for q, m in per_query.items() if metric in m}
        if not values[r.id]:
            raise EmbtuiError(f"run {r.id} has no {metric}", "pick a metric every run has, e.g. ndcg@10")
    project, split = runs[0].project, runs[0].split
    queries = store.queries(project, split)
    qids = list(queries)
    feats = query_features([queries[q] for q in qids], store.corpus(project).encode_texts())
    report = route(values, dict(zip(qids, feats)), folds=folds, seed=seed)
    base = report.values[:, report.best_single]
    router_test = paired_tests(report.router, base, tests=("permutation",), seed=seed)
    oracle_test = paired_tests(report.oracle, base, tests=("permutation",), seed=seed)
    return RoutingResult(report, metric, tuple(r.model_name for r in runs), router_test.p("permutation"),
                         oracle_test.p("permutation"), float(report.router.mean() - base.mean()))
