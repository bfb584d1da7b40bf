"""Shared import plumbing: streaming UTF-8 readers, field checks, result tables, dataset hash."""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import pyarrow as pa

from embtui.data.files import display_name, refuse_compressed, require_file  # noqa: F401 (re-exported)
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
        return split_counts(self.qrels)

    def report(self, project: str) -> "ImportReport":
        return ImportReport(
            project=project,
            documents=self.documents.num_rows,
            queries=self.queries.num_rows,
            splits=self.splits(),
            warnings=self.warnings,
        )


def split_counts(qrels: pa.Table) -> dict[str, dict[str, int]]:
    """split -> {"queries": judged queries, "qrels": judgments}, splits sorted by name."""
    out: dict[str, dict[str, int]] = {}
    seen: dict[str, set[str]] = {}
    for split, qid in zip(qrels["split"].to_pylist(), qrels["query_id"].to_pylist()):
        entry = out.setdefault(split, {"queries": 0, "qrels": 0})
        entry["qrels"] += 1
        qs = seen.setdefault(split, set())
        if qid not in qs:
            qs.add(qid)
            entry["queries"] += 1
    return {k: out[k] for k in sorted(out)}


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
        refuse_compressed(fh.read(8), path)
        fh.seek(0)
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


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


# json.loads silently keeps the last of two equal keys; this decoder refuses them (same speed).
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)


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
            obj = _DECODER.decode(text)
        except _DuplicateKey as dup:
            raise DataError(
                f"the key appears twice in one JSON object (the first would be lost)",
                file=name, line=number, field=_SURROGATE.sub("?", dup.key),
                hint="give each key once per object",
            ) from None
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
ID_HINT = ("ids must not contain whitespace or control characters: TREC run and qrels files "
           "cannot carry them, and embtui strips nothing; fix the id in the file")
