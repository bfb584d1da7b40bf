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
    ids: list[str] | None = None  # query ids, for a project's own queries (judged per window)
    split: str | None = None


def resolve_set(store: "Store", project: str, selector: str, seed: int = SEED) -> TextSet:
    base, _, half = selector.partition("@")
    if half and half not in ("half1", "half2"):
        raise EmbtuiError(f"unknown set suffix '@{half}'", "use @half1 or @half2")
    stamps: list[float | None] | None = None
    ids: list[str] | None = None
    split: str | None = None
    if base.startswith("log:"):
        texts, stamps = store.query_log(project, base[4:])
        role = "query"
    elif base == "docs" or base.startswith("docs:"):
        other = base[5:] or project
        texts = store.corpus(other).encode_texts()
        role = "document"
    elif base == "queries":
        qs = store.queries(project)
        ids, texts = list(qs), list(qs.values())
        role = "query"
    else:
        info = store.get_project(project)
        if base not in info.splits:
            raise EmbtuiError(f"'{selector}' names no set of project '{project}'",
                              f"use a split ({', '.join(info.splits) or 'none'}), queries, log:NAME, "
                              "docs or docs:PROJECT")
        qs = store.queries(project, base)
        ids, texts, split = list(qs), list(qs.values()), base
        role = "query"
    if ids is not None:  # a project's queries may carry a timestamp in their metadata
        meta = store.query_metadata(project)
        from embtui.data.query_logs import parse_timestamp

        def stamp(q: str) -> float | None:
            m = meta.get(q) or {}
            value = m.get("timestamp", m.get("ts")) if isinstance(m, dict) else None
            try:
                return parse_timestamp(value, "queries", 0)
            except EmbtuiError:
                return None

        stamps = [stamp(q) for q in ids]
    if half:
        order = np.random.default_rng(seed).permutation(len(texts))
        pick = np.sort(order[: len(texts) // 2] if half == "half1" else order[len(texts) // 2:])
        texts = [texts[i] for i in pick]
        stamps = [stamps[i] for i in pick] if stamps is not None else None
        ids = [ids[i] for i in pick] if ids is not None else None
    if len(texts) < 2:
        raise EmbtuiError(f"set '{selector}' has {len(texts)} text(s); drift needs at least two")
    has_time = stamps is not None and any(t is not None for t in stamps)
    return TextSet(selector, texts, role, stamps if has_time else None, ids, split)


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
        out["windows"] = [dict(w.__dict__) for w in windows]
        quality = _quality_per_window(store, project, model, cur, have, window)
        if quality is not None:
            metric, run_id, per = quality
            out["quality"] = {"metric": metric, "run": run_id}
            for w in out["windows"]:
                w[metric] = per.get(w["window"])
    out["seconds"] = {"vectors": t_vec, "measures": time.perf_counter() - t1}
    return out


def _quality_per_window(store: "Store", project: str, model: str, cur: TextSet, have: list[int],
                        window: str) -> tuple[str, int, dict[str, float]] | None:
    """Mean NDCG@10 per window of the model's latest finished run on the current set's split,
    when the current set is a project's judged, timestamped queries."""
    if cur.ids is None or cur.timestamps is None:
        return None
    splits = [cur.split] if cur.split else list(store.get_project(project).splits)
    runs = [r for r in store.list_runs(project, status="done") if r.model_name == model and r.split in splits]
    if not runs:
        return None
    run = runs[-1]
    per_query = store.run_query_metrics(run.id)
    keys = dr.window_keys([cur.timestamps[i] for i in have], window)
    sums: dict[str, list[float]] = {}
    for i, key in zip(have, keys):
        m = per_query.get(cur.ids[i])
        if m is not None and "ndcg@10" in m:
            sums.setdefault(key, []).append(m["ndcg@10"])
    return "ndcg@10", run.id, {k: float(np.mean(v)) for k, v in sums.items()}
