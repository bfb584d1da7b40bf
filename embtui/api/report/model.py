"""What a report holds (one immutable Report: comparison, significance, slices, wins and losses,
worst queries with their text, corrected judgments, every run's config) and how it is gathered."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Sequence

from embtui.analysis.comparison import Comparison, QueryDelta, SliceTable
from embtui.analysis.failures import first_relevant_rank
from embtui.engine.compare import (compare_metrics, compare_runs, corrected_metrics, default_slices,
                                   slice_comparison)


SUMMARY_METRICS = ("ndcg@10", "mrr@10", "map@100", "recall@10", "recall@100")


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to reproduce one run's numbers."""

    run_id: int
    model: str
    model_spec: dict[str, Any]
    model_fingerprint: str | None
    device: str | None
    index: dict[str, Any]
    dataset_hash: str | None
    corpus_hash: str | None
    versions: dict[str, Any]
    timings: dict[str, Any]
    info: dict[str, Any]
    created_at: str | None
    finished_at: str | None
    command: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class QueryLine:
    """A query in the worst/best tables: its deltas plus where each run put its first relevant document."""

    delta: QueryDelta
    first_relevant: dict[int, int | None]  # run_id -> 1-based rank (None: not in the stored results)
    tags: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**self.delta.to_dict(),
                "first_relevant_rank": {str(k): v for k, v in self.first_relevant.items()},
                "tags": list(self.tags)}


@dataclass(frozen=True)
class Report:
    generated_at: str
    embtui_version: str
    project: dict[str, Any]
    comparison: Comparison
    summary: dict[int, dict[str, float | None]]  # run_id -> metric -> stored mean
    summary_markers: dict[int, dict[str, str]]  # run_id -> metric -> marker vs baseline
    slices: tuple[SliceTable, ...]
    losses: dict[int, tuple[QueryLine, ...]]  # run_id -> biggest losses first
    wins: dict[int, tuple[QueryLine, ...]]  # run_id -> biggest wins first
    first_relevant: dict[int, dict[str, int | None]]  # run_id -> query_id -> rank
    query_tags: dict[str, tuple[str, ...]]
    corrected: dict[int, dict[str, float]]  # run_id -> metric -> corrected mean (overlay present)
    overlay_judgments: int
    configs: tuple[RunConfig, ...]
    histogram: dict[int, list[tuple[str, int]]] = field(default_factory=dict)

    @property
    def title(self) -> str:
        c = self.comparison
        models = " vs ".join(c.runs[r].model_name for r in c.run_ids)
        return f"{models} on {c.project}/{c.split} ({c.metric})"

    def to_dict(self) -> dict[str, Any]:
        c = self.comparison
        return {
            "title": self.title, "generated_at": self.generated_at,
            "embtui_version": self.embtui_version, "project": self.project,
            "comparison": c.to_dict(),
            "summary": {str(r): m for r, m in self.summary.items()},
            "summary_markers": {str(r): m for r, m in self.summary_markers.items()},
            "slices": [s.to_dict() for s in self.slices],
            "largest_losses": {str(r): [q.to_dict() for q in v] for r, v in self.losses.items()},
            "largest_wins": {str(r): [q.to_dict() for q in v] for r, v in self.wins.items()},
            "corrected": {str(r): m for r, m in self.corrected.items()},
            "overlay_judgments": self.overlay_judgments,
            "configs": [cfg.to_dict() for cfg in self.configs],
        }


# ----------------------------------------------------------------------------- building


def _command(run: Any) -> str:
    spec = run.model_spec
    parts = ["embtui", "eval", "--project", run.project, "--split", run.split, "--model",
             _quote(spec.get("model", run.model_name))]
    flags = {"precision": "--precision", "max_seq_length": "--max-length",
             "query_prompt": "--query-prompt", "document_prompt": "--doc-prompt",
             "query_prompt_name": "--query-prompt-name", "document_prompt_name": "--doc-prompt-name",
             "truncate_dim": "--truncate-dim", "batch_size": "--batch-size"}
    for key, flag in flags.items():
        value = spec.get(key)
        if value is not None and not (key == "precision" and value == "fp32") \
                and not (key == "batch_size" and value == 32):
            parts += [flag, _quote(str(value))]
    if spec.get("normalize") is False:
        parts.append("--no-normalize")
    if spec.get("trust_remote_code"):
        parts.append("--trust-remote-code")
    index = run.index_config or {}
    if index.get("kind") in ("exact", "hnsw"):
        parts += ["--index", index["kind"]]
    for key, flag in (("dtype", "--hnsw-dtype"), ("connectivity", "--hnsw-connectivity"),
                      ("expansion_add", "--hnsw-expansion-add"),
                      ("expansion_search", "--hnsw-expansion-search"), ("rescore", "--hnsw-rescore")):
        if index.get("kind") == "hnsw" and (index.get("hnsw") or {}).get(key) is not None:
            parts += [flag, str(index["hnsw"][key])]
    if index.get("ignore_identical_ids"):
        parts.append("--ignore-identical-ids")
    return " ".join(parts)


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _first_relevant(rankings: dict[str, list[tuple[str, float]]], qrels: dict[str, dict[str, int]],
                    query_ids: Sequence[str]) -> dict[str, int | None]:
    return {q: first_relevant_rank(rankings.get(q, []), qrels.get(q, {})) for q in query_ids}


