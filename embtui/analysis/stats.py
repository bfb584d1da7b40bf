"""Paired significance tests for IR runs, via scipy, with Holm's correction: pure (arrays in, results out).

Tests are scipy's (``ttest_rel``, ``wilcoxon``, ``permutation_test`` with
``permutation_type='samples'``, paired ``bootstrap``) with a fixed seed, so a report is
reproducible number for number. The randomization test is the primary one for verdicts (Smucker,
Allan & Carterette, CIKM 2007: it and the t-test agree, and it assumes nothing about the shape of
per-query score differences, which for IR metrics is bounded and lumpy).
"""

from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

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
