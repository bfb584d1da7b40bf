"""Comparing runs like a researcher: per-query deltas, paired significance tests, Holm, slices, corrected judgments.

Everything here reads stored runs (per-query metrics, rankings, qrels) through the Store and returns
frozen dataclasses, so the CLI, the report writer and the TUI share one implementation:

* :func:`compare_runs` -> :class:`Comparison`: the runs' per-query values on the queries they all
  scored, per-query deltas against a baseline (sorted, worst first), wins/ties/losses and paired
  tests (t-test, Wilcoxon signed-rank, randomization test, bootstrap CI of the mean difference),
  with Holm-Bonferroni adjusted p-values across the runs compared with the baseline;
  :func:`compare_metrics` does the same for several metrics, reading each run once.
* :func:`slice_metrics` -> :class:`SliceTable`: the same split by query length, number of relevant
  documents, imported query metadata or annotation labels, with tests within each slice and flags
  for slices where a run does significantly worse than its own average or than the baseline.
* :func:`corrected_metrics`: metrics re-scored on qrels + the hand-made overlay (the overlay is
  written by embtui/api/judgments.py).

The statistics and the comparison objects are pure and live in embtui/analysis/ (stats.py,
comparison.py); this module reads the runs, judgments and query data from the store, checks the
request, and hands the data over.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from embtui.analysis.comparison import (Comparison, SliceData, SliceTable, build_comparison,
                                        slice_needs, slice_table)
from embtui.analysis.stats import ALPHA, N_RESAMPLES, SEED, TESTS
from embtui.engine.metrics import evaluate, parse_metric
from embtui.errors import EmbtuiError


# ----------------------------------------------------------------------------- loading runs


def _load_runs(store: Any, run_ids: Sequence[int | str]) -> list[Any]:
    ids: list[int] = []
    for r in run_ids:
        try:
            ids.append(int(r))
        except (TypeError, ValueError):
            raise EmbtuiError(f"'{r}' is not a run id", "run ids are numbers: see `embtui runs`") from None
    if len(ids) < 2:
        raise EmbtuiError("compare needs at least two runs", "pass two or more run ids")
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise EmbtuiError(f"run {dup} is given twice", "pass each run once")
    runs = [store.get_run(i) for i in ids]
    for run in runs:
        if run.status != "done":
            raise EmbtuiError(f"run {run.id} is {run.status}, not done", "compare finished runs only")
    first = runs[0]
    for run in runs[1:]:
        if (run.project, run.split) != (first.project, first.split):
            raise EmbtuiError(
                f"runs {first.id} ({first.project}/{first.split}) and {run.id} "
                f"({run.project}/{run.split}) are from different projects or splits",
                "compare runs of one project and split")
    return runs


def _check_metric(metric: str, runs: Sequence[Any]) -> tuple[str, int | None]:
    family, k = parse_metric(metric)
    if k is not None:
        for run in runs:
            depth = run.index_config.get("depth")
            if depth and k > int(depth):
                raise EmbtuiError(f"{metric} needs {k} results per query but run {run.id} kept {depth}",
                                  "pick a smaller cutoff")
    return family, k


def skips_unanswerable(run: Any) -> bool:
    """Whether a run left judged queries with no relevant document out of its means: asked with
    --skip-unanswerable, or made before trec_eval's convention (runs without the ``unanswerable``
    count), so re-scoring it keeps the convention its stored numbers used."""
    info = getattr(run, "info", None) or {}
    return bool(info.get("skip_unanswerable", "unanswerable" not in info))


def run_values(store: Any, run: Any, metric: str, qrels: Mapping[str, Mapping[str, int]] | None = None,
               ) -> dict[str, float]:
    """query_id -> value of ``metric`` for one run: stored per-query metrics when present,
    else (or with ``qrels`` given, e.g. corrected judgments) re-scored from the stored rankings."""
    if qrels is None:
        stored = store.run_query_metrics(run.id)
        if stored and all(metric in v for v in stored.values()):
            return {q: float(v[metric]) for q, v in stored.items()}
        qrels = store.qrels(run.project, run.split)
    result = evaluate(qrels, store.run_rankings(run.id), metrics=[metric],
                      skip_unanswerable=skips_unanswerable(run))
    return {q: float(v[metric]) for q, v in result.per_query.items()}


def compare_runs(store: Any, run_ids: Sequence[int | str], metric: str = "ndcg@10",
                 baseline: int | str | None = None, qrels_overlay: bool = False, *,
                 tests: Iterable[str] = TESTS, alpha: float = ALPHA, n_resamples: int = N_RESAMPLES,
                 seed: int = SEED) -> Comparison:
    """Compare two or more runs of one project split on ``metric`` against a baseline.

    ``baseline`` defaults to the first run. With ``qrels_overlay`` every run is re-scored on the
    imported qrels plus the hand-made overlay judgments. Queries not scored by every run are left
    out (counted in ``dropped``). p-values are Holm-adjusted across the non-baseline runs.
    """
    return compare_metrics(store, run_ids, [metric], baseline, qrels_overlay, tests=tests, alpha=alpha,
                           n_resamples=n_resamples, seed=seed)[metric]


def compare_metrics(store: Any, run_ids: Sequence[int | str], metrics: Sequence[str],
                    baseline: int | str | None = None, qrels_overlay: bool = False, *,
                    tests: Iterable[str] = TESTS, alpha: float = ALPHA, n_resamples: int = N_RESAMPLES,
                    seed: int = SEED) -> dict[str, Comparison]:
    """:func:`compare_runs` for several metrics at once (each run's data is read once).

    For a table of significance markers pass ``tests=("permutation",)``:
    ``compare_metrics(...)[metric].test_for(run_id).marker``.
    """
    tests = tuple(tests)
    runs = _load_runs(store, run_ids)
    metrics = list(dict.fromkeys(metrics))
    for metric in metrics:
        _check_metric(metric, runs)
    by_id = {r.id: r for r in runs}
    base_id = runs[0].id if baseline is None else _as_id(baseline)
    if base_id not in by_id:
        raise EmbtuiError(f"baseline run {baseline} is not one of the compared runs",
                          f"pick one of {', '.join(str(r.id) for r in runs)}")
    project, split = runs[0].project, runs[0].split
    qrels = store.corrected_qrels(project, split) if qrels_overlay else None
    judged = qrels if qrels is not None else store.qrels(project, split)
    texts = store.queries(project)
    stored = {r.id: ({} if qrels_overlay else store.run_query_metrics(r.id)) for r in runs}
    rankings: dict[int, Any] = {}
    out: dict[str, Comparison] = {}
    for metric in metrics:
        values: dict[int, dict[str, float]] = {}
        for r in runs:
            if stored[r.id] and all(metric in v for v in stored[r.id].values()):
                values[r.id] = {q: float(v[metric]) for q, v in stored[r.id].items()}
            else:
                if r.id not in rankings:
                    rankings[r.id] = store.run_rankings(r.id)
                result = evaluate(judged, rankings[r.id], metrics=[metric],
                                  skip_unanswerable=skips_unanswerable(r))
                values[r.id] = {q: float(v[metric]) for q, v in result.per_query.items()}
        out[metric] = build_comparison(runs, base_id, metric, values, judged, texts, qrels_overlay, tests,
                                  alpha, n_resamples, seed)
    return out


def _as_id(value: int | str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise EmbtuiError(f"'{value}' is not a run id", "run ids are numbers: see `embtui runs`") from None


# ----------------------------------------------------------------------------- slices


def slice_data(store: Any, comp: Comparison, by: str) -> SliceData:
    """The one piece of query data grouping ``by`` needs, read from the store."""
    need = slice_needs(by)
    if need == "texts":
        return SliceData(texts=store.queries(comp.project))
    if need == "qrels":
        return SliceData(qrels=store.corrected_qrels(comp.project, comp.split) if comp.qrels_overlay
                         else store.qrels(comp.project, comp.split))
    if need == "labels":
        return SliceData(labels=store.annotations.query_labels(comp.project))
    return SliceData(meta=store.query_metadata(comp.project))


def slice_comparison(store: Any, comp: Comparison, by: str, *, alpha: float = ALPHA,
                     n_resamples: int = N_RESAMPLES, seed: int = SEED) -> SliceTable:
    """Slice an existing :class:`Comparison` (no re-reading of runs)."""
    return slice_table(comp, by, slice_data(store, comp, by), alpha=alpha,
                       n_resamples=n_resamples, seed=seed)


def slice_metrics(store: Any, run_ids: Sequence[int | str], metric: str = "ndcg@10",
                  by: str = "length", baseline: int | str | None = None, qrels_overlay: bool = False,
                  *, alpha: float = ALPHA, n_resamples: int = N_RESAMPLES, seed: int = SEED,
                  ) -> SliceTable:
    """``metric`` per subgroup of queries for two or more runs (see :data:`SLICE_KINDS` for ``by``)."""
    comp = compare_runs(store, run_ids, metric, baseline, qrels_overlay, tests=("permutation",),
                        alpha=alpha, n_resamples=n_resamples, seed=seed)
    return slice_comparison(store, comp, by, alpha=alpha, n_resamples=n_resamples, seed=seed)


def default_slices(store: Any, project: str, max_values: int = 12) -> list[str]:
    """Groupings worth showing for a project: length, relevant documents, and top-level metadata
    fields with few distinct values (at least two groups), and tags when there are annotations."""
    out = ["length", "relevant"]
    meta = store.query_metadata(project)
    fields: dict[str, set[str]] = {}
    for m in meta.values():
        if isinstance(m, dict):
            for k, v in m.items():
                if not isinstance(v, (dict, list)):
                    fields.setdefault(k, set()).add(str(v))
    for k, vals in sorted(fields.items()):
        if 2 <= len(vals) <= max_values:
            out.append(f"meta:{k}")
    if store.annotations.labels(project):
        out.append("tag")
    return out


# ----------------------------------------------------------------------------- corrected judgments


def corrected_result(store: Any, run_id: int) -> Any:
    """The run's stored rankings re-scored on qrels + overlay: a ``MetricResult`` with the same
    metric names as the run."""
    run = store.get_run(int(run_id))
    names = list(run.metrics) or None
    qrels = store.corrected_qrels(run.project, run.split)
    rankings = store.run_rankings(run.id)
    if names is None:
        return evaluate(qrels, rankings, skip_unanswerable=skips_unanswerable(run))
    return evaluate(qrels, rankings, metrics=names, skip_unanswerable=skips_unanswerable(run))


def corrected_metrics(store: Any, run_id: int) -> dict[str, float]:
    """Metric name -> mean value of the run on the corrected judgments (qrels + overlay)."""
    return dict(corrected_result(store, run_id).aggregate)
