"""Failure analysis of one run: the queries whose first relevant document ranks below a threshold,
worst first, and one query's detail (every relevant document with its rank, what ranked above)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

@dataclass(frozen=True)
class Failure:
    """A query whose first relevant document is not within the threshold."""

    query_id: str
    text: str
    first_rank: int | None  # None: no relevant document in the stored ranking
    relevant: int  # how many relevant judgments it has


@dataclass(frozen=True)
class RankedDoc:
    doc_id: str
    rank: int | None  # None: not in the stored ranking
    score: float | None
    title: str = ""
    text: str = ""
    grade: int = 0


@dataclass(frozen=True)
class FailureDetail:
    query_id: str
    text: str
    relevant: tuple[RankedDoc, ...]  # every relevant doc with its rank (or not ranked)
    above: tuple[RankedDoc, ...]  # docs ranked above the first relevant one
    depth: int  # how deep the stored ranking goes
    extra: dict[str, Any] = field(default_factory=dict)


def first_relevant_rank(ranking: list[tuple[str, float]], judged: dict[str, int]) -> int | None:
    """The 1-based rank of the first document judged relevant (grade > 0), None if none is ranked."""
    return next((i for i, (d, _s) in enumerate(ranking, 1) if judged.get(d, 0) > 0), None)


def find_failures(rankings: dict[str, list[tuple[str, float]]], qrels: dict[str, dict[str, int]],
                  queries: dict[str, str], threshold: int, text_filter: str = "") -> list[Failure]:
    """Queries with no relevant doc in the top ``threshold``, worst first.

    Worst = no relevant doc at all in the stored ranking, then the deepest first relevant rank;
    ties by query id. Queries without relevant judgments are not failures (nothing to find).
    """
    needle = text_filter.strip().lower()
    out = []
    for qid, judged in qrels.items():
        relevant = {d for d, g in judged.items() if g > 0}
        if not relevant:
            continue
        text = queries.get(qid, "")
        if needle and needle not in text.lower() and needle not in qid.lower():
            continue
        first = first_relevant_rank(rankings.get(qid, []), judged)
        if first is None or first > threshold:
            out.append(Failure(qid, text, first, len(relevant)))
    out.sort(key=lambda f: (f.first_rank is not None, -(f.first_rank or 0), f.query_id))
    return out


def failure_detail(query_id: str, text: str, ranking: list[tuple[str, float]],
                   judged: dict[str, int], docs: dict[str, tuple[str, str]],
                   max_above: int = 10) -> FailureDetail:
    """The relevant docs of a query with their ranks, and the docs ranked above the first one."""
    pos = {d: (i, s) for i, (d, s) in enumerate(ranking, 1)}
    relevant = []
    for d, g in sorted(judged.items(), key=lambda x: (pos.get(x[0], (10**9, 0))[0], x[0])):
        if g <= 0:
            continue
        rank, score = pos.get(d, (None, None))
        title, body = docs.get(d, ("", ""))
        relevant.append(RankedDoc(d, rank, score, title, body, g))
    first = min((r.rank for r in relevant if r.rank is not None), default=len(ranking) + 1)
    above = []
    for i, (d, s) in enumerate(ranking[:min(first - 1, max_above)], 1):
        title, body = docs.get(d, ("", ""))
        above.append(RankedDoc(d, i, s, title, body, judged.get(d, 0)))
    return FailureDetail(query_id, text, tuple(relevant), tuple(above), len(ranking))


def docs_needed(detail_ranking: list[tuple[str, float]], judged: dict[str, int], max_above: int = 10,
                ) -> list[str]:
    ids = [d for d, g in judged.items() if g > 0]
    ids += [d for d, _ in detail_ranking[:max_above]]
    return list(dict.fromkeys(ids))
