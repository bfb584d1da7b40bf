"""Comparison reports as Markdown, one self-contained HTML file, CSV (per query) or JSON, with every run's full config.

:func:`build_report` gathers one immutable :class:`Report` (comparison, significance, slices,
wins/losses, worst queries with their text, corrected judgments, configs); :func:`write_report`
renders it in the format named by the file extension. The HTML has inline CSS and an inline SVG
chart, no scripts and no network references, so it can be mailed or attached as is.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from embtui.analysis.comparison import Comparison, QueryDelta, SliceTable
from embtui.analysis.stats import ALPHA, CONFIDENCE, TEST_NAMES
from embtui.engine.compare import (compare_metrics, compare_runs, corrected_metrics, default_slices,
                                   slice_comparison)
from embtui.errors import EmbtuiError

FORMATS = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html", ".csv": "csv",
           ".json": "json"}
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
                      ("expansion_search", "--hnsw-expansion-search")):
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
    out: dict[str, int | None] = {}
    for q in query_ids:
        rel = {d for d, g in qrels.get(q, {}).items() if g > 0}
        out[q] = next((i for i, (d, _) in enumerate(rankings.get(q, []), 1) if d in rel), None)
    return out


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


# ----------------------------------------------------------------------------- formatting helpers


def fmt_value(x: float | None, digits: int = 4) -> str:
    """A metric value with ``digits`` decimals; – for none or NaN (tables and reports)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def fmt_p(x: float | None) -> str:
    """A p-value: <0.0001 below that, four decimals above; – for none or NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return "<0.0001" if x < 1e-4 else f"{x:.4f}"


def fmt_signed(x: float | None) -> str:
    """A delta with its sign, four decimals; – for none or NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:+.4f}"


def _rank(x: int | None) -> str:
    return "–" if x is None else str(x)


def _short(text: str, n: int = 140) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _verdict_sentence(report: Report) -> list[str]:
    c = report.comparison
    base = c.label(c.baseline_id)
    out = []
    for t in c.tests:
        r = t.result
        ci = f"{CONFIDENCE:.0%} CI [{fmt_signed(r.ci_low)}, {fmt_signed(r.ci_high)}]"
        p = t.p_holm.get(t.primary, r.p(t.primary))
        holm = " (Holm-adjusted)" if len(c.tests) > 1 else ""
        if t.significant:
            word = "better" if r.mean_delta > 0 else "worse"
            out.append(f"Run {c.label(t.run_id)} is significantly {word} than {base} on {c.metric}: "
                       f"Δ {fmt_signed(r.mean_delta)}, {ci}; {TEST_NAMES[t.primary]} p = {fmt_p(p)}{holm}; "
                       f"{r.wins} wins / {r.ties} ties / {r.losses} losses over {r.n} queries.")
        else:
            out.append(f"Run {c.label(t.run_id)} vs {base} on {c.metric}: Δ {fmt_signed(r.mean_delta)}, {ci}; "
                       f"not significant at α = {t.alpha} ({TEST_NAMES[t.primary]} p = {fmt_p(p)}{holm}); "
                       f"{r.wins} wins / {r.ties} ties / {r.losses} losses over {r.n} queries.")
        if r.note:
            out[-1] += f" ({r.note})"
    return out


def _sig_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    c = report.comparison
    headers = ["run", "model", f"mean {c.metric}", "Δ vs baseline", f"{CONFIDENCE:.0%} CI (bootstrap)",
               "wins/ties/losses", "effect d_z", "p t-test (Holm)", "p Wilcoxon (Holm)",
               "p randomization (Holm)", "verdict"]
    rows = []
    for r in c.run_ids:
        run = c.runs[r]
        if r == c.baseline_id:
            rows.append([str(r), run.model_name + " (baseline)", fmt_value(c.means[r]), "", "", "", "", "", "",
                         "", ""])
            continue
        t = c.test_for(r)
        x = t.result

        def ph(test: str) -> str:
            return f"{fmt_p(x.p(test))} ({fmt_p(t.p_holm.get(test))})"

        rows.append([str(r), run.model_name, fmt_value(c.means[r]), fmt_signed(x.mean_delta),
                     f"[{fmt_signed(x.ci_low)}, {fmt_signed(x.ci_high)}]", f"{x.wins}/{x.ties}/{x.losses}",
                     fmt_value(x.effect_size, 3), ph("ttest"), ph("wilcoxon"), ph("permutation"),
                     t.verdict + (" " + t.stars if t.stars else "")])
    return headers, rows


