"""Pairs importer: (query, positive[, negative]) rows from JSONL, CSV/TSV or Parquet."""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path
from typing import Any, Iterator

from embtui.data.files import COMPRESSED_SUFFIXES, refuse_compressed
from embtui.data.validate import (
    SURROGATE_HINT,
    ImportedData,
    ImportReport,
    build,
    check_id,
    display_name,
    iter_jsonl,
    iter_lines,
    json_type,
    refuse_existing,
    require_file,
    save,
    split_problem,
    surrogate_problem,
)
from embtui.errors import DataError

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv",
           ".parquet": "parquet"}
COLUMNS_HINT = "needs columns 'query' and 'positive'; 'negative' and 'query_id' are optional"

# The csv module's default limit (128 KiB per field) is too small for long documents.
csv.field_size_limit(2**31 - 1)


def doc_id_for(text: str) -> str:
    """Stable short id of a document text: "d" + 12 hex digits of its sha1."""
    return "d" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def query_id_for(text: str) -> str:
    """Stable short id of a query text: "q" + 12 hex digits of its sha1."""
    return "q" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def read_pairs(file: str | os.PathLike[str], *, split: str = "train") -> ImportedData:
    """Parse and validate a pairs file; writes nothing. The format follows the file extension."""
    path = Path(file)
    name = display_name(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None and path.suffix.lower() in COMPRESSED_SUFFIXES:
        raise DataError(
            f"{COMPRESSED_SUFFIXES[path.suffix.lower()]}-compressed pairs file", file=name,
            hint=f"decompress it first, e.g. `gunzip -k {path.name}`, and import the "
                 ".jsonl/.csv/.tsv/.parquet file inside",
        )
    if kind is None:
        raise DataError(
            f"unknown pairs file type '{path.suffix or '(no extension)'}'", file=name,
            hint="use .jsonl/.ndjson, .csv, .tsv or .parquet",
        )
    if not split or not split.strip():
        raise DataError("the split name must not be empty", file=name, hint="pass --split NAME")
    if (problem := split_problem(split)) is not None:
        raise DataError(problem, file=name,
                        hint="pass --split NAME, one word such as train or dev")
    require_file(path, "pairs file")
    builder = _Builder(name, split, row_word="row" if kind == "parquet" else "line")
    if kind == "jsonl":
        rows: Iterator[tuple[int, dict[str, Any]]] = _jsonl_rows(path)
    elif kind == "parquet":
        rows = _parquet_rows(path)
    else:
        rows = _csv_rows(path, "\t" if kind == "tsv" else ",")
    for number, row in rows:
        builder.add(number, row)
    if builder.rows == 0:
        raise DataError("the file has no rows", file=name, hint=COLUMNS_HINT)
    return builder.finish()


def import_pairs(store: Any, file: str | os.PathLike[str], project: str, *,
                 replace: bool = False, split: str = "train") -> ImportReport:
    """Validate a whole pairs file, then store it as ``project`` in one transaction."""
    refuse_existing(store, project, replace)
    data = read_pairs(file, split=split)
    return save(store, data, project, source=f"pairs:{Path(file).resolve()}", replace=replace)


# -- row sources: (line or row number, {column: value}) --------------------------------------------
def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    name = display_name(path)
    for number, obj in iter_jsonl(path):
        for column in ("query", "positive"):
            if column not in obj:
                raise DataError("missing", file=name, line=number, field=column,
                                hint=COLUMNS_HINT)
        yield number, obj


def _csv_rows(path: Path, delimiter: str) -> Iterator[tuple[int, dict[str, Any]]]:
    name = display_name(path)
    lines = (text for _, text in iter_lines(path))
    reader = csv.reader(lines, delimiter=delimiter)
    header: list[str] | None = None
    last = 0  # physical lines consumed so far; a record starts on the next one
    while True:
        start = last + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DataError(f"unreadable {'TSV' if delimiter == chr(9) else 'CSV'}: {exc}",
                            file=name, line=start,
                            hint="check the quoting of this record") from None
        last = reader.line_num
        if not any(cell.strip() for cell in record):
            continue  # a blank line, or a row of empty cells as spreadsheets export them
        if header is None:
            header = [c.strip() for c in record]
            _refuse_duplicate_columns(header, name, start)
            for column in ("query", "positive"):
                if column not in header:
                    raise DataError(f"no '{column}' column in the header (found: "
                                    f"{', '.join(header)})", file=name, line=start,
                                    field=column, hint=COLUMNS_HINT)
            continue
        if len(record) != len(header):
            raise DataError(
                f"expected {len(header)} columns like the header, found {len(record)}",
                file=name, line=start,
                hint="quote fields that contain the separator or a line break",
            )
        row: dict[str, Any] = dict(zip(header, record))
        # In CSV an empty cell is the only way to say "none" for the optional columns.
        for column in ("negative", "query_id"):
            if row.get(column) == "":
                row[column] = None
        yield start, row
    if header is None:
        raise DataError("the file is empty", file=name, hint=COLUMNS_HINT)


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = display_name(path)
    with open(path, "rb") as fh:
        refuse_compressed(fh.read(8), path)
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"not a readable Parquet file: {exc}", file=name,
                        hint="write it with pyarrow or pandas, or use .jsonl/.csv") from None
    columns = pf.schema_arrow.names
    _refuse_duplicate_columns(columns, name, None)
    for column in ("query", "positive"):
        if column not in columns:
            raise DataError(f"no '{column}' column (found: {', '.join(columns)})", file=name,
                            field=column, hint=COLUMNS_HINT)
    wanted = [c for c in ("query", "positive", "negative", "query_id") if c in columns]
    number = 0
    try:
        for batch in pf.iter_batches(columns=wanted, batch_size=8192):
            for row in batch.to_pylist():
                number += 1
                yield number, row
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read the Parquet data: {exc}", file=name, line=number + 1,
                        hint="the file may be truncated; write it again") from None


