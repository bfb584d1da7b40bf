"""UI-free views of stored runs for the panes: metric table rows, failures, rank comparisons."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
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


# -- failures ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Failure:
    """A query whose first relevant document is not within the threshold."""

    query_id: str
    text: str
    first_rank: int | None  # None: no relevant document in the stored ranking
    relevant: int  # how many relevant judgments it has


@dataclass(frozen=True)
class RankedDoc:
    doc_id: str
    rank: int | None  # None: not in the stored ranking
    score: float | None
    title: str = ""
    text: str = ""
    grade: int = 0


@dataclass(frozen=True)
class FailureDetail:
    query_id: str
    text: str
    relevant: tuple[RankedDoc, ...]  # every relevant doc with its rank (or not ranked)
    above: tuple[RankedDoc, ...]  # docs ranked above the first relevant one
    depth: int  # how deep the stored ranking goes
    extra: dict[str, Any] = field(default_factory=dict)


def find_failures(rankings: dict[str, list[tuple[str, float]]], qrels: dict[str, dict[str, int]],
                  queries: dict[str, str], threshold: int, text_filter: str = "") -> list[Failure]:
    """Queries with no relevant doc in the top ``threshold``, worst first.

    Worst = no relevant doc at all in the stored ranking, then the deepest first relevant rank;
    ties by query id. Queries without relevant judgments are not failures (nothing to find).
    """
    needle = text_filter.strip().lower()
    out = []
    for qid, judged in qrels.items():
        relevant = {d for d, g in judged.items() if g > 0}
        if not relevant:
            continue
        text = queries.get(qid, "")
        if needle and needle not in text.lower() and needle not in qid.lower():
            continue
        first = next((i for i, (d, _s) in enumerate(rankings.get(qid, []), 1) if d in relevant), None)
        if first is None or first > threshold:
            out.append(Failure(qid, text, first, len(relevant)))
    out.sort(key=lambda f: (f.first_rank is not None, -(f.first_rank or 0), f.query_id))
    return out


def failure_detail(query_id: str, text: str, ranking: list[tuple[str, float]],
                   judged: dict[str, int], docs: dict[str, tuple[str, str]],
                   max_above: int = 10) -> FailureDetail:
    """The relevant docs of a query with their ranks, and the docs ranked above the first one."""
    pos = {d: (i, s) for i, (d, s) in enumerate(ranking, 1)}
    relevant = []
    for d, g in sorted(judged.items(), key=lambda x: (pos.get(x[0], (10**9, 0))[0], x[0])):
        if g <= 0:
            continue
        rank, score = pos.get(d, (None, None))
        title, body = docs.get(d, ("", ""))
        relevant.append(RankedDoc(d, rank, score, title, body, g))
    first = min((r.rank for r in relevant if r.rank is not None), default=len(ranking) + 1)
    above = []
    for i, (d, s) in enumerate(ranking[:min(first - 1, max_above)], 1):
        title, body = docs.get(d, ("", ""))
        above.append(RankedDoc(d, i, s, title, body, judged.get(d, 0)))
    return FailureDetail(query_id, text, tuple(relevant), tuple(above), len(ranking))


def docs_needed(detail_ranking: list[tuple[str, float]], judged: dict[str, int], max_above: int = 10,
                ) -> list[str]:
    ids = [d for d, g in judged.items() if g > 0]
    ids += [d for d, _ in detail_ranking[:max_above]]
    return list(dict.fromkeys(ids))
