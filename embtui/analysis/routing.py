"""Routing between runs: the per-query oracle (each query answered by whichever run scores it best —
the ceiling any router could reach) and a learned router (scikit-learn logistic regression on cheap
query features), evaluated with K-fold cross-validation over queries so no query is scored by a
router that saw it. Pure: per-query values and texts in, a report out.

Features, all known before any model runs: query length in words, the share of its words found in
the corpus vocabulary, the mean and max inverse document frequency of its words (words the corpus
lacks count as the rarest), and the share of its words that are digits or contain one (entity-like).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from embtui.errors import EmbtuiError

FEATURES = ("words", "in_vocabulary", "mean_idf", "max_idf", "digit_words")
_WORD = re.compile(r"\w+", re.UNICODE)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def query_features(queries: Sequence[str], corpus: Sequence[str]) -> np.ndarray:
    """[queries, len(FEATURES)] float64 (see the module docstring)."""
    df: Counter[str] = Counter()
    for doc in corpus:
        df.update(set(_words(doc)))
    n = max(len(corpus), 1)
    rare = math.log(n + 1)
    out = np.zeros((len(queries), len(FEATURES)))
    for i, q in enumerate(queries):
        words = _words(q)
        if not words:
            continue
        idf = [math.log((n + 1) / (df[w] + 1)) if w in df else rare for w in words]
        out[i] = (len(words), sum(w in df for w in words) / len(words), float(np.mean(idf)), max(idf),
                  sum(any(c.isdigit() for c in w) for w in words) / len(words))
    return out


@dataclass(frozen=True)
class RoutingReport:
    run_ids: tuple[int, ...]
    query_ids: tuple[str, ...]
    values: np.ndarray            # [queries, runs] the metric per query and run
    oracle_choice: np.ndarray     # [queries] index of the run the oracle picks
    router_choice: np.ndarray     # [queries] index of the run the router picks (out of fold)
    best_single: int              # index of the best single run (highest mean)
    folds: int

    @property
    def means(self) -> list[float]:
        return [float(v) for v in self.values.mean(axis=0)]

    @property
    def oracle(self) -> np.ndarray:
        return self.values[np.arange(len(self.query_ids)), self.oracle_choice]

    @property
    def router(self) -> np.ndarray:
        return self.values[np.arange(len(self.query_ids)), self.router_choice]

    def router_share(self) -> dict[int, float]:
        """run id -> share of queries the router sends to it (each query runs one model)."""
        counts = np.bincount(self.router_choice, minlength=len(self.run_ids))
        return {rid: float(c) / len(self.query_ids) for rid, c in zip(self.run_ids, counts)}


def oracle_choice(values: np.ndarray, prefer: int | None = None) -> np.ndarray:
    """Per query, the run with the highest value; on a tie ``prefer`` when it is among the best
    (the router then learns "stay with the best single run" unless another run really wins),
    else the run listed first."""
    choice = np.argmax(values, axis=1)
    if prefer is not None:
        tied = values[:, prefer] >= values.max(axis=1)
        choice[tied] = prefer
    return choice


def route(values: Mapping[int, Mapping[str, float]], features: Mapping[str, np.ndarray], *,
          folds: int = 5, seed: int = 0) -> RoutingReport:
    """``values``: run id -> query id -> metric value; ``features``: query id -> feature row.
    Queries scored by every run and with features are used."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    run_ids = tuple(values)
    if len(run_ids) < 2:
        raise EmbtuiError("routing needs two or more runs", "e.g. `embtui route 1 2 3`")
    qids = tuple(sorted(set.intersection(*(set(v) for v in values.values())) & set(features)))
    if len(qids) < 2 * folds:
        raise EmbtuiError(f"only {len(qids)} queries are scored by every run: too few for {folds}-fold "
                          "cross-validation", "route runs of one split with more queries")
    vals = np.array([[values[r][q] for r in run_ids] for q in qids], dtype=np.float64)
    x = np.vstack([features[q] for q in qids])
    best = int(np.argmax(vals.mean(axis=0)))
    y = oracle_choice(vals, prefer=best)
    choice = np.full(len(qids), best)
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(x):
        labels = np.unique(y[train])
        if len(labels) == 1:  # the fold's oracle always picks one run: so does the router
            choice[test] = labels[0]
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        model.fit(x[train], y[train])
        choice[test] = model.predict(x[test])
    return RoutingReport(run_ids, qids, vals, y, choice, best, folds)
