"""Drift between two sets of texts of a project, through one model's embeddings (cached; only
what is missing is encoded): the sets named as the CLI and the Drift pane name them, the measures
from analysis/drift.py, example texts for the clusters that moved, and per time window when the
current set is a timestamped query log.

A set is ``SPLIT`` (the queries judged in that split), ``queries`` (all the project's queries),
``log:NAME`` (an imported query log), ``docs`` (the project's corpus) or ``docs:PROJECT`` (another
project's corpus: a new snapshot), each optionally ``...@half1``/``...@half2`` (a seeded random
half: the no-drift control).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from embtui.analysis import drift as dr
from embtui.analysis.space import SEED
from embtui.engine.progress import CancelToken, ProgressCallback
from embtui.errors import EmbtuiError

if TYPE_CHECKING:
    from embtui.store import Store


@dataclass(frozen=True)
class TextSet:
    name: str
    texts: list[str]
    role: str  # "query" or "document"
    timestamps: list[float | None] | None = None


def resolve_set(store: "Store", project: str, selector: str, seed: int = SEED) -> TextSet:
    base, _, half = selector.partition("@")
    if half and half not in ("half1", "half2"):
        raise EmbtuiError(f"unknown set suffix '@{half}'", "use @half1 or @half2")
    stamps: list[float | None] | None = None
    if base.startswith("log:"):
        texts, stamps = store.query_log(project, base[4:])
        role = "query"
    elif base == "docs" or base.startswith("docs:"):
        other = base[5:] or project
        texts = store.corpus(other).encode_texts()
        role = "document"
    elif base == "queries":
        texts = list(store.queries(project).values())
        role = "query"
    else:
        info = store.get_project(project)
        if base not in info.splits:
            raise EmbtuiError(f"'{selector}' names no set of project '{project}'",
                              f"use a split ({', '.join(info.splits) or 'none'}), queries, log:NAME, "
                              "docs or docs:PROJECT")
        texts = list(store.queries(project, base).values())
        role = "query"
    if half:
        order = np.random.default_rng(seed).permutation(len(texts))
        pick = np.sort(order[: len(texts) // 2] if half == "half1" else order[len(texts) // 2:])
        texts = [texts[i] for i in pick]
        stamps = [stamps[i] for i in pick] if stamps is not None else None
    if len(texts) < 2:
        raise EmbtuiError(f"set '{selector}' has {len(texts)} text(s); drift needs at least two")
    has_time = stamps is not None and any(t is not None for t in stamps)
    return TextSet(selector, texts, role, stamps if has_time else None)


def drift(store: "Store", project: str, model: str, reference: str, current: str, *,
          window: str | None = None, k: int = 8, permutations: int = 500, max_n: int = 1000,
          seed: int = SEED, progress: ProgressCallback | None = None,
          cancel: CancelToken | None = None) -> dict[str, Any]:
    from embtui.engine.data_profile import cached_vectors
    from embtui.engine.models import resolve_spec
    from embtui.engine.space import embed

    t0 = time.perf_counter()
    ref = resolve_set(store, project, reference, seed)
    cur = resolve_set(store, project, current, seed)
    if ref.role != cur.role:
        raise EmbtuiError(f"'{reference}' holds {ref.role}s and '{current}' {cur.role}s",
                          "compare queries with queries, or a corpus with a corpus")
    a = embed(store, model, ref.texts, ref.role, progress=progress, cancel=cancel)
    b = embed(store, model, cur.texts, cur.role, progress=progress, cancel=cancel)
    t_vec = time.perf_counter() - t0
    docs = None
    note = None
    if ref.role == "query":  # coverage needs the corpus: only when it is cached (no surprise encode)
        docs = cached_vectors(store, resolve_spec(model, store), store.corpus(project).encode_texts(), "document")
        if docs is None:
            note = f"coverage needs the corpus in {model}'s cache (embtui eval --model {model})"
    t1 = time.perf_counter()
    report = dr.drift_report(a, b, docs=docs, k=k, permutations=permutations, max_n=max_n, seed=seed)
    out = report.to_dict()
    for c in out["clusters"]:
        c["examples"] = [cur.texts[i][:160] for i in c["examples"]]
    if report.coverage is not None:
        out["coverage"]["uncovered"] = [cur.texts[i][:160] for i in report.coverage.uncovered]
    out.update({"project": project, "model": model, "reference": reference, "current": current,
                "role": ref.role, "meanings": dr.MEANINGS, "thresholds": dr.THRESHOLDS, "seed": seed,
                "coverage_note": note})
    if window:
        if cur.timestamps is None:
            raise EmbtuiError(f"'{current}' has no timestamps", "import the log with a timestamp column")
        have = [i for i, t in enumerate(cur.timestamps) if t is not None]
        windows = dr.drift_over_time(a, b[have], [cur.timestamps[i] for i in have], window=window, k=k,
                                     permutations=min(permutations, 200), max_n=max_n, seed=seed)
        out["windows"] = [w.__dict__ for w in windows]
    out["seconds"] = {"vectors": t_vec, "measures": time.perf_counter() - t1}
    return out
