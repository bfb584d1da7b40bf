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
* :func:`corrected_metrics`, :func:`mark_relevant`: metrics re-scored on qrels + the hand-made
  overlay, and the one call a UI needs to say "this retrieved document is actually relevant".

Tests are scipy's (``ttest_rel``, ``wilcoxon``, ``permutation_test`` with
``permutation_type='samples'``, paired ``bootstrap``) with a fixed seed, so a report is
reproducible number for number. The randomization test is the primary one for verdicts (Smucker,
Allan & Carterette, CIKM 2007: it and the t-test agree, and it assumes nothing about the shape of
per-query score differences, which for IR metrics is bounded and lumpy).
"""

from __future__ import annotations

import inspect
import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from embtui.engine.metrics import evaluate, parse_metric
from embtui.errors import EmbtuiError

TESTS: tuple[str, ...] = ("ttest", "wilcoxon", "permutation", "bootstrap")
TEST_NAMES = {"ttest": "paired t-test", "wilcoxon": "Wilcoxon signed-rank",
              "permutation": "randomization test", "bootstrap": "bootstrap CI"}
PRIMARY_TEST = "permutation"
ALPHA = 0.05
N_RESAMPLES = 10_000
SEED = 20240607
CONFIDENCE = 0.95
TIE_EPS = 1e-9  # per-query differences within this are ties

LENGTH_BUCKETS: tuple[tuple[str, int, int], ...] = (
    ("1-5 words", 1, 5), ("6-10 words", 6, 10), ("11-20 words", 11, 20), ("21+ words", 21, 10**9),
)
SLICE_KINDS = ("length", "length-quantiles", "relevant", "tag", "meta:<path>")


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class TestResult:
    """Paired tests of ``run - baseline`` over the same queries (raw p-values; see PairedTest for Holm)."""

    n: int
    mean_run: float
    mean_baseline: float
    mean_delta: float
    wins: int
    ties: int
    losses: int
    effect_size: float  # Cohen's d_z: mean difference / standard deviation of the differences
    t_statistic: float | None = None
    p_ttest: float | None = None
    w_statistic: float | None = None
    p_wilcoxon: float | None = None
    p_permutation: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    note: str | None = None  # e.g. "all differences are zero"

    def p(self, test: str) -> float | None:
        return {"ttest": self.p_ttest, "wilcoxon": self.p_wilcoxon,
                "permutation": self.p_permutation}.get(test)


@dataclass(frozen=True)
class PairedTest:
    """One run against the baseline: the tests plus Holm-adjusted p-values and a verdict."""

    run_id: int
    baseline_id: int
    metric: str
    result: TestResult
    p_holm: dict[str, float] = field(default_factory=dict)  # test -> Holm-adjusted p
    alpha: float = ALPHA
    primary: str = PRIMARY_TEST

    @property
    def mean_delta(self) -> float:
        return self.result.mean_delta

    @property
    def p_primary(self) -> float | None:
        """The primary test's Holm-adjusted p-value (the raw one when only one run is compared)."""
        return self.p_holm.get(self.primary, self.result.p(self.primary))

    @property
    def significant(self) -> bool:
        p = self.p_primary
        return p is not None and p < self.alpha and abs(self.result.mean_delta) > TIE_EPS

    @property
    def verdict(self) -> str:
        """``"better"``, ``"worse"`` or ``"n.s."`` (not significant at ``alpha`` after Holm)."""
        if not self.significant:
            return "n.s."
        return "better" if self.result.mean_delta > 0 else "worse"

    @property
    def stars(self) -> str:
        """``*``/``**``/``***`` for adjusted p below 0.05/0.01/0.001; empty when not significant."""
        p = self.p_primary
        if p is None or not self.significant:
            return ""
        return "***" if p < 0.001 else "**" if p < 0.01 else "*"

    @property
    def marker(self) -> str:
        """A short cell marker for a table: ``▲**`` (better), ``▼*`` (worse) or empty."""
        if not self.significant:
            return ""
        return ("▲" if self.result.mean_delta > 0 else "▼") + self.stars

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        return {"run_id": self.run_id, "baseline_id": self.baseline_id, "metric": self.metric,
                "n": r.n, "mean_run": r.mean_run, "mean_baseline": r.mean_baseline,
                "mean_delta": r.mean_delta, "ci_low": r.ci_low, "ci_high": r.ci_high,
                "confidence": CONFIDENCE, "wins": r.wins, "ties": r.ties, "losses": r.losses,
                "effect_size_dz": r.effect_size, "t_statistic": r.t_statistic, "p_ttest": r.p_ttest,
                "w_statistic": r.w_statistic, "p_wilcoxon": r.p_wilcoxon,
                "p_permutation": r.p_permutation, "p_holm": dict(self.p_holm),
                "primary_test": self.primary, "alpha": self.alpha, "significant": self.significant,
                "verdict": self.verdict, "note": r.note}


