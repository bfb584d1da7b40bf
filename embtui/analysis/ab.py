"""A/B test of live traffic: per variant click-through, MRR of clicks and abandonment, tested
against the first variant (pure: impressions in, report out).

An impression is one query shown to a user under one variant, with the rank of the first clicked
result (1-based) or none. Click-through rate = impressions with a click / impressions;
abandonment = impressions without a click / impressions (1 - CTR: a search left without any
click); MRR of clicks = mean of 1/rank over impressions, 0 without a click. Tests, each variant
against the control: the two-proportion z-test on CTR (pooled variance; equal to Pearson's
chi-square test without continuity correction) and Welch's t-test on reciprocal ranks. The sample
size per variant to detect a given absolute CTR change at ``alpha`` with ``power`` uses the
normal approximation of the two-proportion test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


@dataclass(frozen=True)
class Impression:
    variant: str
    clicked_rank: int | None  # 1-based rank of the first click, None: no click
    query: str = ""
    timestamp: float | None = None


@dataclass(frozen=True)
class VariantStats:
    variant: str
    impressions: int
    clicks: int
    ctr: float
    abandonment: float
    mrr: float
    # against the control (None for the control itself)
    ctr_delta: float | None = None
    p_ctr: float | None = None
    mrr_delta: float | None = None
    p_mrr: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def two_proportion_z(c1: int, n1: int, c2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p) of the pooled two-proportion z-test of c2/n2 against c1/n1."""
    from scipy import stats

    p = (c1 + c2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (c2 / n2 - c1 / n1) / se
    return z, float(2 * stats.norm.sf(abs(z)))


def sample_size(p_control: float, effect: float, *, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Impressions per variant to detect CTR ``p_control`` -> ``p_control + effect`` (two-sided)."""
    from scipy import stats

    p2 = p_control + effect
    if effect == 0 or not 0 < p_control < 1 or not 0 < p2 < 1:
        return None
    za, zb = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    pbar = (p_control + p2) / 2
    n = (za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p_control * (1 - p_control) + p2 * (1 - p2))) ** 2
    return int(math.ceil(n / effect ** 2))


def ab_report(impressions: Sequence[Impression], *, control: str | None = None, alpha: float = 0.05,
              effect: float = 0.01, power: float = 0.8) -> dict[str, Any]:
    """Per-variant statistics, each against ``control`` (default: the first variant by name)."""
    from scipy import stats

    by: dict[str, list[Impression]] = {}
    for imp in impressions:
        by.setdefault(imp.variant, []).append(imp)
    if len(by) < 2:
        raise ValueError(f"an A/B test needs at least two variants, the log has {len(by)}")
    names = sorted(by)
    control = control if control is not None else names[0]
    if control not in by:
        raise ValueError(f"no variant '{control}' in the log (it has {', '.join(names)})")
    rr = {v: np.asarray([1.0 / i.clicked_rank if i.clicked_rank else 0.0 for i in by[v]]) for v in names}
    clicks = {v: sum(1 for i in by[v] if i.clicked_rank) for v in names}
    out = []
    for v in [control] + [n for n in names if n != control]:
        n = len(by[v])
        row: dict[str, Any] = dict(variant=v, impressions=n, clicks=clicks[v], ctr=clicks[v] / n,
                                   abandonment=1 - clicks[v] / n, mrr=float(rr[v].mean()))
        if v != control:
            nc = len(by[control])
            _, p = two_proportion_z(clicks[control], nc, clicks[v], n)
            t = stats.ttest_ind(rr[v], rr[control], equal_var=False)
            row.update(ctr_delta=clicks[v] / n - clicks[control] / nc, p_ctr=p,
                       mrr_delta=float(rr[v].mean() - rr[control].mean()),
                       p_mrr=None if math.isnan(t.pvalue) else float(t.pvalue))
        out.append(VariantStats(**row))
    base = out[0]
    return {"control": control, "alpha": alpha, "variants": [s.to_dict() for s in out],
            "significant": {s.variant: (s.p_ctr is not None and s.p_ctr < alpha) for s in out[1:]},
            "sample_size": {"effect": effect, "power": power, "alpha": alpha,
                            "per_variant": sample_size(base.ctr, effect, alpha=alpha, power=power)}}
