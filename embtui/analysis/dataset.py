"""What a project's data is, in numbers (pure: texts, counts and vectors in; a profile out).

Lengths (characters, words, a model's tokens) as summaries with histograms; the truncation rate
at a model's max sequence length (documents whose tail it never sees, and the relevant documents
among them); exact duplicates (after folding case and spaces) and near-duplicates (cosine above a
threshold, exact search in chunks of bounded memory); judgment density and grades; the lexical
overlap of each query with its relevant documents (the share of its analysed terms they contain);
tokenizer statistics (the [UNK] rate, pieces per word, the most-split frequent words).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

HIST_BINS = 20


@dataclass(frozen=True)
class LengthSummary:
    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float
    hist_counts: list[int] = field(default_factory=list)
    hist_edges: list[float] = field(default_factory=list)  # the last bin also holds everything above

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(values: Sequence[float] | np.ndarray, bins: int = HIST_BINS) -> LengthSummary:
    """Summary and histogram of ``values``; the histogram spans 0 .. the 99th percentile, longer
    values falling in its last bin (a handful of giants must not flatten the picture)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return LengthSummary(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    p50, p90, p99 = (float(x) for x in np.percentile(v, [50, 90, 99]))
    top = max(p99, float(v.min()) + 1.0)
    counts, edges = np.histogram(np.minimum(v, top), bins=bins, range=(0.0, top))
    return LengthSummary(len(v), float(v.mean()), p50, p90, p99, float(v.max()), counts.tolist(),
                         [float(e) for e in edges])


_WORD = re.compile(r"\w+", re.UNICODE)


def word_counts(texts: Iterable[str]) -> list[int]:
    return [len(_WORD.findall(t)) for t in texts]


@dataclass(frozen=True)
class Truncation:
    max_length: int | None
    truncated: int
    rate: float
    relevant: int  # relevant documents (judged > 0 in any split)
    relevant_truncated: int
    relevant_rate: float
    tokens_lost_share: float  # of all document tokens, the share past the limit

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def truncation(token_counts: Sequence[int] | np.ndarray, max_length: int | None,
               relevant: Sequence[bool] | np.ndarray | None = None) -> Truncation:
    """Documents longer than ``max_length`` tokens (special tokens included, as the model counts)."""
    t = np.asarray(token_counts, dtype=np.int64)
    rel = np.zeros(len(t), bool) if relevant is None else np.asarray(relevant, bool)
    if max_length is None or len(t) == 0:
        return Truncation(max_length, 0, 0.0, int(rel.sum()), 0, 0.0, 0.0)
    over = t > max_length
    lost = np.maximum(t - max_length, 0).sum() / max(int(t.sum()), 1)
    nrel = int(rel.sum())
    rt = int((over & rel).sum())
    return Truncation(max_length, int(over.sum()), float(over.mean()), nrel, rt,
                      rt / nrel if nrel else 0.0, float(lost))


def fold(text: str) -> str:
    """Case and runs of white space folded: what makes two texts 'the same' for duplicates."""
    return " ".join(text.lower().split())


def exact_duplicates(ids: Sequence[str], texts: Sequence[str]) -> list[list[str]]:
    """Groups (two or more ids) of texts equal after :func:`fold`, largest first; empty texts are
    counted apart (:func:`empty_ids`), not as duplicates of each other."""
    groups: dict[str, list[str]] = defaultdict(list)
    for i, t in zip(ids, texts):
        f = fold(t)
        if f:
            groups[f].append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))


def empty_ids(ids: Sequence[str], texts: Sequence[str]) -> list[str]:
    return [i for i, t in zip(ids, texts) if not t.strip()]