@dataclass(frozen=True)
class QueryDelta:
    """One query's value for a run and the baseline."""

    query_id: str
    text: str
    n_relevant: int
    baseline: float
    value: float

    @property
    def delta(self) -> float:
        return self.value - self.baseline

    @property
    def outcome(self) -> str:
        d = self.delta
        return "win" if d > TIE_EPS else "loss" if d < -TIE_EPS else "tie"

    def to_dict(self) -> dict[str, Any]:
        return {"query_id": self.query_id, "text": self.text, "n_relevant": self.n_relevant,
                "baseline": self.baseline, "value": self.value, "delta": self.delta,
                "outcome": self.outcome}


@dataclass(frozen=True)
class Comparison:
    """Two or more runs of one project split on one metric, each non-baseline run tested against the baseline.

    ``values[run_id][query_id]`` holds every run's value on the ``query_ids`` all runs scored;
    ``deltas[run_id]`` (non-baseline runs) is sorted by delta, biggest loss first; ``tests`` are in
    ``run_ids`` order without the baseline. Treat the dicts as read-only.
    """

    project: str
    split: str
    metric: str
    run_ids: tuple[int, ...]
    baseline_id: int
    runs: dict[int, Any]  # run_id -> RunInfo
    query_ids: tuple[str, ...]
    values: dict[int, dict[str, float]]
    means: dict[int, float]
    deltas: dict[int, tuple[QueryDelta, ...]]
    tests: tuple[PairedTest, ...]
    dropped: dict[int, int]  # run_id -> queries it scored that another run did not
    qrels_overlay: bool = False
    n_resamples: int = N_RESAMPLES
    seed: int = SEED

    @property
    def others(self) -> tuple[int, ...]:
        return tuple(r for r in self.run_ids if r != self.baseline_id)

    def test_for(self, run_id: int) -> PairedTest:
        for t in self.tests:
            if t.run_id == run_id:
                return t
        raise KeyError(run_id)

    def query_deltas(self, run_id: int | None = None) -> tuple[QueryDelta, ...]:
        """Per-query deltas of ``run_id`` (default: the first non-baseline run), worst first."""
        return self.deltas[self.others[0] if run_id is None else run_id]

    def label(self, run_id: int) -> str:
        run = self.runs[run_id]
        return f"{run_id}:{run.model_name}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project, "split": self.split, "metric": self.metric,
            "run_ids": list(self.run_ids), "baseline_id": self.baseline_id,
            "qrels_overlay": self.qrels_overlay, "queries": len(self.query_ids),
            "dropped": {str(k): v for k, v in self.dropped.items()},
            "n_resamples": self.n_resamples, "seed": self.seed,
            "runs": {str(r): {"model": self.runs[r].model_name, "mean": self.means[r]}
                     for r in self.run_ids},
            "tests": [t.to_dict() for t in self.tests],
            "per_query": {str(r): [d.to_dict() for d in self.deltas[r]] for r in self.others},
        }