def _summary_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    c = report.comparison
    metrics = [m for m in dict.fromkeys([c.metric, *SUMMARY_METRICS])
               if any(m in report.summary[r] for r in c.run_ids)]
    rows = []
    for r in c.run_ids:
        run = c.runs[r]
        name = run.model_name + (" (baseline)" if r == c.baseline_id else "")
        rows.append([str(r), name, *(
            (fmt_value(report.summary[r].get(m)) + " " + report.summary_markers[r].get(m, "")).strip()
            for m in metrics)])
    return ["run", "model", *metrics], rows


def _slice_rows(report: Report, table: SliceTable) -> tuple[list[str], list[list[str]]]:
    c = report.comparison
    headers = ["slice", "n"]
    for r in table.run_ids:
        headers.append(f"{c.label(r)}")
    for r in table.run_ids:
        if r != table.baseline_id:
            headers.append(f"Δ {r} vs {table.baseline_id} (p Holm)")
    headers.append("flags")
    rows = []
    for row in table.rows:
        cells = [row.key, str(row.n)]
        for r in table.run_ids:
            cell = row.cell(r)
            cells.append(fmt_value(cell.mean))
        for r in table.run_ids:
            if r != table.baseline_id:
                cell = row.cell(r)
                cells.append(f"{fmt_signed(cell.delta)} ({fmt_p(cell.p_vs_baseline_holm)})")
        flags = [f"{r}: {', '.join(row.cell(r).flags)}" for r in table.run_ids if row.cell(r).flags]
        cells.append("; ".join(flags))
        rows.append(cells)
    return headers, rows


def _query_rows(report: Report, run_id: int, lines: Sequence[QueryLine]) -> tuple[list[str], list[list[str]]]:
    c = report.comparison
    headers = ["query", "text", "rel", f"{c.baseline_id}", f"{run_id}", "Δ",
               f"first rel. rank {c.baseline_id}/{run_id}", "tags"]
    rows = []
    for ql in lines:
        d = ql.delta
        rows.append([d.query_id, _short(d.text), str(d.n_relevant), fmt_value(d.baseline), fmt_value(d.value),
                     fmt_signed(d.delta),
                     f"{_rank(ql.first_relevant[c.baseline_id])} / {_rank(ql.first_relevant[run_id])}",
                     ", ".join(ql.tags)])
    return headers, rows


def _slice_findings(report: Report) -> list[str]:
    out = []
    c = report.comparison
    for table in report.slices:
        for row in table.rows:
            for r in table.run_ids:
                flags = row.cell(r).flags
                if flags:
                    out.append(f"{table.title} = {row.key} (n={row.n}): run {c.label(r)} "
                               f"{', '.join(flags)} (mean {fmt_value(row.cell(r).mean)})")
    return out


# ----------------------------------------------------------------------------- Markdown


