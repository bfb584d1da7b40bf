"""Shared import plumbing: streaming UTF-8 readers, field checks, result tables, dataset hash."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import pyarrow as pa

from embtui.errors import DataError

BOM = b"\xef\xbb\xbf"

DOCUMENTS_SCHEMA = pa.schema(
    [("doc_id", pa.string()), ("title", pa.string()), ("text", pa.string())]
)
QUERIES_SCHEMA = pa.schema(
    [("query_id", pa.string()), ("text", pa.string()), ("metadata", pa.string())]
)
QRELS_SCHEMA = pa.schema(
    [("split", pa.string()), ("query_id", pa.string()), ("doc_id", pa.string()),
     ("grade", pa.int32())]
)

# How many example ids a warning lists before "...".
_EXAMPLES = 5


@dataclass(frozen=True)
class ImportedData:
    """A parsed, validated dataset ready for ``Store.save_project`` (nothing written yet)."""

    documents: pa.Table  # doc_id, title, text
    queries: pa.Table  # query_id, text, metadata (JSON text or null)
    qrels: pa.Table  # split, query_id, doc_id, grade
    dataset_hash: str  # sha256 over the normalised (sorted) content
    warnings: tuple[str, ...] = ()

    def splits(self) -> dict[str, dict[str, int]]:
        """split -> {"queries": judged queries, "qrels": judgments}, splits sorted by name."""
        out: dict[str, dict[str, int]] = {}
        seen: dict[str, set[str]] = {}
        for split, qid in zip(self.qrels["split"].to_pylist(), self.qrels["query_id"].to_pylist()):
            entry = out.setdefault(split, {"queries": 0, "qrels": 0})
            entry["qrels"] += 1
            qs = seen.setdefault(split, set())
            if qid not in qs:
                qs.add(qid)
                entry["queries"] += 1
        return {k: out[k] for k in sorted(out)}

    def report(self, project: str) -> "ImportReport":
        return ImportReport(
            project=project,
            documents=self.documents.num_rows,
            queries=self.queries.num_rows,
            splits=self.splits(),
            warnings=self.warnings,
        )


@dataclass(frozen=True)
class ImportReport:
    """What an import stored: counts per split and the warnings met on the way."""

    project: str
    documents: int
    queries: int
    splits: dict[str, dict[str, int]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def summary(self) -> str:
        parts = ", ".join(
            f"{name} {s['queries']:,} queries / {s['qrels']:,} judgments"
            for name, s in self.splits.items()
        )
        line = (
            f"imported project '{self.project}': {self.documents:,} documents, "
            f"{self.queries:,} queries; splits: {parts or 'none'}"
        )
        if self.warnings:
            line += f"\n{len(self.warnings)} warning(s):" + "".join(
                f"\n  - {w}" for w in self.warnings
            )
        return line


# -- reading ------------------------------------------------------------------------------------
def display_name(path: str | os.PathLike[str]) -> str:
    """How a file is named in messages (the path as the user gave it)."""
    return str(path)


def require_file(path: Path, what: str, hint: str | None = None) -> None:
    if not path.exists():
        raise DataError(f"{what} not found", file=display_name(path),
                        hint=hint or "check the path")
    if not path.is_file():
        raise DataError(f"{what} is not a regular file", file=display_name(path),
                        hint=hint or "give the path of a file")


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number from 1, decoded line incl. its line ending), streaming in binary mode.

    Each line is decoded on its own so a bad byte is reported with its line; a UTF-8 BOM at the
    start of the file is dropped.
    """
    name = display_name(path)
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise DataError(f"cannot open the file: {exc.strerror or exc}", file=name,
                        hint="check the path and its permissions") from exc
    with fh:
        for number, raw in enumerate(fh, 1):
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM):]
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the "
                    "line",
                    file=name, line=number,
                    hint="re-save the file as UTF-8, e.g. with `iconv -f latin1 -t utf-8`",
                ) from None


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSON Lines file.

    Raises DataError for malformed JSON, a line that is not a JSON object, and a file with no
    objects at all.
    """
    name = display_name(path)
    count = 0
    for number, text in iter_lines(path):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"malformed JSON: {exc.msg} (column {exc.colno})", file=name, line=number,
                hint="each line must be one complete JSON object",
            ) from None
        except RecursionError:
            raise DataError("malformed JSON: nested too deeply", file=name, line=number,
                            hint="each line must be one JSON object") from None
        if not isinstance(obj, dict):
            raise DataError(
                f"expected a JSON object, found {json_type(obj)}", file=name, line=number,
                hint='each line must look like {"_id": ..., "text": ...}',
            )
        count += 1
        yield number, obj
    if count == 0:
        raise DataError("the file is empty (no JSON objects)", file=name,
                        hint="each line must be one JSON object")


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# -- field checks -------------------------------------------------------------------------------
def check_id(value: Any, *, file: str, line: int | None, field: str) -> str:
    """An id as a string: strings as they are, whole JSON numbers converted (123 -> "123")."""
    hint = 'ids are non-empty strings such as "doc-17"; whole numbers are accepted too'
    if isinstance(value, bool) or value is None or not isinstance(value, (str, int, float)):
        raise DataError(
            f"must be a string or a whole number, found {json_type(value)}",
            file=file, line=line, field=field, hint=hint,
        )
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise DataError(f"must be a string or a whole number, found {value!r}",
                            file=file, line=line, field=field, hint=hint)
        value = int(value)
    text = str(value)
    if not text.strip():
        raise DataError("must not be empty", file=file, line=line, field=field, hint=hint)
    return text


def check_text(value: Any, *, file: str, line: int | None, field: str,
               allow_null: bool = False) -> str:
    if value is None and allow_null:
        return ""
    if not isinstance(value, str):
        raise DataError(f"must be a string, found {json_type(value)}",
                        file=file, line=line, field=field,
                        hint=f'write the {field} as a JSON string, e.g. "{field}": "..."')
    return value


def parse_grade(value: str, *, file: str, line: int, field: str) -> int:
    """A relevance grade: an integer (``"1.0"`` is accepted as 1, ``"1.5"`` is not)."""
    text = value.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if math.isfinite(number) and number.is_integer():
        return int(number)
    raise DataError(f"must be an integer grade, found {value!r}", file=file, line=line,
                    field=field, hint="use 0 for non-relevant and 1 or higher for relevant")


def examples(ids: Iterable[str]) -> str:
    ids = list(ids)
    shown = ", ".join(ids[:_EXAMPLES])
    return shown + (", ..." if len(ids) > _EXAMPLES else "")


# -- building the result ------------------------------------------------------------------------
def dataset_hash(
    documents: Iterable[tuple[str, str, str]],
    queries: Iterable[tuple[str, str, str | None]],
    qrels: Iterable[tuple[str, str, str, int]],
) -> str:
    """sha256 over the content sorted by id, so line order and file format do not matter."""
    h = hashlib.sha256(b"embtui-dataset-v1\n")
    for section, rows in (("documents", documents), ("queries", queries), ("qrels", qrels)):
        h.update(f"#{section}\n".encode())
        for row in sorted(rows):
            h.update(json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
            h.update(b"\n")
    return h.hexdigest()


def build(
    documents: list[tuple[str, str, str]],
    queries: list[tuple[str, str, str | None]],
    qrels: list[tuple[str, str, str, int]],
    warnings: list[str],
) -> ImportedData:
    """Turn validated rows into tables, adding the warnings every importer shares."""
    warnings = list(warnings)
    judged = {q for _, q, _, _ in qrels}
    unjudged = [q for q, _, _ in queries if q not in judged]
    if unjudged:
        warnings.append(
            f"{len(unjudged):,} queries have no judgments in any split and will not be evaluated "
            f"({examples(unjudged)})"
        )
    empty = [d for d, title, text in documents if not (title + " " + text).strip()]
    if empty:
        warnings.append(f"{len(empty):,} documents are empty (no title or text): {examples(empty)}")

    def table(rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.Table:
        columns = list(zip(*rows)) if rows else [[] for _ in schema]
        return pa.table([pa.array(list(c), type=f.type) for c, f in zip(columns, schema)],
                        schema=schema)

    return ImportedData(
        documents=table(documents, DOCUMENTS_SCHEMA),
        queries=table(queries, QUERIES_SCHEMA),
        qrels=table(qrels, QRELS_SCHEMA),
        dataset_hash=dataset_hash(documents, queries, qrels),
        warnings=tuple(warnings),
    )


def save(store: Any, data: ImportedData, project: str, *, source: str,
         replace: bool) -> ImportReport:
    """Write a validated dataset as one project in one transaction and report what landed."""
    store.save_project(
        project,
        documents=data.documents,
        queries=data.queries,
        qrels=data.qrels,
        source=source,
        dataset_hash=data.dataset_hash,
        replace=replace,
    )
    return data.report(project)


def refuse_existing(store: Any, project: str, replace: bool) -> None:
    """Fail fast (before parsing a large file) when the project exists and replace is off.

    ``Store.save_project`` checks again inside its transaction, so this is only an early exit.
    """
    from embtui.errors import EmbtuiError

    if not project or not project.strip():
        raise EmbtuiError("a project name must not be empty", "pass --project NAME")
    if not replace and store.project_exists(project):
        raise EmbtuiError(
            f"a project named '{project}' already exists",
            "pass --replace to overwrite it, or choose another --project name",
        )
