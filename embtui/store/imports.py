"""Large imports: a corpus read by DuckDB straight into the workspace, checked in SQL, inside the
one transaction that saves the project.

DuckDB's own JSON reader does the parsing (in C++, spilling to disk past ``memory_limit``), so an
import's memory does not grow with the corpus, and the rows are written once. The checks here
only *detect* a problem; they never word it: the transaction is rolled back and the importer
(``embtui.data``) reads the file again with its line-by-line reader, which names the file, line
and field exactly as it always has. Nothing is committed until everything has passed.
"""

from __future__ import annotations

import os
import re
from contextlib import ExitStack
from typing import Any, Callable, Iterator, Sequence

import duckdb
import pyarrow as pa

from embtui.store.db import Workspace
from embtui.store.inflight import refuse_while_jobs_run

# What DuckDB may hold in memory during an import (past it, it spills to a temp folder).
IMPORT_MEMORY_LIMIT = os.environ.get("EMBTUI_IMPORT_MEMORY", "1GB")
# Rows per Arrow batch when streaming the sorted corpus out for the dataset hash.
HASH_BATCH_ROWS = 50_000

# Python's str.isspace() characters: what str.strip() removes (the "empty document" test) and,
# with the C0/C1 controls, what an id may not contain (embtui.data.validate._BAD_ID_CHAR).
PY_WHITESPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())


def _re2_class(chars: str) -> str:
    return "".join(f"\\x{{{ord(c):x}}}" for c in chars)


_BAD_ID_RE2 = "[" + _re2_class(PY_WHITESPACE) + "\\x{0}-\\x{1f}\\x{7f}-\\x{9f}]"
# DuckDB's to_json writes U+000B, U+000E, U+000F and U+001A-U+001F as \u000B ..., Python's json as
# \u000b ...: an escape is one where the backslash run before "u00" has odd length.
_UPPER_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u00(0[BEF]|1[A-F])")


