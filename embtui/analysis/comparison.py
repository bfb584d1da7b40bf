"""Comparing runs from their per-query values: deltas against a baseline, paired tests with Holm,
and slices of the queries (length, relevant documents, tags, metadata) — data in, report objects out,
as ranx's ``compare`` takes qrels and runs and returns a report. No store, no I/O:
embtui/engine/compare.py gathers the data and calls these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from embtui.analysis.stats import (ALPHA, N_RESAMPLES, PRIMARY_TEST, SEED, TIE_EPS, PairedTest,
                                   TestResult, holm, independent_test, paired_tests)
from embtui.errors import EmbtuiError

LENGTH_BUCKETS: tuple[tuple[str, int, int], ...] = (
    ("1-5 words", 1, 5), ("6-10 words", 6, 10), ("11-20 words", 11, 20), ("21+ words", 21, 10**9),
)
SLICE_KINDS = ("length", "length-quantiles", "relevant", "tag", "meta:<path>")


@dataclass(frozen=True)
class SliceData:
    """What the groupings read: query texts (length), judgments (relevant), labels per query
    (tag), query metadata (meta:FIELD). A grouping reads only its own field."""

    texts: Mapping[str, str] | None = None
    qrels: Mapping[str, Mapping[str, int]] | None = None
    labels: Mapping[str, Sequence[str]] | None = None
    meta: Mapping[str, Any] | None = None


def slice_needs(by: str) -> str:
    """Which :class:`SliceData` field grouping ``by`` reads (fails for an unknown grouping)."""
    if by in ("length", "length-quantiles"):
        return "texts"
    if by == "relevant":
        return "qrels"
    if by == "tag":
        return "labels"
    if by.startswith("meta:") and len(by) > 5:
        return "meta"
    raise EmbtuiError(f"unknown slice '{by}'",
                      "use length, length-quantiles, relevant, tag or meta:<field> "
                      "(a dotted path into the query metadata; * matches any key)")


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


def build_comparison(runs: Sequence[Any], base_id: int, metric: str, values: dict[int, dict[str, float]],
                judged: Mapping[str, Mapping[str, int]], texts: Mapping[str, str], qrels_overlay: bool,
                tests: tuple[str, ...], alpha: float, n_resamples: int, seed: int) -> Comparison:
    """The comparison of ``runs`` (RunInfo-like: id, project, split, model_name) on the queries
    every run scored in ``values`` (run id -> query id -> metric value)."""
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
    primary = PRIMARY_TEST if PRIMARY_TEST in tests else first_p_test(tests)
    paired = tuple(PairedTest(rid, base_id, metric, raw[rid], adjusted[rid], alpha, primary)
                   for rid in others)
    project, split = runs[0].project, runs[0].split
    return Comparison(project, split, metric, tuple(order), base_id, {r.id: r for r in runs}, query_ids,
                      values, {rid: float(np.mean(list(values[rid].values()))) for rid in order},
                      deltas, paired, dropped, qrels_overlay, n_resamples, seed)


def first_p_test(tests: Iterable[str]) -> str:
    return next((t for t in tests if t != "bootstrap"), PRIMARY_TEST)


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


def length_bucket(text: str) -> str:
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


def group_queries(by: str, qids: Sequence[str], data: SliceData) -> tuple[str, dict[str, list[str]], bool]:
    """(title, slice key -> query ids, overlapping) for one grouping of ``qids``, from ``data``
    (only the field the grouping needs is read: see :func:`slice_needs`)."""
    groups: dict[str, list[str]] = {}
    if by == "length":
        texts = data.texts or {}
        for q in qids:
            groups.setdefault(length_bucket(texts.get(q, "")), []).append(q)
        order = [b[0] for b in LENGTH_BUCKETS] + ["empty"]
        return "query length (words)", {k: groups[k] for k in order if k in groups}, False
    if by == "length-quantiles":
        texts = data.texts or {}
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
        qrels = data.qrels or {}
        for q in qids:
            n = sum(1 for g in qrels.get(q, {}).values() if g > 0)
            groups.setdefault("3+" if n >= 3 else str(n), []).append(q)
        return "relevant documents", {k: groups[k] for k in ("0", "1", "2", "3+") if k in groups}, False
    if by == "tag":
        labels = data.labels or {}
        for q in qids:
            for label in labels.get(q, ()):
                groups.setdefault(label, []).append(q)
        untagged = [q for q in qids if not labels.get(q)]
        if untagged:
            groups["(untagged)"] = untagged
        return "annotation label", groups, True
    if by.startswith("meta:") and len(by) > 5:
        path = by[5:]
        meta = data.meta or {}
        for q in qids:
            vals = meta_values(meta.get(q, {}), path)
            groups.setdefault("+".join(vals) if vals else "(none)", []).append(q)
        keys = sorted(groups, key=lambda k: (k == "(none)", -len(groups[k]), k))
        return f"query metadata '{path}'", {k: groups[k] for k in keys}, False
    raise EmbtuiError(f"unknown slice '{by}'",
                      "use length, length-quantiles, relevant, tag or meta:<field> "
                      "(a dotted path into the query metadata; * matches any key)")


def slice_table(comp: Comparison, by: str, data: SliceData, *, alpha: float = ALPHA,
                n_resamples: int = N_RESAMPLES, seed: int = SEED) -> SliceTable:
    """Slice a :class:`Comparison` by ``by``: per slice, each run's mean, a randomization test
    against the run's own other queries, and a paired one against the baseline; Holm across the
    slices of the grouping, per run."""
    title, groups, overlapping = group_queries(by, comp.query_ids, data)
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