# ----------------------------------------------------------------------------- statistics


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni step-down adjusted p-values, in the input order (None/NaN stay None).

    Sort the m p-values ascending; the i-th smallest (1-based) is multiplied by (m - i + 1), then
    a running maximum keeps the adjusted values monotone, capped at 1. Rejecting where the adjusted
    p < alpha is Holm's procedure at family-wise error rate alpha.
    """
    idx = [i for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda j: pvalues[j])):  # type: ignore[arg-type, return-value]
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))  # type: ignore[arg-type]
        out[i] = running
    return out


def _rng_kwargs(func: Any, seed: int) -> dict[str, Any]:
    """scipy >= 1.15 takes ``rng``; older releases ``random_state``."""
    params = inspect.signature(func).parameters
    rng = np.random.default_rng(seed)
    return {"rng": rng} if "rng" in params else {"random_state": rng}


def _mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


def _mean_diff_independent(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _finite(x: Any) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def paired_tests(run: Sequence[float], baseline: Sequence[float], *, tests: Iterable[str] = TESTS,
                 n_resamples: int = N_RESAMPLES, seed: int = SEED,
                 confidence: float = CONFIDENCE) -> TestResult:
    """Paired tests of ``run`` against ``baseline`` (same queries, same order), via scipy.

    * ``ttest``: ``scipy.stats.ttest_rel(run, baseline)``
    * ``wilcoxon``: ``scipy.stats.wilcoxon(run, baseline)`` (zero differences dropped, scipy's default)
    * ``permutation``: ``scipy.stats.permutation_test((run, baseline), mean difference,
      permutation_type='samples')``: swaps each query's pair of values at random
    * ``bootstrap``: ``scipy.stats.bootstrap((run, baseline), mean difference, paired=True)``, BCa

    When every difference is zero no test is run: all p-values are 1 and the CI is [0, 0].
    """
    from scipy import stats

    tests = tuple(tests)
    unknown = [t for t in tests if t not in TESTS]
    if unknown:
        raise EmbtuiError(f"unknown test '{unknown[0]}'", f"use any of {', '.join(TESTS)}")
    x = np.asarray(run, dtype=np.float64)
    y = np.asarray(baseline, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("run and baseline must be 1-d and of the same length")
    n = int(x.size)
    d = x - y
    wins = int((d > TIE_EPS).sum())
    losses = int((d < -TIE_EPS).sum())
    base = dict(n=n, mean_run=float(x.mean()) if n else math.nan,
                mean_baseline=float(y.mean()) if n else math.nan,
                mean_delta=float(d.mean()) if n else math.nan, wins=wins, ties=n - wins - losses,
                losses=losses)
    sd = float(d.std(ddof=1)) if n > 1 else math.nan
    effect = float(d.mean() / sd) if n > 1 and sd > 0 else 0.0
    if n == 0:
        return TestResult(**base, effect_size=math.nan, note="no queries in common")
    if wins == 0 and losses == 0:
        p1 = {"p_ttest": 1.0, "p_wilcoxon": 1.0, "p_permutation": 1.0}
        return TestResult(**base, effect_size=0.0,
                          **{k: v for k, v in p1.items() if k[2:] in tests},
                          ci_low=0.0 if "bootstrap" in tests else None,
                          ci_high=0.0 if "bootstrap" in tests else None,
                          note="all differences are zero: the runs agree on every query")
    if n < 2:
        return TestResult(**base, effect_size=effect, note="one query: no test possible")
    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if "ttest" in tests:
            res = stats.ttest_rel(x, y)
            out["t_statistic"], out["p_ttest"] = _finite(res.statistic), _finite(res.pvalue)
        if "wilcoxon" in tests:
            try:
                res = stats.wilcoxon(x, y)
                out["w_statistic"], out["p_wilcoxon"] = _finite(res.statistic), _finite(res.pvalue)
            except ValueError:  # older scipy: all differences zero after dropping ties
                out["p_wilcoxon"] = 1.0
        if "permutation" in tests:
            res = stats.permutation_test((x, y), _mean_diff, permutation_type="samples",
                                         vectorized=True, n_resamples=n_resamples,
                                         alternative="two-sided", **_rng_kwargs(stats.permutation_test, seed))
            out["p_permutation"] = _finite(res.pvalue)
        if "bootstrap" in tests:
            if np.all(d == d[0]):  # no spread: every resample has the same mean
                out["ci_low"] = out["ci_high"] = float(d[0])
            else:
                res = stats.bootstrap((x, y), _mean_diff, paired=True, vectorized=True,
                                      n_resamples=n_resamples, confidence_level=confidence,
                                      method="BCa", batch=1000, **_rng_kwargs(stats.bootstrap, seed))
                out["ci_low"] = _finite(res.confidence_interval.low)
                out["ci_high"] = _finite(res.confidence_interval.high)
    return TestResult(**base, effect_size=effect, **out)


def independent_test(group: Sequence[float], rest: Sequence[float], *, n_resamples: int = N_RESAMPLES,
                     seed: int = SEED) -> float | None:
    """Two-sided randomization test of mean(group) - mean(rest) (labels shuffled); None if impossible."""
    from scipy import stats

    a = np.asarray(group, dtype=np.float64)
    b = np.asarray(rest, dtype=np.float64)
    if a.size < 2 or b.size < 2:
        return None
    if np.all(np.concatenate([a, b]) == a[0]):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.permutation_test((a, b), _mean_diff_independent, permutation_type="independent",
                                     vectorized=True, n_resamples=n_resamples,
                                     alternative="two-sided", **_rng_kwargs(stats.permutation_test, seed))
    return _finite(res.pvalue)


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
        out[metric] = _comparison(runs, base_id, metric, values, judged, texts, qrels_overlay, tests,
                                  alpha, n_resamples, seed)
    return out


def _comparison(runs: Sequence[Any], base_id: int, metric: str, values: dict[int, dict[str, float]],
                judged: Mapping[str, Mapping[str, int]], texts: Mapping[str, str], qrels_overlay: bool,
                tests: tuple[str, ...], alpha: float, n_resamples: int, seed: int) -> Comparison:
    order = [r.id for r in runs]
    common = set.intersection(*(set(v) for v in values.values()))
    query_ids = tuple(sorted(common))
    if not query_ids:
        raise EmbtuiError("the runs have no scored query in common")
    dropped = {rid: len(values[rid]) - len(common) for rid in order}
    values = {rid: {q: values[rid][q] for q in query_ids} for rid in order}
    n_rel = {q: sum(1 for g in judged.get(q, {}).values() if g > 0) for q in query_ids}
    base_vec = np.array([values[base_id][q] for q in query_ids])
    others = [rid for rid in order if rid != base_id]
    raw: dict[int, TestResult] = {}
    deltas: dict[int, tuple[QueryDelta, ...]] = {}
    for rid in others:
        vec = np.array([values[rid][q] for q in query_ids])
        raw[rid] = paired_tests(vec, base_vec, tests=tests, n_resamples=n_resamples, seed=seed)
        rows = [QueryDelta(q, texts.get(q, ""), n_rel[q], values[base_id][q], values[rid][q])
                for q in query_ids]
        deltas[rid] = tuple(sorted(rows, key=lambda d: (d.delta, d.query_id)))
    adjusted: dict[int, dict[str, float]] = {rid: {} for rid in others}
    for test in ("ttest", "wilcoxon", "permutation"):
        for rid, p in zip(others, holm([raw[rid].p(test) for rid in others])):
            if p is not None:
                adjusted[rid][test] = p
    primary = PRIMARY_TEST if PRIMARY_TEST in tests else _first_p_test(tests)
    paired = tuple(PairedTest(rid, base_id, metric, raw[rid], adjusted[rid], alpha, primary)
                   for rid in others)
    project, split = runs[0].project, runs[0].split
    return Comparison(project, split, metric, tuple(order), base_id, {r.id: r for r in runs}, query_ids,
                      values, {rid: float(np.mean(list(values[rid].values()))) for rid in order},
                      deltas, paired, dropped, qrels_overlay, n_resamples, seed)


def _first_p_test(tests: Iterable[str]) -> str:
    return next((t for t in tests if t != "bootstrap"), PRIMARY_TEST)


def _as_id(value: int | str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise EmbtuiError(f"'{value}' is not a run id", "run ids are numbers: see `embtui runs`") from None


# ----------------------------------------------------------------------------- slices


@dataclass(frozen=True)
class SliceCell:
    """One run in one slice."""

    run_id: int
    mean: float
    mean_rest: float | None  # the run's mean on the queries outside the slice
    p_vs_rest: float | None  # randomization test slice vs rest (raw)
    p_vs_rest_holm: float | None  # Holm across the slices of this grouping, per run
    delta: float | None = None  # mean - baseline's mean in the slice (None for the baseline)
    p_vs_baseline: float | None = None  # paired randomization test within the slice (raw)
    p_vs_baseline_holm: float | None = None
    alpha: float = ALPHA

    @property
    def worse_than_average(self) -> bool:
        """Significantly below the run's own mean on the other queries (Holm-adjusted)."""
        return (self.mean_rest is not None and self.mean < self.mean_rest
                and self.p_vs_rest_holm is not None and self.p_vs_rest_holm < self.alpha)

    @property
    def worse_than_baseline(self) -> bool:
        return (self.delta is not None and self.delta < -TIE_EPS
                and self.p_vs_baseline_holm is not None and self.p_vs_baseline_holm < self.alpha)

    @property
    def better_than_baseline(self) -> bool:
        return (self.delta is not None and self.delta > TIE_EPS
                and self.p_vs_baseline_holm is not None and self.p_vs_baseline_holm < self.alpha)

    @property
    def flags(self) -> tuple[str, ...]:
        out = []
        if self.worse_than_average:
            out.append("below own average")
        if self.worse_than_baseline:
            out.append("below baseline")
        if self.better_than_baseline:
            out.append("above baseline")
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "mean": self.mean, "mean_rest": self.mean_rest,
                "p_vs_rest": self.p_vs_rest, "p_vs_rest_holm": self.p_vs_rest_holm,
                "delta": self.delta, "p_vs_baseline": self.p_vs_baseline,
                "p_vs_baseline_holm": self.p_vs_baseline_holm, "flags": list(self.flags)}


