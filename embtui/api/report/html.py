"""The report as one self-contained HTML file: inline CSS and an inline SVG chart, no scripts and
no network references, so it can be mailed or attached as is."""

from __future__ import annotations

import html
import json
from typing import Any, Sequence

from embtui.analysis.comparison import QueryDelta
from embtui.analysis.stats import ALPHA, CONFIDENCE
from embtui.api.report.model import Report
from embtui.api.report.text import (fmt_value, query_rows, run_warnings, short_text, significance_rows,
                                       slice_findings, slice_rows, summary_rows, verdict_sentence)


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
                     f'({_h(short_text(d.text, 80))})</title></rect>')
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
    body += [f"<li>{_h(s)}</li>" for s in verdict_sentence(report)]
    body += [f'<li class="flag">Slice: {_h(s)}</li>' for s in slice_findings(report)]
    body += [f'<li class="flag"><b>Warning</b>: {_h(s)}</li>' for s in run_warnings(report)]
    body += ["</ul>", "<h2>Summary</h2>",
             f'<p class="note">Stored means over each run\'s scored queries. ▲/▼: significantly '
             f"different from the baseline (randomization test, {c.n_resamples:,} resamples, "
             "Holm-adjusted across runs; * p&lt;0.05, ** p&lt;0.01, *** p&lt;0.001).</p>",
             _html_table(*summary_rows(report)),
             f"<h2>Significance ({_h(c.metric)}, run − baseline over {len(c.query_ids)} queries)</h2>",
             _html_table(*significance_rows(report)),
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
            body += [f"<h3>By {_h(table.title)}</h3>", _html_table(*slice_rows(report, table))]
    for r in c.others:
        if report.losses[r]:
            body += [f"<h2>Largest losses of {_h(c.label(r))} against the baseline</h2>",
                     _html_table(*query_rows(report, r, report.losses[r]), numeric_from=3)]
        if report.wins[r]:
            body += [f"<h2>Largest wins of {_h(c.label(r))} against the baseline</h2>",
                     _html_table(*query_rows(report, r, report.wins[r]), numeric_from=3)]
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