def _refuse_duplicate_columns(header: list[str], name: str, line: int | None) -> None:
    """Two columns of one name would silently lose one of them (empty names are ignored)."""
    seen: set[str] = set()
    for column in header:
        if column and column in seen:
            raise DataError(f"the column '{column}' appears twice in the header", file=name,
                            line=line, field=column,
                            hint="rename or remove one of the two columns")
        seen.add(column)


# -- merging rows into a project ------------------------------------------------------------------
class _Builder:
    """Collects de-duplicated documents, queries and judgments, checking each row as it comes."""

    def __init__(self, name: str, split: str, row_word: str) -> None:
        self.name, self.split, self.row_word = name, split, row_word
        self.rows = 0
        self.documents: dict[str, str] = {}  # doc_id -> text, in first-seen order
        self.queries: dict[str, tuple[str, int]] = {}  # query_id -> (text, first line)
        self.judgments: dict[tuple[str, str], tuple[int, int]] = {}  # (q, d) -> (grade, line)

    def _error(self, message: str, number: int, field: str | None = None,
               hint: str | None = None) -> DataError:
        if self.row_word == "row":
            message += f" (row {number})"
        if hint is None:
            hint = ("each row needs a non-empty 'query' string and 'positive' texts; "
                    "'negative' is optional; each of them is a string or a list of strings")
        return DataError(message, file=self.name, line=number, field=field, hint=hint)

    def _texts(self, value: Any, number: int, field: str, required: bool) -> list[str]:
        if value is None or (isinstance(value, list) and not value and not required):
            if required:
                raise self._error("must not be empty", number, field,
                                  hint=f"every row needs a {field} text")
            return []
        values = value if isinstance(value, list) else [value]
        if not values:
            raise self._error("must not be an empty list", number, field)
        out = []
        for item in values:
            if not isinstance(item, str):
                what = "a string or a list of strings"
                raise self._error(f"must be {what}, found {json_type(item)}", number, field)
            self._unicode(item, number, field)
            text = item.strip()
            if not text:
                raise self._error("must not be empty", number, field,
                                  hint=f"remove the row or give a {field} text")
            out.append(text)
        return out

    def _unicode(self, text: str, number: int, field: str) -> None:
        problem = surrogate_problem(text)
        if problem is not None:
            raise self._error(problem, number, field, hint=SURROGATE_HINT)

    def add(self, number: int, row: dict[str, Any]) -> None:
        self.rows += 1
        query_value = row.get("query")
        if query_value is None:
            raise self._error("must not be empty", number, "query")
        if not isinstance(query_value, str):
            raise self._error(f"must be a string, found {json_type(query_value)}", number, "query")
        self._unicode(query_value, number, "query")
        query = query_value.strip()
        if not query:
            raise self._error("must not be empty", number, "query")
        positives = self._texts(row.get("positive"), number, "positive", required=True)
        negatives = self._texts(row.get("negative"), number, "negative", required=False)

        given = row.get("query_id")
        if given is None or given == "":  # a whitespace-only id is refused by check_id
            query_id = query_id_for(query)
        else:
            query_id = check_id(given, file=self.name, line=number, field="query_id")
        if query_id in self.queries:
            known, first = self.queries[query_id]
            if known != query:
                raise self._error(
                    f"query id '{query_id}' has a different query text than on "
                    f"{self.row_word} {first}", number, "query_id",
                    hint="one query_id must always have the same query text",
                )
        else:
            self.queries[query_id] = (query, number)

        for grade, texts in ((1, positives), (0, negatives)):
            for text in texts:
                doc_id = doc_id_for(text)
                self.documents.setdefault(doc_id, text)
                key = (query_id, doc_id)
                if key in self.judgments:
                    old_grade, first = self.judgments[key]
                    if old_grade != grade:
                        where = ("in this same row" if first == number
                                 else f"first judged on {self.row_word} {first}")
                        raise self._error(
                            f"the same text is both a positive and a negative for this query "
                            f"({where}): {_short(text)!r}", number,
                            "negative" if grade == 0 else "positive",
                            hint="a text must not be both relevant and non-relevant for one query",
                        )
                    continue
                self.judgments[key] = (grade, number)

    def finish(self) -> ImportedData:
        documents = [(d, "", text) for d, text in self.documents.items()]
        queries = [(q, text, None) for q, (text, _) in self.queries.items()]
        qrels = [(self.split, q, d, grade) for (q, d), (grade, _) in self.judgments.items()]
        return build(documents, queries, qrels, [])


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