@dataclass(frozen=True)
class SliceRow:
    key: str
    n: int
    query_ids: tuple[str, ...]
    cells: tuple[SliceCell, ...]

    def cell(self, run_id: int) -> SliceCell:
        return next(c for c in self.cells if c.run_id == run_id)

    @property
    def flagged(self) -> bool:
        return any(c.flags for c in self.cells)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "n": self.n, "cells": [c.to_dict() for c in self.cells]}


@dataclass(frozen=True)
class SliceTable:
    """A metric per subgroup of queries for every run (``rows`` in a natural order of the groups)."""

    by: str
    title: str
    metric: str
    run_ids: tuple[int, ...]
    baseline_id: int
    rows: tuple[SliceRow, ...]
    overlapping: bool = False  # True when a query can be in several slices (tags)

    def to_dict(self) -> dict[str, Any]:
        return {"by": self.by, "title": self.title, "metric": self.metric,
                "run_ids": list(self.run_ids), "baseline_id": self.baseline_id,
                "overlapping": self.overlapping, "rows": [r.to_dict() for r in self.rows]}


def _length_bucket(text: str) -> str:
    n = len(text.split())
    for label, lo, hi in LENGTH_BUCKETS:
        if lo <= n <= hi:
            return label
    return "empty"


_META_SEP = re.compile(r"\.")


