"""Fusing several rankings of the same queries into one: reciprocal rank fusion and a weighted sum
of min-max normalised scores (the usual definitions, as in ranx's ``rrf`` and ``wsum`` with
``min-max`` normalisation; here a ranking whose scores are all equal counts 1 for each of its
documents). Pure: rankings in, ranking out. Ties in the fused score are broken as everywhere in
embtui, by document id descending (trec_eval's rule), so a fused run file reads back in the same
order.

Groundwork for the pipelines of issue #13 (a hybrid lexical + dense first stage); not yet wired
into evaluation runs.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from embtui.errors import EmbtuiError

Ranking = Sequence[tuple[str, float]]  # (doc id, score), best first

RRF_K = 60  # Cormack, Clarke & Büttcher (SIGIR 2009)


def _ordered(scores: Mapping[str, float], depth: int | None) -> list[tuple[str, float]]:
    # score descending, then doc id descending (trec_eval); sort twice, stably
    out = sorted(scores.items(), key=lambda kv: kv[0], reverse=True)
    out.sort(key=lambda kv: kv[1], reverse=True)
    return out[:depth] if depth else out


def rrf(rankings: Sequence[Mapping[str, Ranking]], k: int = RRF_K, depth: int | None = None,
        ) -> dict[str, list[tuple[str, float]]]:
    """Reciprocal rank fusion: a document's score is the sum over rankings of 1 / (k + rank),
    rank 1-based; a ranking that misses it adds nothing. Queries of any ranking are kept."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise EmbtuiError(f"RRF k {k!r} must be a whole number >= 0", "the usual value is 60")
    if not rankings:
        raise EmbtuiError("fusion needs at least one ranking")
    out: dict[str, list[tuple[str, float]]] = {}
    for q in dict.fromkeys(q for r in rankings for q in r):
        scores: dict[str, float] = {}
        for run in rankings:
            for rank, (doc, _s) in enumerate(run.get(q, ()), 1):
                scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
        out[q] = _ordered(scores, depth)
    return out


def weighted_sum(rankings: Sequence[Mapping[str, Ranking]], weights: Sequence[float],
                 depth: int | None = None) -> dict[str, list[tuple[str, float]]]:
    """Sum of ``weight * min-max normalised score`` over the rankings (per query: the best score of
    a ranking becomes 1, its worst 0; all equal: 1). A ranking that misses a document adds 0."""
    if len(weights) != len(rankings) or not rankings:
        raise EmbtuiError(f"{len(weights)} weight(s) for {len(rankings)} ranking(s)",
                          "give one weight per ranking, e.g. weighted:0.3,0.7")
    out: dict[str, list[tuple[str, float]]] = {}
    for q in dict.fromkeys(q for r in rankings for q in r):
        scores: dict[str, float] = {}
        for run, w in zip(rankings, weights):
            row = run.get(q, ())
            if not row:
                continue
            values = [s for _d, s in row]
            lo, hi = min(values), max(values)
            for doc, s in row:
                norm = 1.0 if hi == lo else (s - lo) / (hi - lo)
                scores[doc] = scores.get(doc, 0.0) + float(w) * norm
        out[q] = _ordered(scores, depth)
    return out
