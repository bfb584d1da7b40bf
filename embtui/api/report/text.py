"""Formatting shared by every format: numbers, verdict sentences, and the rows of each table."""

from __future__ import annotations

import math
from typing import Sequence

from embtui.analysis.comparison import SliceTable
from embtui.analysis.stats import CONFIDENCE, TEST_NAMES
from embtui.api.report.model import SUMMARY_METRICS, QueryLine, Report


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


def fmt_rank(x: int | None) -> str:
    return "–" if x is None else str(x)


def short_text(text: str, n: int = 140) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def verdict_sentence(report: Report) -> list[str]:
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


def significance_rows(report: Report) -> tuple[list[str], list[list[str]]]:
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


def summary_rows(report: Report) -> tuple[list[str], list[list[str]]]:
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


def slice_rows(report: Report, table: SliceTable) -> tuple[list[str], list[list[str]]]:
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


def query_rows(report: Report, run_id: int, lines: Sequence[QueryLine]) -> tuple[list[str], list[list[str]]]:
    c = report.comparison
    headers = ["query", "text", "rel", f"{c.baseline_id}", f"{run_id}", "Δ",
               f"first rel. rank {c.baseline_id}/{run_id}", "tags"]
    rows = []
    for ql in lines:
        d = ql.delta
        rows.append([d.query_id, short_text(d.text), str(d.n_relevant), fmt_value(d.baseline), fmt_value(d.value),
                     fmt_signed(d.delta),
                     f"{fmt_rank(ql.first_relevant[c.baseline_id])} / {fmt_rank(ql.first_relevant[run_id])}",
                     ", ".join(ql.tags)])
    return headers, rows


def slice_findings(report: Report) -> list[str]:
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


def run_warnings(report: Report) -> list[str]:
    """The warnings stored with each run (HNSW recall below the threshold, healed artifacts)."""
    return [f"run {cfg.run_id} ({cfg.model}): {w}" for cfg in report.configs
            for w in (cfg.info.get("warnings") or [])]