# Whitespace (any Unicode space, tab, line break), C0/C1 control characters and lone surrogates.
_BAD_ID_CHAR = re.compile(r"[\s\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# A grade: ASCII digits with an optional sign and an optional ".0" ("1.0" as written by pandas).
_GRADE = re.compile(r"[+-]?[0-9]+(?:\.0*)?", re.ASCII)
INT32 = (-(2**31), 2**31 - 1)
_CHAR_NAMES = {" ": "a space", "\t": "a tab", "\n": "a line break (\\n)",
               "\r": "a carriage return (\\r)", "\xa0": "a non-breaking space (U+00A0)"}


def describe_char(ch: str) -> str:
    """How a bad character is named in messages: "a tab", "a lone surrogate U+D800", ..."""
    if ch in _CHAR_NAMES:
        return _CHAR_NAMES[ch]
    code = f"U+{ord(ch):04X}"
    if 0xD800 <= ord(ch) <= 0xDFFF:
        return f"a lone surrogate {code} (not valid Unicode)"
    name = unicodedata.name(ch, "")
    kind = "a control character" if unicodedata.category(ch) == "Cc" else "whitespace"
    return f"{kind} {code}" + (f" ({name.lower()})" if name else "")


def _where(text: str, index: int, length: int | None = None) -> str:
    end = len(text) if length is None else length
    if index == 0:
        return "at the start"
    return "at the end" if index == end - 1 else f"at position {index + 1}"


def check_id(value: Any, *, file: str, line: int | None, field: str) -> str:
    """An id as a string: strings as they are, whole JSON numbers converted (123 -> "123").

    Nothing is stripped: an id with whitespace or a control character anywhere is refused.
    """
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
    bad = _BAD_ID_CHAR.search(text)
    if bad is not None:
        raise DataError(
            f"id {text!r} contains {describe_char(bad.group())} {_where(text, bad.start())}",
            file=file, line=line, field=field, hint=ID_HINT,
        )
    return text


SURROGATE_HINT = "a JSON \\uD800-\\uDFFF escape must be half of a pair; fix or remove it"


def surrogate_problem(text: str) -> str | None:
    """What is wrong when ``text`` holds a lone surrogate (a JSON "\\ud800"); None if nothing."""
    if text.isascii():  # O(1) in CPython; an encode is ~20x faster than a regex scan
        return None
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as exc:
        return f"contains {describe_char(text[exc.start])} at character {exc.start + 1}"


def check_unicode(text: str, *, file: str, line: int | None, field: str) -> str:
    """``text`` unchanged, or a DataError when it holds a lone surrogate (UTF-8 cannot store it)."""
    problem = surrogate_problem(text)
    if problem is not None:
        raise DataError(problem, file=file, line=line, field=field, hint=SURROGATE_HINT)
    return text


def check_text(value: Any, *, file: str, line: int | None, field: str,
               allow_null: bool = False) -> str:
    if value is None and allow_null:
        return ""
    if not isinstance(value, str):
        raise DataError(f"must be a string, found {json_type(value)}",
                        file=file, line=line, field=field,
                        hint=f'write the {field} as a JSON string, e.g. "{field}": "..."')
    return check_unicode(value, file=file, line=line, field=field)


def parse_grade(value: str, *, file: str, line: int, field: str) -> int:
    """A relevance grade: plain ASCII digits in the int32 range (``"1.0"`` is 1, ``"1.5"`` is not).

    Nothing is stripped, and Python's extras (``1_0``, non-ASCII digits, ``1e0``) are refused.
    """
    if _GRADE.fullmatch(value) is None:
        raise DataError(f"must be an integer grade, found {value!r}", file=file, line=line,
                        field=field,
                        hint="write plain ASCII digits such as 0, 1 or 2, with no spaces: 0 for "
                             "non-relevant, 1 or higher for relevant")
    digits = value.split(".")[0]
    short = len(digits.lstrip("+-").lstrip("0")) <= 10  # int() of 5,000 digits would raise
    grade = int(digits) if short else INT32[1] + 1
    if not INT32[0] <= grade <= INT32[1]:
        shown = digits if len(digits) <= 24 else digits[:20] + "..."
        raise DataError(f"grade {shown} is outside the 32-bit integer range "
                        f"({INT32[0]} to {INT32[1]})", file=file, line=line, field=field,
                        hint="use 0 for non-relevant and small positive integers for relevant")
    return grade


def split_problem(split: str) -> str | None:
    """Why ``split`` cannot name a split (it shows in tables and on the command line), or None."""
    for i, ch in enumerate(split):
        if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp"):
            return f"the split name {split!r} contains {describe_char(ch)} at position {i + 1}"
    if split != split.strip():
        return f"the split name {split!r} starts or ends with whitespace"
    return None


def examples(ids: Iterable[str]) -> str:
    ids = list(ids)
    shown = ", ".join(ids[:_EXAMPLES])
    return shown + (", ..." if len(ids) > _EXAMPLES else "")


# -- building the result ------------------------------------------------------------------------
_JSON_LINE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def encode_row(row: tuple[Any, ...]) -> str:
    """One row as the dataset hash writes it: a compact JSON array, UTF-8 as is."""
    return _JSON_LINE(row)


def dataset_hash(
    documents: Iterable[tuple[str, str, str]],
    queries: Iterable[tuple[str, str, str | None]],
    qrels: Iterable[tuple[str, str, str, int]],
    *,
    sorted_document_json: Iterable[bytes] | None = None,
) -> str:
    """sha256 over the content sorted by id, so line order and file format do not matter.

    ``sorted_document_json``: the documents' part already written (JSON lines sorted by id, as
    ``encode_row`` + newline), in chunks, instead of ``documents`` (a corpus too large to sort in
    Python streams in this way; the hash is the same).
    """
    h = hashlib.sha256(b"embtui-dataset-v1\n")
    h.update(b"#documents\n")
    if sorted_document_json is not None:
        for chunk in sorted_document_json:
            h.update(chunk)
    else:
        for row in sorted(documents):
            h.update(encode_row(row).encode("utf-8"))
            h.update(b"\n")
    for section, rows in (("queries", queries), ("qrels", qrels)):
        h.update(f"#{section}\n".encode())
        for row in sorted(rows):
            h.update(encode_row(row).encode("utf-8"))
            h.update(b"\n")
    return h.hexdigest()


def unjudged_warning(queries: Iterable[tuple[str, str, str | None]],
                     qrels: Iterable[tuple[str, str, str, int]]) -> str | None:
    judged = {q for _, q, _, _ in qrels}
    unjudged = [q for q, _, _ in queries if q not in judged]
    if not unjudged:
        return None
    return (f"{len(unjudged):,} queries have no judgments in any split and will not be evaluated "
            f"({examples(unjudged)})")


def empty_warning(count: int, first: list[str]) -> str | None:
    """``first``: the first ids of the empty documents (more than _EXAMPLES shows the "...")."""
    if not count:
        return None
    shown = examples(first[:_EXAMPLES] + ([""] if count > _EXAMPLES else []))
    return f"{count:,} documents are empty (no title or text): {shown}"


def build(
    documents: list[tuple[str, str, str]],
    queries: list[tuple[str, str, str | None]],
    qrels: list[tuple[str, str, str, int]],
    warnings: list[str],
) -> ImportedData:
    """Turn validated rows into tables, adding the warnings every importer shares."""
    warnings = list(warnings)
    empty = [d for d, title, text in documents if not (title + " " + text).strip()]
    for extra in (unjudged_warning(queries, qrels), empty_warning(len(empty), empty)):
        if extra is not None:
            warnings.append(extra)

    return ImportedData(
        documents=table(documents, DOCUMENTS_SCHEMA),
        queries=table(queries, QUERIES_SCHEMA),
        qrels=table(qrels, QRELS_SCHEMA),
        dataset_hash=dataset_hash(documents, queries, qrels),
        warnings=tuple(warnings),
    )


def table(rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.Table:
    """Validated rows as an Arrow table of ``schema``."""
    columns = list(zip(*rows)) if rows else [[] for _ in schema]
    return pa.table([pa.array(list(c), type=f.type) for c, f in zip(columns, schema)],
                    schema=schema)


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
    """Fail fast (before parsing a large file) on a bad project name, on an existing project when
    replace is off, and on a replace while jobs of the project are queued or running.

    ``Store.save_project`` checks again inside its transaction, so this is only an early exit.
    """
    from embtui.errors import EmbtuiError
    from embtui.store.api import check_project_name, refuse_while_jobs_run

    check_project_name(project)
    if not store.project_exists(project):
        return
    if not replace:
        raise EmbtuiError(
            f"a project named '{project}' already exists",
            "pass --replace to overwrite it, or choose another --project name",
        )
    with store.ws.connect() as con:
        refuse_while_jobs_run(con, project, "replace")