def near_duplicates(vectors: np.ndarray, threshold: float = 0.95, *, chunk: int | None = None,
                    max_pairs: int = 10_000, exclude_exact: Sequence[str] | None = None,
                    ) -> tuple[list[tuple[int, int, float]], int]:
    """(pairs (i, j, cosine) with i < j and cosine >= ``threshold``, most similar first, at most
    ``max_pairs`` of them; how many there are in all). ``exclude_exact``: folded texts per row;
    pairs whose texts are equal are exact duplicates, reported there and left out here."""
    v = np.asarray(vectors, dtype=np.float32)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    n = len(v)
    if chunk is None:  # a block of similarities stays near 128 MB whatever the corpus size
        chunk = int(min(4096, max(16, (128 << 20) // (4 * max(n, 1)))))
    found: list[tuple[int, int, float]] = []
    total = 0
    for s in range(0, n, chunk):
        sims = v[s:s + chunk] @ v[s:].T  # the upper triangle only: rows s.., columns s..
        m = len(sims)
        sims[:, :m][np.tril_indices(m)] = -2.0  # a row with itself and pairs seen from the other side
        hot = np.flatnonzero(sims.max(axis=1) >= threshold)  # one pass; nonzero only where needed
        if not len(hot):
            continue
        rows, cols = np.nonzero(sims[hot] >= threshold)
        rows = hot[rows]
        for r, c in zip(rows.tolist(), cols.tolist()):
            i, j = s + r, s + c
            if exclude_exact is not None and exclude_exact[i] == exclude_exact[j]:
                continue
            total += 1
            found.append((i, j, float(sims[r, c])))
        if len(found) > 4 * max_pairs:
            found.sort(key=lambda p: -p[2])
            del found[max_pairs:]
    found.sort(key=lambda p: (-p[2], p[0], p[1]))
    return found[:max_pairs], total


@dataclass(frozen=True)
class Judgments:
    split: str
    queries: int  # queries of the split
    judged_queries: int
    judgments: int
    per_query: LengthSummary
    grades: dict[int, int]
    relevant_per_query_mean: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["grades"] = {str(k): v for k, v in self.grades.items()}
        return d


def judgments(split: str, query_ids: Iterable[str], qrels: Mapping[str, Mapping[str, int]]) -> Judgments:
    qids = list(query_ids)
    per = [len(qrels.get(q, {})) for q in qids if q in qrels]
    grades = Counter(g for j in qrels.values() for g in j.values())
    rel = [sum(1 for g in j.values() if g > 0) for j in qrels.values()]
    return Judgments(split, len(qids), sum(1 for q in qids if q in qrels), sum(per),
                     summarize(per, bins=min(HIST_BINS, max(per, default=1))), dict(sorted(grades.items())),
                     float(np.mean(rel)) if rel else 0.0)


def term_overlap(query_terms: Sequence[str], doc_terms: Iterable[str]) -> float | None:
    """Share of the query's distinct terms present in the document (None: no query terms)."""
    q = set(query_terms)
    if not q:
        return None
    return len(q & set(doc_terms)) / len(q)


@dataclass(frozen=True)
class Overlap:
    split: str
    per_query: dict[str, float]  # mean over the query's relevant documents
    summary: LengthSummary
    zero_share: float  # queries sharing no analysed term with any relevant document

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "summary": self.summary.to_dict(), "zero_share": self.zero_share,
                "queries": len(self.per_query)}


def lexical_overlap(split: str, query_terms: Mapping[str, Sequence[str]],
                    doc_terms: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]) -> Overlap:
    """Per query, the mean :func:`term_overlap` over its relevant documents (grade > 0)."""
    per: dict[str, float] = {}
    for q, judged in qrels.items():
        if q not in query_terms:
            continue
        vals = [term_overlap(query_terms[q], doc_terms[d]) for d, g in judged.items()
                if g > 0 and d in doc_terms]
        vals = [v for v in vals if v is not None]
        if vals:
            per[q] = float(np.mean(vals))
    values = list(per.values())
    return Overlap(split, per, summarize(values, bins=10),
                   float(np.mean([v == 0 for v in values])) if values else 0.0)


def overlap_vs_delta(overlap: Mapping[str, float], lexical: Mapping[str, float], dense: Mapping[str, float],
                     bins: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0001)) -> dict[str, Any]:
    """Does lexical overlap predict where a lexical run beats a dense one? Spearman's rho of
    overlap against (lexical - dense) per query, and the mean difference per overlap band."""
    from scipy.stats import spearmanr

    qs = [q for q in overlap if q in lexical and q in dense]
    if len(qs) < 3:
        return {"queries": len(qs)}
    o = np.array([overlap[q] for q in qs])
    d = np.array([lexical[q] - dense[q] for q in qs])
    rho = spearmanr(o, d)
    bands = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        m = (o >= lo) & (o < hi)
        bands.append({"from": lo, "to": min(hi, 1.0), "queries": int(m.sum()),
                      "mean_delta": float(d[m].mean()) if m.any() else None,
                      "lexical_wins": int((d[m] > 0).sum())})
    return {"queries": len(qs), "spearman": float(rho.statistic), "p_value": float(rho.pvalue), "bands": bands}


@dataclass(frozen=True)
class TokenizerStats:
    model: str
    max_length: int | None
    tokens: LengthSummary  # per document, special tokens included
    query_tokens: LengthSummary
    truncation: Truncation
    unk_rate: float  # [UNK] pieces among all pieces
    pieces_per_word: float
    most_split: list[tuple[str, int, list[str]]]  # (word, pieces, the pieces) of frequent words

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["most_split"] = [{"word": w, "pieces": n, "split": p} for w, n, p in self.most_split]
        return d


def most_split_words(word_pieces: Mapping[str, list[str]], word_freq: Mapping[str, int], *,
                     min_freq: int = 3, top: int = 12) -> list[tuple[str, int, list[str]]]:
    """Frequent words (seen ``min_freq`` times or more) that the tokenizer cuts into the most
    pieces: the domain terms it shreds."""
    cands = [(w, len(p), p) for w, p in word_pieces.items() if word_freq.get(w, 0) >= min_freq and len(p) > 1]
    cands.sort(key=lambda c: (-c[1], -word_freq.get(c[0], 0), c[0]))
    return cands[:top]
