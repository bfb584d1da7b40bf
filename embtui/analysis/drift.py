"""Drift between a reference and a current set of embeddings (queries or documents): pure.

Each measure answers one question, and says so in ``MEANINGS``:

- centroid shift: 1 - cosine of the two mean vectors;
- MMD: the (unbiased) maximum mean discrepancy with a Gaussian kernel whose width is the median
  pairwise distance of the pooled sample, with a permutation-test p-value (the permutations are
  one matrix product: ``K @ P`` for a matrix ``P`` of random group indicators);
- domain classifier: scikit-learn's logistic regression told to separate reference from current,
  its out-of-fold ROC AUC over stratified folds (0.5: indistinguishable, 1: fully separable);
- cluster population shift: k-means fitted on the reference, the current set assigned to its
  clusters, the population stability index over clusters and the clusters that grew or shrank
  most;
- coverage: each query's cosine to its nearest document, current against reference (the share
  of current queries below the reference's 5th percentile: questions the corpus does not answer).

Sample sizes are capped (``max_n``) and every draw is seeded: the same inputs give the same
figures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from embtui.analysis.space import SEED, normalize

MEANINGS = {
    "centroid_shift": "1 - cosine of the mean vectors (0: same centre)",
    "mmd": "kernel distance between the two distributions; p: chance of a gap this large if both came from one",
    "auc": "how well a classifier tells them apart (0.5: indistinguishable, 1: fully separable)",
    "psi": "population stability index over reference clusters (<0.1 stable, 0.1-0.25 moderate, >0.25 major)",
    "coverage": "share of current queries farther from every document than 95% of reference queries",
}
THRESHOLDS = {"mmd_p": 0.01, "auc": 0.7, "psi": 0.25}
PSI_EPS = 1e-4


def _sample(x: np.ndarray, max_n: int, rng: np.random.Generator) -> np.ndarray:
    if len(x) <= max_n:
        return np.asarray(x)
    return np.asarray(x)[np.sort(rng.choice(len(x), max_n, replace=False))]


def centroid_shift(a: np.ndarray, b: np.ndarray) -> float:
    ma, mb = np.asarray(a, np.float64).mean(0), np.asarray(b, np.float64).mean(0)
    return float(1.0 - ma @ mb / max(np.linalg.norm(ma) * np.linalg.norm(mb), 1e-12))


def rbf_kernel_matrix(z: np.ndarray, gamma: float | None = None) -> tuple[np.ndarray, float]:
    """exp(-gamma ||x - y||^2) over the rows of ``z``; gamma from the median heuristic when None."""
    z = np.asarray(z, np.float64)
    sq = np.sum(z * z, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (z @ z.T), 0.0)
    if gamma is None:
        iu = np.triu_indices(len(z), 1)
        med = float(np.median(d2[iu])) if len(iu[0]) else 1.0
        gamma = 1.0 / max(med, 1e-12)
    return np.exp(-gamma * d2), float(gamma)


def mmd2_unbiased(k: np.ndarray, m: int) -> float:
    """Unbiased MMD^2 from a pooled kernel matrix whose first ``m`` rows are one sample."""
    n = len(k) - m
    kxx, kyy, kxy = k[:m, :m], k[m:, m:], k[:m, m:]
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * kxy.sum() / (m * n))


@dataclass(frozen=True)
class MMDResult:
    mmd2: float
    p_value: float
    gamma: float
    permutations: int
    n_reference: int
    n_current: int


def mmd_test(a: np.ndarray, b: np.ndarray, *, permutations: int = 500, max_n: int = 1000,
             seed: int = SEED) -> MMDResult:
    """MMD^2 between ``a`` and ``b`` (unit vectors) with a permutation p-value, (1 + #{perm >=
    observed}) / (1 + permutations)."""
    rng = np.random.default_rng(seed)
    a, b = normalize(_sample(a, max_n, rng)), normalize(_sample(b, max_n, rng))
    m, n = len(a), len(b)
    if m < 2 or n < 2:
        raise ValueError("MMD needs at least two points on each side")
    k, gamma = rbf_kernel_matrix(np.vstack([a, b]))
    observed = mmd2_unbiased(k, m)
    total = m + n
    diag = np.diag(k)
    ind = np.zeros((total, permutations))
    for j in range(permutations):
        ind[rng.permutation(total)[:m], j] = 1.0
    kp = k @ ind  # column j: K @ a_j
    other = 1.0 - ind
    sum_xx = np.einsum("ij,ij->j", ind, kp) - diag @ ind
    sum_xy = np.einsum("ij,ij->j", other, kp)
    sum_all = k.sum()
    sum_yy = sum_all - 2 * sum_xy - (sum_xx + diag @ ind) - diag @ other
    stats = sum_xx / (m * (m - 1)) + sum_yy / (n * (n - 1)) - 2.0 * sum_xy / (m * n)
    p = (1.0 + float(np.sum(stats >= observed - 1e-12))) / (1.0 + permutations)
    return MMDResult(observed, p, gamma, permutations, m, n)


def domain_auc(a: np.ndarray, b: np.ndarray, *, folds: int = 5, max_n: int = 2000, seed: int = SEED) -> float:
    """Out-of-fold ROC AUC of a logistic regression separating ``a`` (0) from ``b`` (1)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    rng = np.random.default_rng(seed)
    a, b = normalize(_sample(a, max_n, rng)), normalize(_sample(b, max_n, rng))
    x = np.vstack([a, b])
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    folds = max(2, min(folds, len(a), len(b)))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(LogisticRegression(max_iter=2000, C=1.0), x, y, cv=cv,
                               method="predict_proba")[:, 1]
    return float(roc_auc_score(y, scores))


