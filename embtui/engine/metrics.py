"""IR metrics (nDCG, MRR, MAP, recall, P, success, R-precision) that agree with trec_eval."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import chain, islice, repeat
from operator import itemgetter, methodcaller
from typing import Iterable, Mapping, Sequence

import numpy as np

from embtui.engine.metric_names import (DEFAULT_KS, METRIC_FAMILIES, RPREC, check_ks,
                                        metric_names, parse_ks, parse_metric)
from embtui.engine.metric_names import check_level as _check_level
from embtui.engine.metric_names import resolve_metrics as _resolve_metrics
from embtui.errors import DataError

__all__ = ["DEFAULT_KS", "METRIC_FAMILIES", "REASON_NO_JUDGMENTS", "REASON_NO_RELEVANT",
           "REASON_NOT_JUDGED", "MetricResult", "QrelsArrays", "check_ks", "evaluate", "evaluate_arrays",
           "evaluate_indices", "evaluate_run", "metric_names", "parse_ks", "parse_metric", "rank_run"]

# Semantics, checked against trec_eval 9.x (through pytrec_eval) in tests/test_metrics.py:
#
# * Ranking: score descending, ties broken by doc id DESCENDING (plain string comparison; for
#   UTF-8 text strcmp and Python's code-point comparison agree). trec_eval keeps scores as C
#   ``float``, so scores are compared after rounding to float32: 1.0 and 1.0 + 5e-8 are a tie.
#   NaN scores are rejected (trec_eval's order for them is undefined).
# * Relevant: grade >= relevance_level (>= 1, as pytrec_eval requires). Unjudged retrieved docs
#   and padding past the end of a ranking are non-relevant with gain 0.
# * ndcg@k = ndcg_cut_k: gain = the grade itself for grades > 0 (also grades below
#   relevance_level: trec_eval's nDCG ignores the level), discount log2(rank + 1); the ideal
#   ranking is built from ALL the query's judgments, cut at k.
# * mrr@k = recip_rank on the ranking cut to k; map@k = map_cut_k (divided by R, the total
#   number of relevant judgments, not min(R, k)); recall@k = recall_k; p@k = P_k (always / k);
#   success@k = success_k; r-precision = Rprec (relevant in the top R / R).
# * Queries: every qrels query with at least one judgment is scored; one missing from the
#   ranking (or with an empty ranking) scores 0 on every metric (trec_eval -c). A query whose
#   judgments are all below the relevance level ("unanswerable") is counted as trec_eval counts
#   it: 0 on every metric but nDCG (which, as in trec_eval, still gains from grades between 0 and
#   the level, so it is 0 unless relevance_level > 1); so the mean equals trec_eval's. With
#   ``skip_unanswerable=True`` such queries are left out of the mean instead, and reported.
#   Ranked queries with no judgments at all are never scored (trec_eval ignores them too).
# * A doc id repeated within one query's ranking counts once, at its first (best) rank.


REASON_NO_RELEVANT = "no relevant judgment"
REASON_NOT_JUDGED = "not judged"
REASON_NO_JUDGMENTS = "no judgments"

_SKIP_PHRASES = {
    REASON_NO_RELEVANT: "with no relevant judgment",
    REASON_NOT_JUDGED: "ranked but not in qrels",
    REASON_NO_JUDGMENTS: "with an empty judgment list",
}

# evaluate_run compares each relevant doc's score with every score of its query in one broadcast
# while (relevant found) x (run depth) stays below this; beyond it, sort + binary search.
_BROADCAST_LIMIT = 65536


# ----------------------------------------------------------------------------- ranking


def _tied_runs(sorted_keys: np.ndarray) -> list[tuple[int, int]]:
    """``(start, end)`` of every run of 2+ equal values in an already sorted key array."""
    eq = sorted_keys[1:] == sorted_keys[:-1]
    if not eq.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate(([False], eq, [False])).astype(np.int8)))
    # eq[i] says positions i and i + 1 tie: a run of True over [a, b) covers positions a..b
    return [(a, b + 1) for a, b in edges.reshape(-1, 2).tolist()]


def _scores32(qid: str, docs: Mapping[str, float]) -> np.ndarray:
    n = len(docs)
    try:
        vals = np.fromiter(docs.values(), dtype=np.float64, count=n)
    except (TypeError, ValueError) as exc:
        raise DataError(f"query {qid!r}: a score is not a number ({exc})") from None
    if np.isnan(vals).any():
        bad = next(d for d, s in docs.items() if s != s)
        raise DataError(f"query {qid!r}: doc {bad!r} has a NaN score", hint="NaN scores cannot be ranked")
    with np.errstate(over="ignore"):
        return vals.astype(np.float32)


def rank_run(run: Mapping[str, Mapping[str, float]]) -> dict[str, list[tuple[str, float]]]:
    """Order each query's docs as trec_eval does: score descending, ties by doc id descending.

    Scores compare as float32 (trec_eval stores them as C floats); the returned scores are the
    original values. Raises DataError for a NaN score.
    """
    out: dict[str, list[tuple[str, float]]] = {}
    for qid, docs in run.items():
        n = len(docs)
        if n == 0:
            out[qid] = []
            continue
        keys = list(docs)
        vals = list(docs.values())
        neg = -_scores32(qid, docs)
        order = np.argsort(neg, kind="stable")
        runs = _tied_runs(neg[order])
        order = order.tolist()
        for a, b in runs:  # equal float32 scores: doc id descending
            order[a:b] = sorted(order[a:b], key=keys.__getitem__, reverse=True)
        out[qid] = [(keys[i], vals[i]) for i in order]
    return out


# ----------------------------------------------------------------------------- array path


def evaluate_arrays(
    grades: np.ndarray,
    num_rel: np.ndarray,
    ideal: np.ndarray,
    ks: Iterable[int] = DEFAULT_KS,
    metrics: Sequence[str] | None = None,
    relevance_level: int = 1,
) -> dict[str, np.ndarray]:
    """Score many queries at once from their grade matrices; returns metric -> float64 array [Q].

    ``grades[q, i]``: the grade of the doc at rank i + 1 of query q (0 when unjudged or past the
    end of the ranking; negative grades count as 0 gain); missing columns read as 0, so it needs
    only as many columns as the rankings are long (for r-precision, ``min(R, ranking length)``).
    Memory stays proportional to the columns given, not to the cutoffs: ``p@100000000`` on a
    300-document ranking costs what ``p@300`` does (and is 1/100000000 of its hit count).
    ``num_rel[q]``: R, the number of judgments of q with grade >= relevance_level.
    ``ideal[q]``: the grades of ALL of q's judgments sorted descending (0-padded), at least as
    many columns as the largest nDCG cutoff (missing columns read as 0).
    A query with R == 0 scores 0 everywhere except nDCG, which (as in trec_eval) still gains
    from grades below ``relevance_level``.
    """
    level = _check_level(relevance_level)
    names = _resolve_metrics(ks, metrics)
    grades = np.asarray(grades)
    ideal = np.asarray(ideal)
    num_rel = np.asarray(num_rel)
    if grades.ndim != 2:
        raise ValueError(f"grades must be a 2-D array, got shape {grades.shape}")
    nq = grades.shape[0]
    if ideal.ndim != 2 or ideal.shape[0] != nq or num_rel.shape != (nq,):
        raise ValueError(
            f"shapes disagree: grades {grades.shape}, ideal {ideal.shape}, num_rel {num_rel.shape}"
        )
    parsed = [parse_metric(n) for n in names]
    cut_ks = [k for _, k in parsed if k is not None]
    kmax = max(cut_ks, default=0)
    # past the given columns every grade (and past ideal's, every ideal grade) is 0, so a cutoff
    # beyond both reads the same cumulative values as the last column: never pad to a huge k
    width = max(grades.shape[1], min(kmax, max(ideal.shape[1], 1)))
    if grades.shape[1] < width:
        grades = np.pad(grades, ((0, 0), (0, width - grades.shape[1])))

    r = num_rel.astype(np.float64)
    has_rel = r > 0
    safe_r = np.where(has_rel, r, 1.0)
    # each family only looks as deep as its own largest cutoff
    deepest: dict[str, int] = {}
    for family, k in parsed:
        if k is not None:
            deepest[family] = max(deepest.get(family, 0), min(k, width))
    kcount = max((deepest.get(f, 0) for f in ("p", "recall", "success", "map")), default=0)
    rel_cum = np.cumsum(grades[:, :kcount] >= level, axis=1, dtype=np.int32) if kcount else None
    out: dict[str, np.ndarray] = {}

    dcg_cum = idcg_cum = None
    if "ndcg" in deepest:
        kn = deepest["ndcg"]
        disc = np.log2(np.arange(2, kn + 2, dtype=np.float64))
        dcg_cum = np.cumsum(np.maximum(grades[:, :kn], 0) / disc, axis=1)
        ig = ideal[:, :kn]
        if ig.shape[1] < kn:
            ig = np.pad(ig, ((0, 0), (0, kn - ig.shape[1])))
        idcg_cum = np.cumsum(np.maximum(ig, 0) / disc, axis=1)
    ap_cum = None
    if "map" in deepest:
        km = deepest["map"]
        prec = rel_cum[:, :km] / np.arange(1, km + 1, dtype=np.float64)
        ap_cum = np.cumsum(np.where(grades[:, :km] >= level, prec, 0.0), axis=1)
    first_rel = None
    if "mrr" in deepest:
        rel = grades[:, : deepest["mrr"]] >= level
        first_rel = np.where(rel.any(axis=1), np.argmax(rel, axis=1), np.inf)

    for name, (family, cutoff) in zip(names, parsed):
        k = min(cutoff, width) if cutoff is not None else None
        if family == RPREC:
            cols = np.arange(grades.shape[1])
            hits = ((grades >= level) & (cols[None, :] < num_rel[:, None])).sum(axis=1)
            val = hits / safe_r
        elif family == "ndcg":
            idcg = idcg_cum[:, k - 1]
            val = np.divide(dcg_cum[:, k - 1], idcg, out=np.zeros(nq), where=idcg > 0)
        elif family == "p":
            val = rel_cum[:, k - 1] / float(cutoff)
        elif family == "recall":
            val = rel_cum[:, k - 1] / safe_r
        elif family == "success":
            val = (rel_cum[:, k - 1] > 0).astype(np.float64)
        elif family == "map":
            val = ap_cum[:, k - 1] / safe_r
        else:  # mrr
            val = np.where(first_rel < k, 1.0 / (first_rel + 1.0), 0.0)  # inf: none found
        out[name] = (val if family == "ndcg" else np.where(has_rel, val, 0.0)).astype(np.float64)
    return out


# ----------------------------------------------------------------------------- result


@dataclass(frozen=True)
class MetricResult:
    """Metric values for one ranking against one set of judgments.

    ``aggregate`` is the mean over ``scored`` (NaN when nothing was scored); ``per_query`` holds
    every scored query, including those in ``missing`` (scored queries the ranking lacked, all
    metrics 0) and in ``unanswerable`` (scored queries with no relevant judgment: 0, as trec_eval
    counts them); ``skipped`` gives the reason for every query left out.
    """

    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]]
    scored: tuple[str, ...]
    skipped: dict[str, str]
    missing: tuple[str, ...] = field(default=())
    unanswerable: tuple[str, ...] = field(default=())

    def summary(self) -> str:
        n = len(self.scored)
        text = f"{n} {'query' if n == 1 else 'queries'} scored"
        notes = []
        if self.missing:
            notes.append(f"{len(self.missing)} not in the ranking, scored 0")
        if self.unanswerable:
            notes.append(f"{len(self.unanswerable)} with no relevant judgment, scored 0 as trec_eval does")
        if notes:
            text += f" ({'; '.join(notes)})"
        if self.skipped:
            counts: dict[str, int] = {}
            for reason in self.skipped.values():
                counts[reason] = counts.get(reason, 0) + 1
            parts = [f"{c} {_SKIP_PHRASES.get(reason, reason)}" for reason, c in counts.items()]
            text += f", {len(self.skipped)} skipped ({', '.join(parts)})"
        return text


# ----------------------------------------------------------------------------- dict path


class QrelsArrays:
    """Judgments flattened into arrays once (C-speed iteration, no per-query Python loop).

    ``qids``: the judged queries in the mapping's order; ``counts[i]``: how many judgments query i
    has; ``doc_ids`` / ``grades``: every judgment, query after query. Build it once per split and
    pass it to :func:`evaluate_indices` in place of the mapping to leave the flattening out of
    repeated scorings (a plain mapping is flattened on every call; the result is the same).
    """

    __slots__ = ("qids", "counts", "doc_ids", "grades", "_qid_set", "_positions")

    def __init__(self, qrels: Mapping[str, Mapping[str, int]]) -> None:
        judged = list(qrels.values())
        self.qids: list[str] = list(qrels)
        self.counts = np.fromiter(map(len, judged), dtype=np.int64, count=len(judged))
        total = int(self.counts.sum())
        self.doc_ids: list[str] = list(chain.from_iterable(judged))
        self.grades = np.fromiter(chain.from_iterable(map(_values, judged)), dtype=np.int64, count=total)
        self._qid_set: frozenset[str] | None = None
        self._positions: tuple[object, np.ndarray] | None = None

    def __contains__(self, qid: object) -> bool:
        if self._qid_set is None:
            self._qid_set = frozenset(self.qids)
        return qid in self._qid_set

    def positions(self, doc_index: Mapping[str, int]) -> np.ndarray:
        """Each judgment's document position in ``doc_index`` (-1: not in it); kept for the last
        ``doc_index`` object asked about, so one split scored against one corpus looks up once."""
        cached = self._positions
        if cached is not None and cached[0] is doc_index:
            return cached[1]
        pos = np.fromiter(map(doc_index.get, self.doc_ids, repeat(-1)), dtype=np.int64,
                          count=len(self.doc_ids))
        self._positions = (doc_index, pos)
        return pos


_values = methodcaller("values")


class _Judged:
    """Per scored query: R and the ideal grades (cut at kmax); positive-grade judgments as arrays
    (``entry``: their index in the flat judgments, ``entry_row``: the scored row) and, for the
    dict paths, as one mapping per query (``positive``, made on first use)."""

    __slots__ = ("arrays", "qids", "num_rel", "ideal", "skipped", "unanswerable", "entry",
                 "entry_row", "entry_grade", "_source", "_positive")

    def __init__(self, qrels: Mapping[str, Mapping[str, int]] | QrelsArrays, level: int, kmax: int,
                 skip_unanswerable: bool = False) -> None:
        qa = qrels if isinstance(qrels, QrelsArrays) else QrelsArrays(qrels)
        self.arrays = qa
        self._source = None if isinstance(qrels, QrelsArrays) else qrels
        self._positive: list[dict[str, int]] | None = None
        n_all = len(qa.qids)
        qrow = np.repeat(np.arange(n_all, dtype=np.int64), qa.counts)
        g = qa.grades
        r_all = np.bincount(qrow[g >= level], minlength=n_all)
        empty = qa.counts == 0
        no_rel = (r_all == 0) & ~empty
        skip = (empty | no_rel) if skip_unanswerable else empty
        keep = ~skip
        self.skipped: dict[str, str] = {
            qa.qids[i]: (REASON_NO_JUDGMENTS if empty[i] else REASON_NO_RELEVANT)
            for i in np.flatnonzero(skip).tolist()}
        self.qids: list[str] = (qa.qids if not self.skipped else
                                [qa.qids[i] for i in np.flatnonzero(keep).tolist()])
        self.unanswerable: list[str] = [qa.qids[i] for i in np.flatnonzero(no_rel & keep).tolist()]
        self.num_rel = r_all[keep].astype(np.int64)
        n = len(self.qids)
        jrow = np.full(n_all, -1, dtype=np.int64)
        jrow[keep] = np.arange(n, dtype=np.int64)
        self.entry = np.flatnonzero((g > 0) & keep[qrow])
        self.entry_row = jrow[qrow[self.entry]]  # nondecreasing
        self.entry_grade = g[self.entry].astype(np.int32)
        # the ideal ranking: each row's positive grades, descending, cut at kmax
        npos = np.bincount(self.entry_row, minlength=n)
        lens = np.minimum(npos, kmax)
        width = int(lens.max()) if n else 0
        self.ideal = np.zeros((n, width), dtype=np.int32)
        if width:
            order = np.lexsort((-self.entry_grade, self.entry_row))
            rows = self.entry_row[order]
            starts = np.cumsum(npos) - npos
            col = np.arange(len(rows), dtype=np.int64) - starts[rows]
            top = col < kmax
            self.ideal[rows[top], col[top]] = self.entry_grade[order][top]

    @property
    def positive(self) -> list[dict[str, int]]:
        """Per scored query: ``{doc: grade}`` of its judgments with grade > 0."""
        if self._positive is None:
            if self._source is not None:
                src = self._source
                self._positive = [{d: g for d, g in src[q].items() if g > 0} for q in self.qids]
            else:
                docs, grades = self.arrays.doc_ids, self.entry_grade.tolist()
                out: list[dict[str, int]] = [{} for _ in self.qids]
                for e, r, gr in zip(self.entry.tolist(), self.entry_row.tolist(), grades):
                    out[r][docs[e]] = gr
                self._positive = out
        return self._positive


def _plan(ks, metrics, relevance_level):
    level = _check_level(relevance_level)
    names = _resolve_metrics(ks, metrics)
    parsed = [parse_metric(n) for n in names]
    kmax = max((k for _, k in parsed if k is not None), default=0)
    want_rprec = any(f == RPREC for f, _ in parsed)
    return level, names, kmax, want_rprec


def _evaluate_hits(nq: int, hits: tuple[np.ndarray, np.ndarray, np.ndarray], num_rel: np.ndarray,
                   ideal: np.ndarray, names: Sequence[str], level: int) -> dict[str, np.ndarray]:
    """:func:`evaluate_arrays` on a sparse grade matrix: ``hits`` = (rows, cols, grades) of its
    cells with a positive grade (distinct cells). Every sum adds the same terms in the same
    (rank) order as the dense cumulative sums, which only add zeros in between, so the values
    are the same; the cost is proportional to the hits, not to queries x depth."""
    hr, hc, hg = (np.asarray(a) for a in hits)
    order = np.lexsort((hc, hr))
    hr, hc, hg = hr[order].astype(np.int64), hc[order].astype(np.int64), hg[order]
    parsed = [parse_metric(n) for n in names]
    r = num_rel.astype(np.float64)
    has_rel = r > 0
    safe_r = np.where(has_rel, r, 1.0)
    rel = hg >= level
    rr, rc = hr[rel], hc[rel]
    # 1-based position of each relevant hit among its query's relevant hits
    starts = np.searchsorted(rr, np.arange(nq))
    nth = np.arange(1, len(rr) + 1, dtype=np.int64) - starts[rr]
    kmax = max((k for _, k in parsed if k is not None), default=0)
    disc = np.log2(np.arange(2, max(int(hc.max()) + 1 if len(hc) else 0, 1) + 2, dtype=np.float64))
    idcg_cum = None
    if any(f == "ndcg" for f, _ in parsed) and ideal.shape[1]:
        kn = min(kmax, ideal.shape[1])
        idisc = np.log2(np.arange(2, kn + 2, dtype=np.float64))
        idcg_cum = np.cumsum(np.maximum(ideal[:, :kn], 0) / idisc, axis=1)
    first = np.full(nq, np.inf)
    if len(rr):
        lead = np.ones(len(rr), dtype=bool)
        lead[1:] = rr[1:] != rr[:-1]
        first[rr[lead]] = rc[lead]
    out: dict[str, np.ndarray] = {}
    for name, (family, k) in zip(names, parsed):
        if family == RPREC:
            val = np.bincount(rr[rc < num_rel[rr]], minlength=nq) / safe_r
        elif family == "ndcg":
            cut = hc < k
            dcg = np.bincount(hr[cut], weights=np.maximum(hg[cut], 0) / disc[hc[cut]], minlength=nq)
            if idcg_cum is None:
                idcg = np.zeros(nq)
            else:
                idcg = idcg_cum[:, min(k, idcg_cum.shape[1]) - 1]
            val = np.divide(dcg, idcg, out=np.zeros(nq), where=idcg > 0)
        elif family == "mrr":
            val = np.where(first < k, 1.0 / (first + 1.0), 0.0)
        else:
            cut = rc < k
            if family == "map":
                val = np.bincount(rr[cut], weights=nth[cut] / (rc[cut] + 1.0), minlength=nq) / safe_r
            else:
                n = np.bincount(rr[cut], minlength=nq)
                if family == "p":
                    val = n / float(k)
                elif family == "recall":
                    val = n / safe_r
                else:  # success
                    val = (n > 0).astype(np.float64)
        out[name] = (val if family == "ndcg" else np.where(has_rel, val, 0.0)).astype(np.float64)
    return out


def _result(judged: _Judged, grades, names, level, missing, not_judged) -> MetricResult:
    """``grades``: the dense [scored queries, ranks] matrix, or (rows, cols, grades) of its
    nonzero cells."""
    if isinstance(grades, tuple):
        values = _evaluate_hits(len(judged.qids), grades, judged.num_rel, judged.ideal, names, level)
    else:
        values = evaluate_arrays(grades, judged.num_rel, judged.ideal, metrics=names,
                                 relevance_level=level)
    nq = len(judged.qids)
    if nq:
        aggregate = {n: float(values[n].mean()) for n in names}
        rows = np.column_stack([values[n] for n in names]).tolist()
        per_query = {q: dict(zip(names, row)) for q, row in zip(judged.qids, rows)}
    else:
        aggregate = {n: math.nan for n in names}
        per_query = {}
    skipped = dict(judged.skipped)
    for qid in not_judged:
        skipped[qid] = REASON_NOT_JUDGED
    return MetricResult(aggregate, per_query, tuple(judged.qids), skipped, tuple(missing),
                        tuple(judged.unanswerable))


def evaluate(
    qrels: Mapping[str, Mapping[str, int]],
    ranked: Mapping[str, Sequence[tuple[str, float]] | Sequence[str]],
    ks: Iterable[int] = DEFAULT_KS,
    metrics: Sequence[str] | None = None,
    relevance_level: int = 1,
    skip_unanswerable: bool = False,
) -> MetricResult:
    """Score rankings that are already in rank order (entries ``(doc_id, score)`` or doc ids).

    ``metrics`` (names like ``"ndcg@10"``, any k) overrides ``ks``; by default every family is
    computed at every k in ``ks`` plus r-precision. A doc id repeated within one ranking counts
    once, at its first rank. Judged queries with no relevant document count as 0 (trec_eval's
    convention); ``skip_unanswerable`` leaves them out of the mean instead.
    """
    level, names, kmax, want_rprec = _plan(ks, metrics, relevance_level)
    judged = _Judged(qrels, level, kmax, skip_unanswerable)
    missing: list[str] = []
    rankings: list[tuple[int, Sequence, int]] = []
    width = 0  # grade columns: as deep as the rankings go, never as deep as a huge cutoff
    for qi, (qid, r) in enumerate(zip(judged.qids, judged.num_rel.tolist())):
        entries = ranked.get(qid)
        if entries is None or len(entries) == 0:
            missing.append(qid)
            continue
        depth = max(kmax, r) if want_rprec else kmax
        rankings.append((qi, entries, depth))
        width = max(width, min(depth, len(entries)))
    # one row per scored query: the grade at each rank (lookups run in C via map + fromiter)
    grades = np.zeros((len(judged.qids), width), dtype=np.int32)
    for qi, entries, depth in rankings:
        docs = _doc_prefix(entries, depth)
        pos = judged.positive[qi]
        grades[qi, : len(docs)] = np.fromiter(map(pos.get, docs, repeat(0)), dtype=np.int32, count=len(docs))
    not_judged = [q for q in ranked if q not in qrels]
    return _result(judged, grades, names, level, missing, not_judged)


def evaluate_indices(
    qrels: Mapping[str, Mapping[str, int]] | QrelsArrays,
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    idx: np.ndarray,
    ks: Iterable[int] = DEFAULT_KS,
    metrics: Sequence[str] | None = None,
    relevance_level: int = 1,
    skip_unanswerable: bool = False,
    doc_index: Mapping[str, int] | None = None,
) -> MetricResult:
    """Score rankings given as the search returns them: ``idx[i]`` holds, in rank order, the
    positions in ``doc_ids`` of query ``query_ids[i]``'s results (distinct; -1 pads a short
    ranking after its last result, and a row starting with -1 is an empty ranking). The same
    result as :func:`evaluate` on the equivalent id lists, with no Python loop over queries or
    ranks. ``qrels``: the mapping, or :class:`QrelsArrays` made from it once (then repeated
    scorings skip the flattening). ``doc_index``: ``doc_ids``' positions, when the caller has them.

    How: the judgments become arrays (query row, document position, grade). A document judged
    (with a positive grade) for exactly one query gets that query's row in an ``owner`` table,
    one judged for several gets -2; one gather of ``owner`` over the index matrix, compared with
    each cell's own row, finds the graded cells, and only cells of shared documents are looked up
    among the sorted (row, document) keys. Rows are processed in blocks, so the temporaries stay
    small whatever the matrix size."""
    idx = np.asarray(idx)
    if idx.ndim != 2 or len(idx) != len(query_ids):
        raise ValueError("idx must be [len(query_ids), depth]")
    level, names, kmax, want_rprec = _plan(ks, metrics, relevance_level)
    judged = _Judged(qrels, level, kmax, skip_unanswerable)
    nj = len(judged.qids)
    n_docs = max(len(doc_ids), 1)
    row_of = {q: i for i, q in enumerate(query_ids)}
    rows = np.fromiter(map(row_of.get, judged.qids, repeat(-1)), dtype=np.int64, count=nj)
    if idx.shape[1] and nj:  # an empty ranking counts as missing, as in evaluate()
        rows[(rows >= 0) & (idx[np.maximum(rows, 0), 0] < 0)] = -1
    present = np.flatnonzero(rows >= 0)
    missing = [judged.qids[i] for i in np.flatnonzero(rows < 0).tolist()]
    depth_q = np.maximum(judged.num_rel, kmax) if want_rprec else np.full(nj, kmax)
    width = int(min(idx.shape[1], depth_q.max() if nj else 0))
    none = np.empty(0, dtype=np.int64)
    hits = (none, none, none)  # (scored row, rank - 1, grade) of every graded cell
    if idx.shape[1] == 0:  # empty rankings: every judged query is missing
        missing = list(judged.qids)
    elif len(present) and width and len(judged.entry):
        pos_of = doc_index if doc_index is not None else {d: i for i, d in enumerate(doc_ids)}
        # positive judgments of ranked queries whose document is in the corpus, by sub row
        sub_row = np.full(nj, -1, dtype=np.int64)
        sub_row[present] = np.arange(len(present), dtype=np.int64)
        doc = judged.arrays.positions(pos_of)[judged.entry]
        srow = sub_row[judged.entry_row]
        ok = (doc >= 0) & (srow >= 0)
        doc, srow, grade = doc[ok], srow[ok], judged.entry_grade[ok]
        if len(doc):
            hits = _grade_cells(idx, rows[present], present, depth_q[present], width, n_docs,
                                doc, srow, grade)
    not_judged = [q for q in query_ids if q not in qrels]
    return _result(judged, hits, names, level, missing, not_judged)


# cells of the index matrix handled per block in _grade_cells (a few MB of temporaries)
_CELL_BLOCK = 1 << 19


def _grade_cells(idx: np.ndarray, idx_rows: np.ndarray, present: np.ndarray, depth: np.ndarray,
                 width: int, n_docs: int, doc: np.ndarray, srow: np.ndarray,
                 grade: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, grades): ``present[j], c`` for every cell ``idx[idx_rows[j], c]`` (``c <
    min(width, depth[j])``) holding a document of a judged pair (``srow`` = j, ``doc``, ``grade``)."""
    counts = np.bincount(doc, minlength=n_docs + 1)
    owner = np.full(n_docs + 1, -1, dtype=np.int32)  # the last entry: what -1 padding reads
    owned = np.zeros(n_docs + 1, dtype=np.int32)
    single = counts[doc] == 1
    owner[doc[single]] = srow[single]
    owned[doc[single]] = grade[single]
    owner[doc[~single]] = -2
    shared_keys = srow[~single] * n_docs + doc[~single]
    order = np.argsort(shared_keys, kind="stable")
    shared_keys, shared_grade = shared_keys[order], grade[~single][order]
    n_rows = len(present)
    identity = n_rows == len(idx) and np.array_equal(idx_rows, np.arange(len(idx)))
    deep = bool((depth < width).any())
    step = max(1, _CELL_BLOCK // max(width, 1))
    out_r: list[np.ndarray] = []
    out_c: list[np.ndarray] = []
    out_g: list[np.ndarray] = []
    for a in range(0, n_rows, step):
        b = min(a + step, n_rows)
        blk = idx[a:b, :width] if identity else idx[idx_rows[a:b], :width]
        og = owner[blk]
        here = np.arange(a, b, dtype=np.int32)[:, None]
        mask = og == here
        if len(shared_keys):
            mask |= og == -2
        r, c = np.nonzero(mask)
        if not len(r):
            continue
        d = blk[r, c]
        who = og[r, c]
        g = owned[d]
        shared = who == -2
        if shared.any():
            key = (r[shared] + a).astype(np.int64) * n_docs + d[shared]
            at = np.minimum(np.searchsorted(shared_keys, key), len(shared_keys) - 1)
            g[shared] = np.where(shared_keys[at] == key, shared_grade[at], 0)
        if deep:
            g[c >= depth[r + a]] = 0
        keep = g > 0
        out_r.append(present[r[keep] + a])
        out_c.append(c[keep])
        out_g.append(g[keep])
    if not out_r:
        none = np.empty(0, dtype=np.int64)
        return none, none, none
    return np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_g)


