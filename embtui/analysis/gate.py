"""The gate for a model update: is the candidate significantly worse than the baseline by more than
a margin? A one-sided paired test on per-query values (pure: numbers in, verdict out).

H0: mean(candidate - baseline) >= -margin (not worse by more than the margin);
H1: mean(candidate - baseline) < -margin. The primary test is the paired randomization test
(``scipy.stats.permutation_test`` with ``permutation_type='samples'``, ``alternative='less'``) on
``candidate + margin`` against ``baseline``, the same resampling ``compare`` uses; the one-sided
paired t-test is reported beside it. The gate passes (exit 0) unless H0 is rejected at ``alpha``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from embtui.analysis.stats import N_RESAMPLES, SEED, _mean_diff, _rng_kwargs


@dataclass(frozen=True)
class GateResult:
    metric: str
    n: int
    mean_baseline: float
    mean_candidate: float
    delta: float
    margin: float
    alpha: float
    p_permutation: float
    p_ttest: float | None
    wins: int
    losses: int

    @property
    def passed(self) -> bool:
        return not self.p_permutation < self.alpha

    @property
    def verdict(self) -> str:
        if self.passed:
            return (f"pass: the candidate is not significantly worse than the baseline by more than "
                    f"{self.margin:g} (one-sided p = {self.p_permutation:.3g} >= {self.alpha:g})")
        return (f"fail: the candidate is significantly worse than the baseline by more than "
                f"{self.margin:g} (one-sided p = {self.p_permutation:.3g} < {self.alpha:g})")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed, "verdict": self.verdict}


def gate(candidate: Sequence[float], baseline: Sequence[float], *, metric: str = "ndcg@10",
         margin: float = 0.0, alpha: float = 0.05, n_resamples: int = N_RESAMPLES,
         seed: int = SEED) -> GateResult:
    """One-sided paired non-inferiority test of ``candidate`` against ``baseline`` (same queries)."""
    from scipy import stats

    x = np.asarray(candidate, dtype=np.float64)
    y = np.asarray(baseline, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError("candidate and baseline need the same, non-empty list of queries")
    if margin < 0:
        raise ValueError("the margin is a tolerance, 0 or more")
    d = x - y
    shifted = x + margin
    if np.all(shifted - y == 0):
        p_perm, p_t = 1.0, None
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.permutation_test((shifted, y), _mean_diff, permutation_type="samples",
                                         vectorized=True, n_resamples=n_resamples, alternative="less",
                                         **_rng_kwargs(stats.permutation_test, seed))
            p_perm = float(res.pvalue)
            t = stats.ttest_rel(shifted, y, alternative="less") if x.size > 1 else None
            p_t = None if t is None or math.isnan(t.pvalue) else float(t.pvalue)
    return GateResult(metric, int(x.size), float(y.mean()), float(x.mean()), float(d.mean()),
                      float(margin), float(alpha), p_perm, p_t, int((d > 0).sum()), int((d < 0).sum()))
