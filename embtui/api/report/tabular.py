"""The report as CSV (one row per query and run) or JSON (everything, strict: NaN as null)."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from embtui.api.report.model import Report


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