_first = itemgetter(0)


def _doc_prefix(entries: Sequence, depth: int) -> Sequence[str]:
    """The first ``depth`` distinct doc ids of a ranking (first occurrence wins)."""
    head = entries if len(entries) <= depth else entries[:depth]
    plain = isinstance(head[0], str)
    docs = head if plain else list(map(_first, head))
    if len(set(docs)) == len(docs):
        return docs
    uniq = dict.fromkeys(entries if plain else map(_first, entries))
    return list(islice(uniq, depth))


def evaluate_run(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    ks: Iterable[int] = DEFAULT_KS,
    metrics: Sequence[str] | None = None,
    relevance_level: int = 1,
    skip_unanswerable: bool = False,
) -> MetricResult:
    """Score a run of ``{query: {doc: score}}``; same result as ``evaluate(qrels, rank_run(run))``.

    Faster than ranking everything: only the ranks of the judged relevant docs are needed, and
    each is found by counting the docs that outrank it (trec_eval's order, float32 scores).
    """
    level, names, kmax, want_rprec = _plan(ks, metrics, relevance_level)
    judged = _Judged(qrels, level, kmax, skip_unanswerable)
    hit_q: list[int] = []
    hit_rank: list[int] = []
    hit_grade: list[int] = []
    missing: list[str] = []
    for qi, (qid, pos, r) in enumerate(zip(judged.qids, judged.positive, judged.num_rel.tolist())):
        docs = run.get(qid)
        if not docs:
            missing.append(qid)
            continue
        depth = max(kmax, r) if want_rprec else kmax
        s32 = _scores32(qid, docs)
        found = [(d, g, docs[d]) for d, g in pos.items() if d in docs]
        if not found:
            continue
        n = len(docs)
        sj = np.asarray([f[2] for f in found], dtype=np.float64).astype(np.float32)
        if len(found) * n <= _BROADCAST_LIMIT:
            above = (s32[None, :] > sj[:, None]).sum(axis=1)
            ties = (s32[None, :] == sj[:, None]).sum(axis=1)
        else:
            srt = np.sort(s32)
            lo = np.searchsorted(srt, sj, side="left")
            hi = np.searchsorted(srt, sj, side="right")
            above = n - hi
            ties = hi - lo
        keys = None
        for j, (d, g, _) in enumerate(found):
            rank = int(above[j])
            if ties[j] > 1:
                if keys is None:
                    keys = list(docs)
                tied = np.flatnonzero(s32 == sj[j]).tolist()
                rank += sum(1 for i in tied if keys[i] > d)
            if rank < depth:
                hit_q.append(qi)
                hit_rank.append(rank)
                hit_grade.append(g)
    not_judged = [q for q in run if q not in qrels]
    hits = (np.asarray(hit_q, dtype=np.int64), np.asarray(hit_rank, dtype=np.int64),
            np.asarray(hit_grade, dtype=np.int64))
    return _result(judged, hits, names, level, missing, not_judged)