def meta_values(meta: Any, path: str) -> list[str]:
    """Scalar values at a dotted ``path`` in a metadata dict; ``*`` matches any key or list item."""
    nodes = [meta]
    for part in (p for p in _META_SEP.split(path) if p):
        nxt: list[Any] = []
        for node in nodes:
            if isinstance(node, list) and part != "*":
                node_items = [x for x in node if isinstance(x, dict)]
                nxt += [x[part] for x in node_items if part in x]
            elif isinstance(node, dict):
                nxt += list(node.values()) if part == "*" else ([node[part]] if part in node else [])
            elif isinstance(node, list):
                nxt += node
        nodes = nxt
    out: list[str] = []
    for node in nodes:
        items = node if isinstance(node, list) else [node]
        for item in items:
            if item is None or isinstance(item, (dict, list)):
                continue
            out.append(str(item))
    return sorted(set(out))


def _groups(store: Any, comp: Comparison, by: str) -> tuple[str, dict[str, list[str]], bool]:
    """(title, slice key -> query ids, overlapping) for one grouping."""
    qids = comp.query_ids
    groups: dict[str, list[str]] = {}
    if by == "length":
        texts = store.queries(comp.project)
        for q in qids:
            groups.setdefault(_length_bucket(texts.get(q, "")), []).append(q)
        order = [b[0] for b in LENGTH_BUCKETS] + ["empty"]
        return "query length (words)", {k: groups[k] for k in order if k in groups}, False
    if by == "length-quantiles":
        texts = store.queries(comp.project)
        lengths = {q: len(texts.get(q, "").split()) for q in qids}
        edges = np.unique(np.quantile(list(lengths.values()), [0.25, 0.5, 0.75]).round().astype(int))
        bounds = [0, *edges.tolist(), 10**9]
        labels = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            labels.append((lo, hi, f"{lo + 1}-{hi} words" if hi < 10**9 else f"{lo + 1}+ words"))
        for q, n in lengths.items():
            for lo, hi, label in labels:
                if lo < n <= hi:
                    groups.setdefault(label, []).append(q)
                    break
        return "query length (quartiles)", {lab: groups[lab] for *_, lab in labels if lab in groups}, False
    if by == "relevant":
        qrels = store.corrected_qrels(comp.project, comp.split) if comp.qrels_overlay else \
            store.qrels(comp.project, comp.split)
        for q in qids:
            n = sum(1 for g in qrels.get(q, {}).values() if g > 0)
            groups.setdefault("3+" if n >= 3 else str(n), []).append(q)
        return "relevant documents", {k: groups[k] for k in ("0", "1", "2", "3+") if k in groups}, False
    if by == "tag":
        labels = store.annotations.query_labels(comp.project)
        for q in qids:
            for label in labels.get(q, ()):
                groups.setdefault(label, []).append(q)
        untagged = [q for q in qids if not labels.get(q)]
        if untagged:
            groups["(untagged)"] = untagged
        return "annotation label", groups, True
    if by.startswith("meta:") and len(by) > 5:
        path = by[5:]
        meta = store.query_metadata(comp.project)
        for q in qids:
            vals = meta_values(meta.get(q, {}), path)
            groups.setdefault("+".join(vals) if vals else "(none)", []).append(q)
        keys = sorted(groups, key=lambda k: (k == "(none)", -len(groups[k]), k))
        return f"query metadata '{path}'", {k: groups[k] for k in keys}, False
    raise EmbtuiError(f"unknown slice '{by}'",
                      "use length, length-quantiles, relevant, tag or meta:<field> "
                      "(a dotted path into the query metadata; * matches any key)")


