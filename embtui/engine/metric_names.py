"""Metric names and cutoffs: parsing ``1,3,10`` and ``ndcg@10``, the families, and the checks every
entry point shares (the CLI, job files, the API)."""

from __future__ import annotations

import re
from typing import Iterable, Sequence

import numpy as np

from embtui.errors import EmbtuiError

DEFAULT_KS: tuple[int, ...] = (1, 3, 5, 10, 100)
METRIC_FAMILIES: tuple[str, ...] = ("ndcg", "mrr", "map", "recall", "p", "success")
RPREC = "r-precision"

_INT_RE = re.compile(r"[0-9]+")
_METRIC_RE = re.compile(r"([a-z]+)@([0-9]+)")


def parse_ks(text: str) -> tuple[int, ...]:
    """Parse a comma-separated cutoff list such as ``"1,3,10"``: sorted, de-duplicated, each >= 1."""
    if text is None or not str(text).strip():
        raise EmbtuiError("empty cutoff list", hint="give positive integers like 1,3,10")
    values = set()
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            raise EmbtuiError(f"empty item in cutoff list {text!r}", hint="give positive integers like 1,3,10")
        if not _INT_RE.fullmatch(item):
            raise EmbtuiError(
                f"cutoff {item!r} is not a positive integer", hint="give positive integers like 1,3,10"
            )
        k = int(item)
        if k < 1:
            raise EmbtuiError(f"cutoff {item!r} must be at least 1", hint="give positive integers like 1,3,10")
        values.add(k)
    return tuple(sorted(values))


def check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    """Cutoffs given as numbers (API, job files): each a positive integer; sorted, de-duplicated."""
    if isinstance(ks, str):
        return parse_ks(ks)
    if isinstance(ks, (int, np.integer)) and not isinstance(ks, bool):
        ks = (ks,)
    out = set()
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise EmbtuiError(f"cutoff {k!r} must be a positive integer", hint="give positive integers like 1,3,10")
        out.add(int(k))
    if not out:
        raise EmbtuiError("no cutoffs given", hint="give positive integers like 1,3,10")
    return tuple(sorted(out))


def metric_names(ks: Iterable[int] = DEFAULT_KS) -> list[str]:
    """All metric names for these cutoffs, family by family then by k, with ``r-precision`` last."""
    ks = check_ks(ks)
    return [f"{family}@{k}" for family in METRIC_FAMILIES for k in ks] + [RPREC]


def parse_metric(name: str) -> tuple[str, int | None]:
    """Split ``"ndcg@10"`` into ``("ndcg", 10)``; ``"r-precision"`` gives ``("r-precision", None)``."""
    if name == RPREC:
        return RPREC, None
    m = _METRIC_RE.fullmatch(name) if isinstance(name, str) else None
    if m is None or m.group(1) not in METRIC_FAMILIES or int(m.group(2)) < 1:
        raise EmbtuiError(
            f"unknown metric {name!r}",
            hint=f"use <family>@<k> with family one of {', '.join(METRIC_FAMILIES)} and k >= 1, or {RPREC}",
        )
    return m.group(1), int(m.group(2))


def resolve_metrics(ks: Iterable[int], metrics: Sequence[str] | None) -> list[str]:
    """The metric names asked for (default: every family at every cutoff), each checked."""
    if metrics is None:
        return metric_names(ks)
    if isinstance(metrics, str):
        metrics = [metrics]
    names = list(dict.fromkeys(metrics))
    if not names:
        raise EmbtuiError("no metrics requested")
    for name in names:
        parse_metric(name)
    return names


def check_level(relevance_level: int) -> int:
    """trec_eval's -l: grades at or above it are relevant; an integer >= 1."""
    if isinstance(relevance_level, bool) or not isinstance(relevance_level, (int, np.integer)) or relevance_level < 1:
        raise EmbtuiError(
            f"relevance level {relevance_level!r} must be an integer >= 1",
            hint="grades at or above it count as relevant (trec_eval -l)",
        )
    return int(relevance_level)
