"""Hard-negative export: a run's failures as (anchor, positive, negative_1..n) rows for contrastive training.

The columns are sentence-transformers' "triplet / n-tuple" format, which
``MultipleNegativesRankingLoss`` trains on as is (``SentenceTransformerTrainer`` feeds every column
but a label column to the loss, in order: anchor, positive, then the negatives). Files are JSON
Lines or Parquet, both readable by ``datasets.load_dataset("json" | "parquet", data_files=...)``.

For each (query, positive document) the negatives are the run's highest-ranked documents that
are not relevant: first the ones ranked ABOVE the positive (the documents that beat it), then, to
fill the fixed number of columns the n-tuple format needs, the next ones below it. A document
judged relevant (grade > 0) in the qrels, and any document in the qrels overlay for that query
(whatever its grade: a person looked at it), is never a negative; overlay documents with grade > 0
are positives.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embtui.errors import EmbtuiError

FORMATS = ("jsonl", "parquet")


@dataclass(frozen=True)
class NegativesReport:
    path: Path
    format: str
    rows: int
    queries: int
    columns: tuple[str, ...]
    skipped_short: int  # (query, positive) pairs with fewer non-relevant results than negatives asked
    failed_queries: int  # queries where a non-relevant document outranked a positive
    outranked_negatives: int  # negatives written that were ranked above their positive

    def summary(self) -> str:
        return (f"wrote {self.rows} rows ({self.queries} queries, columns {', '.join(self.columns)}) "
                f"to {self.path}; {self.outranked_negatives} negatives outranked their positive"
                + (f"; {self.skipped_short} pairs skipped (too few non-relevant results)"
                   if self.skipped_short else ""))

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.format, "rows": self.rows,
                "queries": self.queries, "columns": list(self.columns),
                "skipped_short": self.skipped_short, "failed_queries": self.failed_queries,
                "outranked_negatives": self.outranked_negatives}


def format_for(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise EmbtuiError(f"unknown format '{fmt}'", f"use one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise EmbtuiError(f"cannot tell the format of '{path}' from its extension",
                      "name it .jsonl or .parquet, or pass --format")


def negative_rows(store: Any, run_id: int, *, max_negatives: int = 5, all_queries: bool = False,
                  ) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Rows ``{"anchor", "positive", "negative_1", ...}`` and counts (see the module docstring)."""
    if isinstance(max_negatives, bool) or not isinstance(max_negatives, int) or max_negatives < 1:
        raise EmbtuiError(f"--max-negatives must be a positive integer, not {max_negatives!r}")
    run = store.get_run(int(run_id))
    if run.status != "done":
        raise EmbtuiError(f"run {run.id} is {run.status}, not done", "export from a finished run")
    qrels = store.qrels(run.project, run.split)
    overlay = store.annotations.overlay(run.project, run.split)
    rankings = store.run_rankings(run.id)
    queries = store.queries(run.project)
    rows_ids: list[tuple[str, str, list[str]]] = []
    counts = {"skipped_short": 0, "failed_queries": 0, "outranked_negatives": 0}
    for qid in sorted(set(qrels) | set(overlay)):
        judged = {**qrels.get(qid, {}), **overlay.get(qid, {})}
        positives = sorted(d for d, g in judged.items() if g > 0)
        if not positives or qid not in queries:
            continue
        excluded = {d for d, g in qrels.get(qid, {}).items() if g > 0} | set(overlay.get(qid, {}))
        ranked = [d for d, _ in rankings.get(qid, [])]
        rank_of = {d: i for i, d in enumerate(ranked)}
        non_relevant = [(i, d) for i, d in enumerate(ranked) if d not in excluded]
        failed = False
        for pos in positives:
            pos_rank = rank_of.get(pos, len(ranked))
            above = sum(1 for i, _ in non_relevant if i < pos_rank)
            if above:
                failed = True
            if not all_queries and not above:
                continue
            negs = [d for _, d in non_relevant[:max_negatives]]
            if len(negs) < max_negatives:
                counts["skipped_short"] += 1
                continue
            counts["outranked_negatives"] += min(above, max_negatives)
            rows_ids.append((qid, pos, negs))
        counts["failed_queries"] += int(failed)
    doc_ids = sorted({d for _, p, negs in rows_ids for d in (p, *negs)})
    docs = store.documents(run.project, doc_ids)
    rows: list[dict[str, str]] = []
    for qid, pos, negs in rows_ids:
        row = {"anchor": queries[qid], "positive": _doc_text(docs, pos)}
        for j, d in enumerate(negs, 1):
            row[f"negative_{j}"] = _doc_text(docs, d)
        rows.append(row)
    counts["queries"] = len({q for q, _, _ in rows_ids})
    return rows, counts


def _doc_text(docs: dict[str, tuple[str, str]], doc_id: str) -> str:
    """The text a model saw for the document: ``title + " " + text``, as in evaluation."""
    title, text = docs.get(doc_id, ("", ""))
    return (title + " " + text).strip()


def export_negatives(store: Any, run_id: int, out: str | os.PathLike[str], *, fmt: str | None = None,
                     max_negatives: int = 5, all_queries: bool = False) -> NegativesReport:
    """Write hard negatives of a run to ``out`` (JSON Lines or Parquet); written atomically."""
    fmt = format_for(out, fmt)
    rows, counts = negative_rows(store, run_id, max_negatives=max_negatives, all_queries=all_queries)
    columns = ("anchor", "positive", *(f"negative_{j}" for j in range(1, max_negatives + 1)))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "jsonl":
        with open(tmp, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({c: pa.array([r[c] for r in rows], pa.string()) for c in columns})
        pq.write_table(table, tmp)
    tmp.replace(path)
    return NegativesReport(path, fmt, len(rows), counts["queries"], columns, counts["skipped_short"],
                           counts["failed_queries"], counts["outranked_negatives"])