def slice_comparison(store: Any, comp: Comparison, by: str, *, alpha: float = ALPHA,
                     n_resamples: int = N_RESAMPLES, seed: int = SEED) -> SliceTable:
    """Slice an existing :class:`Comparison` (no re-reading of runs)."""
    title, groups, overlapping = _groups(store, comp, by)
    order = comp.run_ids
    all_q = comp.query_ids
    pending: list[tuple[str, list[str], dict[int, dict[str, Any]]]] = []
    for key, members in groups.items():
        member_set = set(members)
        rest = [q for q in all_q if q not in member_set]
        cells: dict[int, dict[str, Any]] = {}
        base = np.array([comp.values[comp.baseline_id][q] for q in members])
        for rid in order:
            vals = np.array([comp.values[rid][q] for q in members])
            rest_vals = np.array([comp.values[rid][q] for q in rest])
            cell: dict[str, Any] = {
                "run_id": rid, "mean": float(vals.mean()),
                "mean_rest": float(rest_vals.mean()) if rest else None,
                "p_vs_rest": independent_test(vals, rest_vals, n_resamples=n_resamples, seed=seed),
            }
            if rid != comp.baseline_id:
                cell["delta"] = float((vals - base).mean())
                res = paired_tests(vals, base, tests=("permutation",), n_resamples=n_resamples, seed=seed)
                cell["p_vs_baseline"] = res.p_permutation
            cells[rid] = cell
        pending.append((key, members, cells))
    # Holm across the slices of this grouping, per run and per kind of test
    for rid in order:
        for raw_key, adj_key in (("p_vs_rest", "p_vs_rest_holm"), ("p_vs_baseline", "p_vs_baseline_holm")):
            ps = [cells[rid].get(raw_key) for _, _, cells in pending]
            for (_, _, cells), p in zip(pending, holm(ps)):
                cells[rid][adj_key] = p
    rows = tuple(SliceRow(key, len(members), tuple(members),
                          tuple(SliceCell(alpha=alpha, **cells[rid]) for rid in order))
                 for key, members, cells in pending)
    return SliceTable(by, title, comp.metric, order, comp.baseline_id, rows, overlapping)


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


def mark_relevant(store: Any, run_id: int, query_id: str, doc_id: str, grade: int = 1,
                  note: str | None = None) -> Any:
    """Record that a retrieved document is actually relevant: an overlay judgment for the run's
    project and split plus a "missing label" annotation on the pair. Imported qrels stay as they were."""
    from embtui.store.annotations import MISSING_LABEL

    run = store.get_run(int(run_id))
    judgment = store.annotations.set_judgment(run.project, run.split, query_id, doc_id, grade,
                                              note=note, run_id=run.id)
    if grade > 0:
        store.annotations.add(run.project, query_id, MISSING_LABEL, doc_id=doc_id, note=note,
                              run_id=run.id)
    return judgment


def unmark_relevant(store: Any, run_id: int, query_id: str, doc_id: str) -> bool:
    """Undo :func:`mark_relevant`: drop the overlay judgment and its "missing label" tag on the pair.
    Returns whether there was a judgment to drop."""
    from embtui.store.annotations import MISSING_LABEL

    run = store.get_run(int(run_id))
    removed = store.annotations.remove_judgment(run.project, run.split, query_id, doc_id)
    store.annotations.remove(run.project, query_id, MISSING_LABEL, doc_id=doc_id)
    return removed


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