def _histogram(deltas: Sequence[QueryDelta]) -> list[tuple[str, int]]:
    edges = [-1.0, -0.5, -0.25, -0.1, -1e-9, 1e-9, 0.1, 0.25, 0.5, 1.0]
    labels = ["< -0.5", "-0.5 … -0.25", "-0.25 … -0.1", "-0.1 … 0", "0 (tie)", "0 … 0.1",
              "0.1 … 0.25", "0.25 … 0.5", "≥ 0.5"]
    counts = [0] * len(labels)
    for d in deltas:
        x = d.delta
        for i in range(len(labels)):
            lo, hi = edges[i], edges[i + 1]
            if (i == 0 and x < hi) or (i == len(labels) - 1 and x >= lo) or lo <= x < hi:
                counts[i] += 1
                break
    return list(zip(labels, counts))


def build_report(store: Any, run_ids: Sequence[int | str], metric: str = "ndcg@10",
                 baseline: int | str | None = None, *, slices: Sequence[str] | None = None,
                 qrels_overlay: bool = False, top: int = 10) -> Report:
    """Everything a report shows, computed once. ``slices`` defaults to :func:`default_slices`."""
    import embtui

    comp = compare_runs(store, run_ids, metric, baseline, qrels_overlay)
    project = store.get_project(comp.project)
    qrels = store.corrected_qrels(comp.project, comp.split) if qrels_overlay else \
        store.qrels(comp.project, comp.split)
    # the summary table: stored means (all scored queries) with a marker from a randomization test
    summary: dict[int, dict[str, float | None]] = {r: {} for r in comp.run_ids}
    markers: dict[int, dict[str, str]] = {r: {} for r in comp.run_ids}
    extra = [m for m in SUMMARY_METRICS
             if m != metric and all(m in comp.runs[r].metrics for r in comp.run_ids)]
    grid = compare_metrics(store, comp.run_ids, extra, comp.baseline_id, qrels_overlay,
                           tests=("permutation",)) if extra else {}
    grid[metric] = comp
    for m in [metric, *extra]:
        c = grid[m]
        for r in comp.run_ids:
            stored = comp.runs[r].metrics.get(m)
            summary[r][m] = c.means[r] if qrels_overlay or stored is None else stored
            markers[r][m] = c.test_for(r).marker if r != comp.baseline_id else ""
    tables = tuple(slice_comparison(store, comp, by)
                   for by in (slices if slices is not None else default_slices(store, comp.project)))
    first_rel = {r: _first_relevant(store.run_rankings(r), qrels, comp.query_ids) for r in comp.run_ids}
    tags = store.annotations.query_labels(comp.project)

    def line(d: QueryDelta) -> QueryLine:
        return QueryLine(d, {r: first_rel[r][d.query_id] for r in comp.run_ids},
                         tags.get(d.query_id, ()))

    losses = {r: tuple(line(d) for d in comp.deltas[r][:top] if d.delta < 0) for r in comp.others}
    wins = {r: tuple(line(d) for d in reversed(comp.deltas[r][-top:]) if d.delta > 0)
            for r in comp.others}
    judgments = store.annotations.judgments(comp.project, comp.split)
    corrected = {r: corrected_metrics(store, r) for r in comp.run_ids} if judgments else {}
    configs = []
    for r in comp.run_ids:
        run = comp.runs[r]
        configs.append(RunConfig(
            run.id, run.model_name, run.model_spec, run.model_fingerprint, run.device,
            run.index_config, project.dataset_hash, run.info.get("corpus_hash"), run.versions,
            run.timings, {k: v for k, v in run.info.items() if k != "summary"},
            run.created_at.isoformat() if run.created_at else None,
            run.finished_at.isoformat() if run.finished_at else None, _command(run)))
    return Report(
        generated_at=datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        embtui_version=embtui.__version__, project=project.to_dict(), comparison=comp,
        summary=summary, summary_markers=markers, slices=tables, losses=losses, wins=wins,
        first_relevant=first_rel, query_tags=tags, corrected=corrected,
        overlay_judgments=len(judgments), configs=tuple(configs),
        histogram={r: _histogram(comp.deltas[r]) for r in comp.others})