def psi(ref_share: np.ndarray, cur_share: np.ndarray, eps: float = PSI_EPS) -> np.ndarray:
    """Per-bin terms of the population stability index (shares clipped below at ``eps``)."""
    r = np.maximum(np.asarray(ref_share, np.float64), eps)
    c = np.maximum(np.asarray(cur_share, np.float64), eps)
    return (c - r) * np.log(c / r)


@dataclass(frozen=True)
class ClusterShift:
    cluster: int
    reference_share: float
    current_share: float
    psi_term: float
    examples: list[int] = field(default_factory=list)  # indices into the current set, nearest first


def cluster_shift(a: np.ndarray, b: np.ndarray, *, k: int = 8, seed: int = SEED, examples: int = 3,
                  ) -> tuple[float, list[ClusterShift], np.ndarray]:
    """(PSI, clusters by |change| descending, labels of the current set). k-means is fitted on a
    seeded half of the reference ``a``; the other half gives the reference's shares, so both sides
    are measured on points the clustering never saw (in-sample points sit closer to their centres,
    which would read as drift). Each point goes to its nearest centre, or to the extra bin ``k``
    ("outside every reference cluster") when it is farther from every centre than 95% of the
    held-out reference points are from theirs: a new topic shows up as that bin growing instead
    of being spread over the old clusters."""
    from embtui.analysis.space import kmeans

    a, b = normalize(a), normalize(b)
    order = np.random.default_rng(seed).permutation(len(a))
    fit, held = a[np.sort(order[: len(a) // 2])], a[np.sort(order[len(a) // 2:])]
    k = max(2, min(k, len(fit) // 5 or 2))
    _labels_fit, centres = kmeans(fit, k, seed)
    centres = normalize(centres)
    sa = held @ centres.T
    best_a = sa.max(axis=1)
    floor = float(np.percentile(best_a, 5))
    la = np.where(best_a < floor, k, np.argmax(sa, axis=1))
    lb_sim = b @ centres.T
    lb = np.where(lb_sim.max(axis=1) < floor, k, np.argmax(lb_sim, axis=1))
    ra = np.bincount(la, minlength=k + 1) / len(held)
    rb = np.bincount(lb, minlength=k + 1) / max(len(b), 1)
    terms = psi(ra, rb)
    out = []
    for c in range(k + 1):
        members = np.flatnonzero(lb == c)
        closeness = lb_sim[members].max(axis=1) if c == k else lb_sim[members, c]
        order = np.argsort(closeness) if c == k else np.argsort(-closeness)  # outliers: farthest first
        out.append(ClusterShift(c, float(ra[c]), float(rb[c]), float(terms[c]), members[order][:examples].tolist()))
    out.sort(key=lambda s: -abs(s.current_share - s.reference_share))
    return float(terms.sum()), out, lb


def nearest_similarity(q: np.ndarray, docs: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Each query's cosine to its nearest document (exact, chunked over the documents)."""
    q = normalize(q)
    best = np.full(len(q), -np.inf, dtype=np.float32)
    for s in range(0, len(docs), chunk):
        d = normalize(np.asarray(docs[s:s + chunk]))
        best = np.maximum(best, (q @ d.T).max(axis=1))
    return best


@dataclass(frozen=True)
class Coverage:
    reference_mean: float
    current_mean: float
    threshold: float  # the reference's 5th percentile
    uncovered_share: float  # current queries below it (about 0.05 without drift)
    ks_p: float
    uncovered: list[int] = field(default_factory=list)  # indices into the current set, farthest first


def coverage(ref_nearest: np.ndarray, cur_nearest: np.ndarray, examples: int = 5) -> Coverage:
    from scipy.stats import ks_2samp

    thr = float(np.percentile(ref_nearest, 5))
    below = np.flatnonzero(cur_nearest < thr)
    ks = ks_2samp(ref_nearest, cur_nearest)
    return Coverage(float(np.mean(ref_nearest)), float(np.mean(cur_nearest)), thr,
                    float(len(below) / max(len(cur_nearest), 1)), float(ks.pvalue),
                    below[np.argsort(cur_nearest[below])][:examples].tolist())


@dataclass(frozen=True)
class DriftReport:
    n_reference: int
    n_current: int
    centroid_shift: float
    mmd: MMDResult
    auc: float | None
    psi: float
    clusters: list[ClusterShift]
    coverage: Coverage | None = None
    k: int = 0  # reference clusters; cluster k is the "outside every cluster" bin

    @property
    def drifted(self) -> bool:
        return self.mmd.p_value < THRESHOLDS["mmd_p"] and (
            (self.auc is not None and self.auc > THRESHOLDS["auc"]) or self.psi > THRESHOLDS["psi"])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["drifted"] = self.drifted
        return d


def drift_report(a: np.ndarray, b: np.ndarray, *, docs: np.ndarray | None = None, k: int = 8,
                 permutations: int = 500, max_n: int = 1000, with_auc: bool = True,
                 seed: int = SEED) -> DriftReport:
    """Every measure for reference ``a`` against current ``b`` (``docs``: the corpus, for coverage)."""
    a, b = np.asarray(a), np.asarray(b)
    mmd = mmd_test(a, b, permutations=permutations, max_n=max_n, seed=seed)
    auc = domain_auc(a, b, max_n=max_n, seed=seed) if with_auc and min(len(a), len(b)) >= 10 else None
    total, clusters, _ = cluster_shift(a, b, k=k, seed=seed)
    cov = None
    if docs is not None and len(docs):
        cov = coverage(nearest_similarity(a, docs), nearest_similarity(b, docs))
    return DriftReport(len(a), len(b), centroid_shift(a, b), mmd, auc, total, clusters, cov,
                       max(c.cluster for c in clusters))


def window_keys(timestamps: Sequence[float], window: str) -> list[str]:
    """The window ('day', 'week' as ISO year-week, 'month') of each UNIX timestamp, UTC."""
    import datetime as dt

    out = []
    for t in timestamps:
        d = dt.datetime.fromtimestamp(float(t), tz=dt.timezone.utc)
        if window == "day":
            out.append(d.strftime("%Y-%m-%d"))
        elif window == "week":
            y, w, _ = d.isocalendar()
            out.append(f"{y}-W{w:02d}")
        elif window == "month":
            out.append(d.strftime("%Y-%m"))
        else:
            raise ValueError(f"window must be day, week or month, not {window!r}")
    return out


@dataclass(frozen=True)
class WindowDrift:
    window: str
    n: int
    centroid_shift: float
    mmd2: float
    mmd_p: float
    auc: float | None
    psi: float
    top_cluster: int | None
    drifted: bool


def drift_over_time(a: np.ndarray, b: np.ndarray, timestamps: Sequence[float], *, window: str = "week",
                    k: int = 8, permutations: int = 200, max_n: int = 1000, min_n: int = 10,
                    seed: int = SEED) -> list[WindowDrift]:
    """The measures for each time window of the current set against the whole reference."""
    keys = np.asarray(window_keys(timestamps, window))
    out = []
    for key in sorted(set(keys.tolist())):
        idx = np.flatnonzero(keys == key)
        if len(idx) < min_n:
            out.append(WindowDrift(key, len(idx), float("nan"), float("nan"), float("nan"), None,
                                   float("nan"), None, False))
            continue
        r = drift_report(a, b[idx], k=k, permutations=permutations, max_n=max_n, seed=seed)
        top = r.clusters[0].cluster if r.clusters else None
        out.append(WindowDrift(key, len(idx), r.centroid_shift, r.mmd.mmd2, r.mmd.p_value, r.auc, r.psi,
                               top, r.drifted))
    return out
