"""Interaction logs for A/B tests: one impression per row, JSONL, CSV/TSV or Parquet.

Columns: ``variant`` (required), ``query`` (optional), the click as ``clicked_rank`` (1-based rank
of the first clicked result; empty or null: no click) or as ``clicked`` (the clicked document id)
together with ``results`` (the shown document ids, a list; JSONL/Parquet) so the rank can be
found, and an optional ``timestamp``. A bad row is refused with its file, line and field.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Iterator

from embtui.analysis.ab import Impression
from embtui.data.files import display_name, require_file
from embtui.data.validate import iter_jsonl, iter_lines
from embtui.errors import DataError

HINT = ("needs a 'variant' column and 'clicked_rank' (1-based, empty for no click) or "
        "'clicked' with the shown 'results'")


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        yield from iter_jsonl(path)
    elif suffix in (".csv", ".tsv"):
        lines = (text for _, text in iter_lines(path))
        reader = csv.DictReader(lines, delimiter="\t" if suffix == ".tsv" else ",")
        for row in reader:
            yield reader.line_num, row
    elif suffix in (".parquet", ".pq"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"not a readable Parquet file: {exc}", file=display_name(path)) from None
        for i, row in enumerate(table.to_pylist(), 1):
            yield i, row
    else:
        raise DataError("cannot tell the format from the extension", file=display_name(path),
                        hint="name it .jsonl, .csv, .tsv or .parquet")


def _rank(row: dict[str, Any], name: str, line: int) -> int | None:
    value = row.get("clicked_rank", row.get("rank"))
    if value is not None and value != "":
        try:
            rank = int(float(value))
        except (TypeError, ValueError):
            raise DataError(f"not a rank: {value!r}", file=name, line=line, field="clicked_rank",
                            hint="a 1-based rank, or empty for no click") from None
        if rank < 1 or rank != float(value):
            raise DataError(f"a rank is a whole number from 1, got {value!r}", file=name, line=line,
                            field="clicked_rank")
        return rank
    clicked = row.get("clicked")
    if clicked is None or clicked == "":
        if "clicked_rank" in row or "rank" in row or "clicked" in row:
            return None
        raise DataError("no click column", file=name, line=line, field="clicked_rank", hint=HINT)
    results = row.get("results")
    if not isinstance(results, list):
        raise DataError("a clicked document needs the shown 'results' list to find its rank",
                        file=name, line=line, field="results", hint=HINT)
    if clicked not in results:
        raise DataError(f"clicked document {clicked!r} is not among the shown results",
                        file=name, line=line, field="clicked")
    return results.index(clicked) + 1


def read_interactions(path: str | os.PathLike[str]) -> list[Impression]:
    p = Path(path)
    require_file(p, "interaction log")
    name = display_name(p)
    out = []
    for line, row in _rows(p):
        variant = row.get("variant")
        if variant is None or str(variant).strip() == "":
            raise DataError("missing", file=name, line=line, field="variant", hint=HINT)
        ts = row.get("timestamp")
        try:
            ts = float(ts) if ts not in (None, "") else None
        except (TypeError, ValueError):
            ts = None  # ISO strings and the like: kept out of the statistics, never fatal
        out.append(Impression(str(variant), _rank(row, name, line), str(row.get("query") or ""), ts))
    if not out:
        raise DataError("the log has no impressions", file=name, hint=HINT)
    return out
