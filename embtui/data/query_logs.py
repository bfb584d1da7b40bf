"""Query logs: production queries without judgments, one per row, from JSONL, CSV/TSV, Parquet or
plain text (one query per line).

Columns: the query as ``text`` (or ``query``), and an optional ``timestamp`` (or ``ts``/``time``):
UNIX seconds, or an ISO 8601 date or date-time (UTC unless it says otherwise). A bad row is
refused with its file, line and field; nothing is stored until the whole file reads cleanly.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from embtui.data.files import display_name, require_file
from embtui.data.interactions import _rows
from embtui.data.validate import iter_lines
from embtui.errors import DataError

HINT = "needs a 'text' (or 'query') column; 'timestamp' optional (UNIX seconds or ISO 8601)"


@dataclass(frozen=True)
class QueryLog:
    texts: list[str]
    timestamps: list[float | None]
    source: str

    @property
    def timestamped(self) -> int:
        return sum(t is not None for t in self.timestamps)


def parse_timestamp(value: object, name: str, line: int) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).timestamp()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc).timestamp()
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        d = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DataError(f"not a timestamp: {text[:40]!r}", file=name, line=line, field="timestamp",
                        hint="UNIX seconds or ISO 8601, e.g. 2026-11-30T14:05:00Z") from None
    return (d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)).timestamp()


def read_query_log(path: str | os.PathLike[str]) -> QueryLog:
    p = Path(path)
    require_file(p, "query log")
    name = display_name(p)
    texts: list[str] = []
    stamps: list[float | None] = []
    if p.suffix.lower() in (".txt", ""):
        for line, text in iter_lines(p):
            if text.strip():
                texts.append(text.strip())
                stamps.append(None)
    else:
        for line, row in _rows(p):
            if not isinstance(row, dict):
                raise DataError("a row must be an object with a 'text' field", file=name, line=line, hint=HINT)
            value = row.get("text", row.get("query"))
            if value is None or not str(value).strip():
                raise DataError("missing or empty", file=name, line=line,
                                field="text" if "query" not in row else "query", hint=HINT)
            texts.append(str(value).strip())
            stamps.append(parse_timestamp(row.get("timestamp", row.get("ts", row.get("time"))), name, line))
    if not texts:
        raise DataError("the log has no queries", file=name, hint=HINT)
    return QueryLog(texts, stamps, str(p))