def run_warnings(report: Report) -> list[str]:
    """The warnings stored with each run (HNSW recall below the threshold, healed artifacts)."""
    return [f"run {cfg.run_id} ({cfg.model}): {w}" for cfg in report.configs
            for w in (cfg.info.get("warnings") or [])]


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def esc(s: str) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(esc(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(report: Report) -> str:
    c = report.comparison
    p = report.project
    out = [f"# {report.title}", ""]
    out.append(f"Generated {report.generated_at} by embtui {report.embtui_version}. Project "
               f"`{c.project}` (source `{p.get('source')}`, dataset hash `{p.get('dataset_hash')}`), "
               f"split `{c.split}`; baseline run {c.label(c.baseline_id)}; {len(c.query_ids)} queries "
               f"scored by every run" + (" on the corrected judgments (qrels + overlay)" if c.qrels_overlay
                                          else "") + ".")
    out += ["", "## Verdict", ""]
    out += [f"- {s}" for s in _verdict_sentence(report)]
    findings = _slice_findings(report)
    if findings:
        out += [f"- Slice: {s}" for s in findings]
    out += [f"- **Warning**: {s}" for s in run_warnings(report)]
    out += ["", "## Summary", "",
            "Stored means over each run's scored queries. ▲/▼ mark a significant difference from the "
            f"baseline (randomization test, {c.n_resamples:,} resamples, Holm-adjusted across runs; "
            "* p<0.05, ** p<0.01, *** p<0.001).", ""]
    out.append(_md_table(*_summary_rows(report)))
    out += ["", f"## Significance ({c.metric}, run − baseline, paired over {len(c.query_ids)} queries)", ""]
    out.append(_md_table(*_sig_rows(report)))
    out += ["", f"Tests: paired t-test (`scipy.stats.ttest_rel`), Wilcoxon signed-rank "
            f"(`scipy.stats.wilcoxon`, zero differences dropped), randomization test "
            f"(`scipy.stats.permutation_test`, paired sign flips, {c.n_resamples:,} resamples, seed "
            f"{c.seed}), {CONFIDENCE:.0%} bootstrap CI of the mean difference (`scipy.stats.bootstrap`, "
            f"paired, BCa, {c.n_resamples:,} resamples). Holm–Bonferroni adjustment across the "
            f"{len(c.tests)} run(s) compared with the baseline; verdicts use the randomization test at "
            f"α = {ALPHA}. Effect size d_z = mean difference / SD of the differences."]
    for r in c.others:
        out += ["", f"## Per-query deltas: {c.label(r)} − {c.label(c.baseline_id)}", ""]
        out.append(_md_table(["Δ " + c.metric, "queries"],
                             [[label, str(n)] for label, n in report.histogram[r]]))
    if report.slices:
        out += ["", "## Slices", "",
                "Mean per slice; Δ and p (randomization test within the slice, Holm-adjusted across "
                "the slices of one grouping). Flags: *below own average* = the run does significantly "
                "worse on this slice than on the other queries; *below/above baseline* = significantly "
                "different from the baseline within the slice."]
        for table in report.slices:
            out += ["", f"### By {table.title}" + (" (a query can be in several)" if table.overlapping
                                                   else ""), ""]
            out.append(_md_table(*_slice_rows(report, table)))
    for r in c.others:
        if report.losses[r]:
            out += ["", f"## Largest losses of {c.label(r)} against the baseline", ""]
            out.append(_md_table(*_query_rows(report, r, report.losses[r])))
        if report.wins[r]:
            out += ["", f"## Largest wins of {c.label(r)} against the baseline", ""]
            out.append(_md_table(*_query_rows(report, r, report.wins[r])))
    if report.corrected:
        out += ["", f"## Corrected judgments ({report.overlay_judgments} added by hand)", ""]
        rows = [[str(r), c.runs[r].model_name, fmt_value(c.runs[r].metrics.get(c.metric)),
                 fmt_value(report.corrected[r].get(c.metric))] for r in c.run_ids]
        out.append(_md_table(["run", "model", f"{c.metric} (imported qrels)",
                              f"{c.metric} (qrels + overlay)"], rows))
    out += ["", "## Configuration of every run", "",
            "Everything that decides the numbers above; the command re-runs the evaluation."]
    for cfg in report.configs:
        out += ["", f"### Run {cfg.run_id}: {cfg.model}", "", "```sh", cfg.command, "```", "", "```json",
                json.dumps(cfg.to_dict(), indent=2, sort_keys=True, default=str), "```"]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- HTML

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
padding:0 1rem;color:#1d2330;background:#fff}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #dde}h3{font-size:1rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:13px}
th,td{border:1px solid #dde;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f4f8}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.better{color:#11734b;font-weight:600}.worse{color:#b3261e;font-weight:600}.ns{color:#666}
.flag{color:#b3261e}pre{background:#f6f7f9;border:1px solid #dde;padding:.6rem;overflow:auto;font-size:12px}
.note{color:#555;font-size:12.5px}ul.verdict li{margin:.3rem 0}svg{background:#fbfbfd;border:1px solid #dde}
"""


def _h(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 2) -> str:
    out = ["<table><thead><tr>", *(f"<th>{_h(h)}</th>" for h in headers), "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>")
        for i, cell in enumerate(row):
            cls = ""
            text = str(cell)
            if text.startswith("better"):
                cls = "better"
            elif text.startswith("worse"):
                cls = "worse"
            elif text == "n.s.":
                cls = "ns"
            elif "▲" in text:
                cls = "better num"
            elif "▼" in text:
                cls = "worse num"
            elif i >= numeric_from and _looks_numeric(text):
                cls = "num"
            out.append(f'<td class="{cls}">{_h(text)}</td>' if cls else f"<td>{_h(text)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _looks_numeric(text: str) -> bool:
    t = text.replace("+", "").replace("-", "").replace("–", "").replace(".", "").replace("/", "")
    t = t.replace(" ", "").replace("(", "").replace(")", "").replace("<", "").replace("[", "")
    t = t.replace("]", "").replace(",", "")
    return t.isdigit() or text == "–"


def delta_chart_svg(deltas: Sequence[QueryDelta], title: str, width: int = 960, height: int = 260) -> str:
    """Per-query deltas sorted ascending as an inline SVG bar chart (no scripts, no external refs)."""
    n = max(len(deltas), 1)
    left, right, top, bottom = 48, 12, 24, 28
    pw, ph = width - left - right, height - top - bottom
    vmax = max([abs(d.delta) for d in deltas] + [1e-9])
    vmax = min(1.0, max(vmax, 0.05))
    zero = top + ph / 2
    bw = pw / n
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             'style="max-width:100%;height:auto" '
             f'aria-label="{_h(title)}">', f"<title>{_h(title)}</title>"]
    for frac in (-1, -0.5, 0, 0.5, 1):
        y = zero - frac * ph / 2
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
                     f'stroke="{"#888" if frac == 0 else "#e3e5ec"}" stroke-width="1"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end" '
                     f'fill="#555">{frac * vmax:+.2f}</text>')
    for i, d in enumerate(deltas):
        v = max(-vmax, min(vmax, d.delta))
        h = abs(v) / vmax * ph / 2
        if h < 0.01:
            continue
        y = zero - h if v > 0 else zero
        color = "#2e9d6a" if v > 0 else "#d0453b"
        parts.append(f'<rect x="{left + i * bw:.2f}" y="{y:.2f}" width="{max(bw - 0.3, 0.6):.2f}" '
                     f'height="{h:.2f}" fill="{color}"><title>{_h(d.query_id)}: {d.delta:+.4f} '
                     f'({_h(_short(d.text, 80))})</title></rect>')
    losses = sum(1 for d in deltas if d.delta < -1e-9)
    wins = sum(1 for d in deltas if d.delta > 1e-9)
    parts.append(f'<text x="{left}" y="{height - 8}" font-size="11" fill="#555">{losses} losses · '
                 f'{len(deltas) - wins - losses} ties · {wins} wins (queries sorted by Δ)</text>')
    parts.append(f'<text x="{left}" y="{top - 8}" font-size="12" fill="#1d2330">{_h(title)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: Report) -> str:
    c = report.comparison
    p = report.project
    body = [f"<h1>{_h(report.title)}</h1>",
            f'<p class="note">Generated {_h(report.generated_at)} by embtui {_h(report.embtui_version)}. '
            f"Project <code>{_h(c.project)}</code> (source <code>{_h(p.get('source'))}</code>, dataset "
            f"hash <code>{_h(p.get('dataset_hash'))}</code>), split <code>{_h(c.split)}</code>; baseline "
            f"run {_h(c.label(c.baseline_id))}; {len(c.query_ids)} queries scored by every run"
            + (" on the corrected judgments (qrels + overlay)" if c.qrels_overlay else "") + ".</p>",
            "<h2>Verdict</h2>", '<ul class="verdict">']
    body += [f"<li>{_h(s)}</li>" for s in _verdict_sentence(report)]
    body += [f'<li class="flag">Slice: {_h(s)}</li>' for s in _slice_findings(report)]
    body += [f'<li class="flag"><b>Warning</b>: {_h(s)}</li>' for s in run_warnings(report)]
    body += ["</ul>", "<h2>Summary</h2>",
             f'<p class="note">Stored means over each run\'s scored queries. ▲/▼: significantly '
             f"different from the baseline (randomization test, {c.n_resamples:,} resamples, "
             "Holm-adjusted across runs; * p&lt;0.05, ** p&lt;0.01, *** p&lt;0.001).</p>",
             _html_table(*_summary_rows(report)),
             f"<h2>Significance ({_h(c.metric)}, run − baseline over {len(c.query_ids)} queries)</h2>",
             _html_table(*_sig_rows(report)),
             f'<p class="note">Paired t-test (scipy.stats.ttest_rel), Wilcoxon signed-rank '
             f"(scipy.stats.wilcoxon), randomization test (scipy.stats.permutation_test, paired sign "
             f"flips, {c.n_resamples:,} resamples, seed {c.seed}), {CONFIDENCE:.0%} bootstrap CI of the "
             f"mean difference (scipy.stats.bootstrap, paired, BCa). Holm–Bonferroni across the "
             f"{len(c.tests)} run(s) compared with the baseline; verdicts use the randomization test "
             f"at α = {ALPHA}.</p>"]
    for r in c.others:
        title = f"{c.metric}: {c.label(r)} − {c.label(c.baseline_id)}, per query"
        body += [f"<h2>Per-query deltas: {_h(c.label(r))} vs baseline</h2>",
                 delta_chart_svg(c.deltas[r], title)]
    if report.slices:
        body += ["<h2>Slices</h2>",
                 '<p class="note">Mean per slice; Δ and p (randomization test within the slice, '
                 "Holm-adjusted across the slices of one grouping). <i>below own average</i>: the run "
                 "does significantly worse on the slice than on the other queries; <i>below/above "
                 "baseline</i>: significantly different from the baseline within the slice.</p>"]
        for table in report.slices:
            body += [f"<h3>By {_h(table.title)}</h3>", _html_table(*_slice_rows(report, table))]
    for r in c.others:
        if report.losses[r]:
            body += [f"<h2>Largest losses of {_h(c.label(r))} against the baseline</h2>",
                     _html_table(*_query_rows(report, r, report.losses[r]), numeric_from=3)]
        if report.wins[r]:
            body += [f"<h2>Largest wins of {_h(c.label(r))} against the baseline</h2>",
                     _html_table(*_query_rows(report, r, report.wins[r]), numeric_from=3)]
    if report.corrected:
        rows = [[str(r), c.runs[r].model_name, fmt_value(c.runs[r].metrics.get(c.metric)),
                 fmt_value(report.corrected[r].get(c.metric))] for r in c.run_ids]
        body += [f"<h2>Corrected judgments ({report.overlay_judgments} added by hand)</h2>",
                 _html_table(["run", "model", f"{c.metric} (imported qrels)",
                              f"{c.metric} (qrels + overlay)"], rows)]
    body.append("<h2>Configuration of every run</h2>")
    for cfg in report.configs:
        body += [f"<h3>Run {cfg.run_id}: {_h(cfg.model)}</h3>", f"<pre>{_h(cfg.command)}</pre>",
                 f"<pre>{_h(json.dumps(cfg.to_dict(), indent=2, sort_keys=True, default=str))}</pre>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_h(report.title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")


# ----------------------------------------------------------------------------- CSV / JSON


def render_csv(report: Report) -> str:
    """One row per query scored by every run: values, deltas, first relevant ranks, slices, tags."""
    c = report.comparison
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    slice_of: dict[str, dict[str, list[str]]] = {}
    for table in report.slices:
        col = f"slice:{table.by}"
        for row in table.rows:
            for q in row.query_ids:
                slice_of.setdefault(q, {}).setdefault(col, []).append(row.key)
    slice_cols = [f"slice:{t.by}" for t in report.slices]
    headers = ["query_id", "text", "n_relevant"]
    headers += [f"{c.metric}:run{r}" for r in c.run_ids]
    headers += [f"delta:run{r}-run{c.baseline_id}" for r in c.others]
    headers += [f"first_relevant_rank:run{r}" for r in c.run_ids]
    headers += slice_cols + ["tags"]
    w.writerow(headers)
    anyrun = c.others[0]
    by_q = {d.query_id: d for d in c.deltas[anyrun]}
    for q in c.query_ids:
        d = by_q[q]
        row: list[Any] = [q, d.text, d.n_relevant]
        row += [repr(c.values[r][q]) for r in c.run_ids]
        row += [repr(c.values[r][q] - c.values[c.baseline_id][q]) for r in c.others]
        row += ["" if report.first_relevant[r][q] is None else report.first_relevant[r][q]
                for r in c.run_ids]
        row += ["+".join(slice_of.get(q, {}).get(col, [])) for col in slice_cols]
        row.append("; ".join(report.query_tags.get(q, ())))
        w.writerow(row)
    return buf.getvalue()


def render_json(report: Report) -> str:
    """The whole report as JSON (NaN written as null, so any JSON reader takes it)."""
    return json.dumps(nan_to_none(report.to_dict()), indent=2, default=str, allow_nan=False) + "\n"


def nan_to_none(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None, so it serialises as strict JSON."""
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nan_to_none(v) for v in obj]
    return obj


RENDERERS = {"markdown": render_markdown, "html": render_html, "csv": render_csv, "json": render_json}


def report_format(path: str | os.PathLike[str]) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise EmbtuiError(f"cannot tell the report format of '{path}'",
                          "name the file .md, .html, .csv or .json")
    return FORMATS[suffix]


def write_report(report: Report, path: str | os.PathLike[str]) -> Path:
    """Render ``report`` in the format given by the extension of ``path`` and write it atomically."""
    fmt = report_format(path)
    text = RENDERERS[fmt](report)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
