"""The metrics table as data: the cutoffs present, the columns, one row per run, sorting, and the
CSV/Markdown export — for the Metrics pane, `embtui runs` and reports alike."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any, Sequence

FAMILIES = ("ndcg", "mrr", "map", "recall", "p", "success")
_METRIC = re.compile(r"([a-z]+)@(\d+)$")


# -- the metrics table -------------------------------------------------------------------------------
def ks_of(runs: Sequence[Any]) -> list[int]:
    """Cutoffs present in the runs' metrics, ascending."""
    ks = set()
    for r in runs:
        for name in r.metrics:
            m = _METRIC.match(name)
            if m:
                ks.add(int(m.group(2)))
    return sorted(ks)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str  # "metric" (higher is better), "num" (lower is better), "text"
    fmt: str = "{:.4f}"


def metric_columns(k: int) -> list[Column]:
    cols = [Column(f"{f}@{k}", f"{f}@{k}", "metric") for f in FAMILIES]
    cols.append(Column("r-precision", "r-prec", "metric"))
    return cols


INFO_COLUMNS = (
    Column("docs_per_s", "docs/s", "rate", "{:,.0f}"),
    Column("latency_ms", "q ms", "num", "{:.2f}"),
    Column("emb_bytes", "emb", "num", "bytes"),
    Column("index_bytes", "index", "num", "bytes"),
    Column("device", "device", "text", "{}"),
)


def run_row(run: Any, k: int) -> dict[str, Any]:
    """One run's values by column key (None where unknown)."""
    row: dict[str, Any] = {"run": run.id, "model": run.model_name}
    for col in metric_columns(k):
        row[col.key] = run.metrics.get(col.key)
    enc = (run.info.get("encode") or {}).get("documents") or {}
    row["docs_per_s"] = enc.get("items_per_s") if enc.get("encoded") else None
    row["latency_ms"] = run.timings.get("query_latency_ms")
    row["emb_bytes"] = run.info.get("embedding_bytes")
    row["index_bytes"] = run.info.get("index_bytes")
    row["device"] = run.device or ""
    return row


def sort_rows(rows: list[dict[str, Any]], key: str, reverse: bool) -> list[dict[str, Any]]:
    """Sort by ``key``; rows without a value go last either way."""
    have = [r for r in rows if r.get(key) is not None]
    missing = [r for r in rows if r.get(key) is None]
    have.sort(key=lambda r: (r[key], -r["run"]) if not isinstance(r[key], str) else (r[key].lower(), 0),
              reverse=reverse)
    return have + missing


def export_table(rows: list[dict[str, Any]], columns: list[Column], fmt: str) -> str:
    """CSV or Markdown text of the rows (raw values, full precision for CSV)."""
    keys = ["run", "model"] + [c.key for c in columns]
    labels = ["run", "model"] + [c.label if c.kind != "metric" else c.key for c in columns]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(labels)
        for r in rows:
            writer.writerow(["" if r.get(k) is None else r.get(k) for k in keys])
        return buf.getvalue()
    lines = ["| " + " | ".join(labels) + " |", "|" + "|".join("---" for _ in labels) + "|"]
    for r in rows:
        cells = []
        for k, c in zip(keys, [None, None, *columns]):
            v = r.get(k)
            if v is None:
                cells.append("")
            elif c is not None and c.kind == "metric":
                cells.append(f"{v:.4f}")
            elif c is not None and c.kind in ("num", "rate") and c.fmt != "bytes":
                cells.append(c.fmt.format(v))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