class ImportStage:
    """One import's write transaction (``Store.import_stage()``; a context manager: leaving it
    without ``commit`` rolls everything back)."""

    def __init__(self, ws: Workspace, *, check_name: Callable[[str], Any],
                 delete_project: Callable[[Any, int], None]) -> None:
        self.ws = ws
        self._check_name = check_name  # store.api's rules, handed in (no import circle)
        self._delete_project = delete_project
        self._stack = ExitStack()
        self.con: Any = self._stack.enter_context(ws.connect())
        self.con.execute(f"SET memory_limit = '{IMPORT_MEMORY_LIMIT}'")
        self.con.execute("SET preserve_insertion_order = true")  # rowid = line order
        self.pid: int | None = None
        self.documents = 0

    def __enter__(self) -> "ImportStage":
        return self

    def __exit__(self, *exc: Any) -> bool | None:
        self.rollback()
        return self._stack.__exit__(*exc)

    def rollback(self) -> None:
        if self.pid is not None:
            self.pid = None
            try:
                self.con.execute("ROLLBACK")
            except duckdb.Error:  # e.g. the disk is full: the original error says why
                pass

    def begin(self, name: str, *, replace: bool, source: str | None) -> None:
        """Start the transaction and make the project's row (``Store.save_project``'s rules:
        an existing project needs ``replace`` and no queued or running job)."""
        from embtui.errors import EmbtuiError

        self._check_name(name)
        con = self.con
        con.execute("BEGIN TRANSACTION")
        self.pid = -1
        rows = con.execute("SELECT id FROM projects WHERE name = ?", [name]).fetchall()
        if rows:
            if not replace:
                raise EmbtuiError(
                    f"a project named '{name}' already exists",
                    "pass --replace to overwrite it, or choose another --project name",
                )
            refuse_while_jobs_run(con, name, "replace")
            self._delete_project(con, int(rows[0][0]))
        self.pid = int(con.execute(
            "INSERT INTO projects (name, source) VALUES (?, ?) RETURNING id", [name, source]
        ).fetchall()[0][0])

    # -- the corpus --------------------------------------------------------------------------
    def load_corpus_jsonl(self, path: Any) -> str | None:
        """Insert a BEIR corpus.jsonl read by DuckDB; None when every row passed the checks, else
        a short reason (for logs only) after rolling the transaction back.

        Checked as the line-by-line reader would: each line one JSON object (DuckDB refuses
        malformed JSON, invalid UTF-8, lone surrogates and a key given twice among these three);
        ``_id`` a string or a whole number with no whitespace or control character, not empty;
        ``text`` a string; ``title`` a string, null or absent; ids unique (the table's key); at
        least one row. A wrong type becomes NULL, which the NOT NULL columns refuse (a JSON value's
        type is told by its text: a string starts with a quote; an id number is plain digits,
        anything else, e.g. 1e2 or -0, goes to the line-by-line reader).
        """
        con, pid = self.con, self.pid
        try:
            con.execute(
                f"""INSERT INTO documents
                    SELECT ?,
                           CASE WHEN starts_with(_id, '"') THEN _id->>'$'
                                WHEN regexp_full_match(_id, '0|-?[1-9][0-9]*') THEN _id::VARCHAR END,
                           CASE WHEN title IS NULL OR title = 'null' THEN ''
                                WHEN starts_with(title, '"') THEN title->>'$' END,
                           CASE WHEN starts_with(text, '"') THEN text->>'$' END
                    FROM read_json(?, format = 'newline_delimited', auto_detect = false,
                                   columns = {{'_id': 'JSON', 'title': 'JSON', 'text': 'JSON'}})""",
                [pid, str(path)]).fetchall()
            n, bad_id = con.execute(
                f"""SELECT count(*), count(*) FILTER (WHERE doc_id = ''
                                                      OR regexp_matches(doc_id, '{_BAD_ID_RE2}'))
                    FROM documents WHERE project_id = ?""", [pid]).fetchall()[0]
        except duckdb.Error as exc:
            self.rollback()
            return f"DuckDB refused it: {str(exc).splitlines()[0]}"
        if n == 0 or bad_id:
            self.rollback()
            return "no rows" if n == 0 else f"{bad_id} bad ids"
        self.documents = int(n)
        return None

    def load_documents(self, documents: pa.Table) -> None:
        """The rows as the line-by-line reader parsed them (when DuckDB's pass raised a false
        alarm, e.g. an ``_id`` written as 1e2)."""
        con = self.con
        con.register("_docs", documents)
        con.execute("INSERT INTO documents SELECT ?, doc_id, title, text FROM _docs",
                    [self.pid]).fetchall()
        con.unregister("_docs")
        self.documents = documents.num_rows

    def known_doc_ids(self, doc_ids: Sequence[str]) -> set[str]:
        """Those of ``doc_ids`` that are in the corpus being imported."""
        if not doc_ids:
            return set()
        con = self.con
        con.register("_ids", pa.table({"doc_id": pa.array(list(doc_ids), pa.string())}))
        try:
            rows = con.execute("SELECT DISTINCT doc_id FROM _ids WHERE doc_id IN "
                               "(SELECT doc_id FROM documents WHERE project_id = ?)",
                               [self.pid]).fetchall()
        finally:
            con.unregister("_ids")
        return {r[0] for r in rows}

    def empty_documents(self, examples: int) -> tuple[int, list[str]]:
        """(documents whose ``(title + " " + text).strip()`` is empty, the first few ids in file
        order)."""
        ws = _re2_class(PY_WHITESPACE)
        # cheap first: both parts empty or starting with a space, then the whole text
        where = (f"project_id = {int(self.pid or 0)} "
                 f"AND (title = '' OR regexp_matches(title, '^[{ws}]')) "
                 f"AND (text = '' OR regexp_matches(text, '^[{ws}]')) "
                 f"AND regexp_full_match(title || ' ' || text, '[{ws}]*')")
        con = self.con
        n = con.execute(f"SELECT count(*) FROM documents WHERE {where}").fetchall()[0][0]
        ids = [r[0] for r in con.execute(
            f"SELECT doc_id FROM documents WHERE {where} ORDER BY rowid LIMIT ?",
            [examples]).fetchall()]
        return int(n), ids

    def sorted_document_json(self) -> Iterator[bytes]:
        """The corpus sorted by id as JSON lines ``["id","title","text"]\\n``, exactly as Python's
        ``json`` writes them with ensure_ascii=False and compact separators (the dataset hash's
        bytes), a batch at a time. DuckDB writes the JSON; the one way it differs (upper-case hex
        in ``\\u000B``-style escapes) is put right on the bytes."""
        pid = int(self.pid or 0)
        reader = self.con.sql(
            f"""SELECT '[' || to_json(doc_id) || ',' || to_json(title) || ',' || to_json(text)
                       || ']' || chr(10) AS line
                FROM (SELECT doc_id, title, text, doc_id AS sort_key FROM documents
                      WHERE project_id = {pid})
                ORDER BY sort_key""").to_arrow_reader(HASH_BATCH_ROWS)
        import pyarrow.compute as pc

        for batch in reader:
            line = batch.column(0)
            if pc.any(pc.match_substring(line, "\\u00")).as_py():  # rare: a control character
                yield _python_escapes(_string_bytes(line))
            else:
                yield _string_bytes(line)  # the Arrow buffer itself, not copied

    # -- finishing -----------------------------------------------------------------------------
    def commit(self, *, queries: pa.Table, qrels: pa.Table, dataset_hash: str | None) -> None:
        """Add ``queries``, ``qrels`` and the dataset hash, and commit: all of it lands."""
        con, pid = self.con, self.pid
        con.register("_queries", queries)
        con.execute("INSERT INTO queries SELECT ?, query_id, text, metadata FROM _queries",
                    [pid]).fetchall()
        con.register("_qrels", qrels)
        con.execute("INSERT INTO qrels SELECT ?, split, query_id, doc_id, grade FROM _qrels",
                    [pid]).fetchall()
        con.execute("UPDATE projects SET dataset_hash = ? WHERE id = ?",
                    [dataset_hash, pid]).fetchall()
        con.execute("COMMIT")
        self.pid = None


def _string_bytes(arr: pa.Array) -> bytes | memoryview:
    """The concatenated UTF-8 of a string array without a null (its values buffer, sliced)."""
    import numpy as np

    if arr.type not in (pa.string(), pa.large_string()):
        arr = arr.cast(pa.large_string())
    _, offsets, data = arr.buffers()
    kind = np.int32 if arr.type == pa.string() else np.int64
    off = np.frombuffer(offsets, dtype=kind)[arr.offset:arr.offset + len(arr) + 1]
    if data is None:
        return b""
    return memoryview(data)[int(off[0]):int(off[-1])]


def _python_escapes(data: bytes | memoryview) -> bytes:
    """DuckDB's JSON bytes with its upper-case control escapes in Python's lower case."""
    raw = bytes(data)
    return _UPPER_ESCAPE.sub(lambda m: m.group(1) + b"\\u00" + m.group(2).lower(), raw)
