"""The report as Markdown."""

from __future__ import annotations

import json
from typing import Sequence

from embtui.analysis.stats import ALPHA, CONFIDENCE
from embtui.api.report.model import Report
from embtui.api.report.text import (fmt_value, query_rows, run_warnings, significance_rows, slice_findings,
                                       slice_rows, summary_rows, verdict_sentence)


# ----------------------------------------------------------------------------- Markdown


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
    out += [f"- {s}" for s in verdict_sentence(report)]
    findings = slice_findings(report)
    if findings:
        out += [f"- Slice: {s}" for s in findings]
    out += [f"- **Warning**: {s}" for s in run_warnings(report)]
    out += ["", "## Summary", "",
            "Stored means over each run's scored queries. ▲/▼ mark a significant difference from the "
            f"baseline (randomization test, {c.n_resamples:,} resamples, Holm-adjusted across runs; "
            "* p<0.05, ** p<0.01, *** p<0.001).", ""]
    out.append(_md_table(*summary_rows(report)))
    out += ["", f"## Significance ({c.metric}, run − baseline, paired over {len(c.query_ids)} queries)", ""]
    out.append(_md_table(*significance_rows(report)))
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
            out.append(_md_table(*slice_rows(report, table)))
    for r in c.others:
        if report.losses[r]:
            out += ["", f"## Largest losses of {c.label(r)} against the baseline", ""]
            out.append(_md_table(*query_rows(report, r, report.losses[r])))
        if report.wins[r]:
            out += ["", f"## Largest wins of {c.label(r)} against the baseline", ""]
            out.append(_md_table(*query_rows(report, r, report.wins[r])))
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
