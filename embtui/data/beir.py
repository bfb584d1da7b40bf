"""BEIR folder importer: corpus.jsonl, queries.jsonl and qrels/<split>.tsv into one project."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from embtui.data.files import COMPRESSED_SUFFIXES, find_in, require_folder, stat_problem
from embtui.data.validate import (
    DOCUMENTS_SCHEMA,
    QRELS_SCHEMA,
    QUERIES_SCHEMA,
    ImportedData,
    ImportReport,
    build,
    dataset_hash,
    empty_warning,
    split_counts,
    table,
    unjudged_warning,
    check_id,
    check_text,
    check_unicode,
    json_type,
    display_name,
    iter_jsonl,
    iter_lines,
    parse_grade,
    refuse_existing,
    require_file,
    split_problem,
)
from embtui.errors import DataError

LAYOUT_HINT = "a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv"
QRELS_HEADER = ("query-id", "corpus-id", "score")


def _locate(path: str | os.PathLike[str]) -> tuple[Path, Path, list[Path]]:
    """corpus.jsonl, queries.jsonl and the qrels/<split>.tsv files of a BEIR folder."""
    root = Path(path)
    if stat_problem(root) is not None:
        require_folder(root, "folder", LAYOUT_HINT)
    if not root.is_dir():
        raise DataError("not a folder", file=display_name(root),
                        hint=LAYOUT_HINT + "; for a pairs file use the pairs importer")
    corpus_path, queries_path = find_in(root, "corpus.jsonl"), find_in(root, "queries.jsonl")
    qrels_dir = find_in(root, "qrels")
    require_file(corpus_path, "corpus.jsonl", LAYOUT_HINT)
    require_file(queries_path, "queries.jsonl", LAYOUT_HINT)
    require_folder(qrels_dir, "qrels folder",
                   LAYOUT_HINT + ", one .tsv file per split, e.g. qrels/test.tsv")
    return corpus_path, queries_path, _split_files(qrels_dir)


def read_beir(path: str | os.PathLike[str]) -> ImportedData:
    """Parse and validate a BEIR folder in memory; writes nothing. Raises DataError on the first
    problem. (``import_beir`` streams the corpus instead; both accept and refuse the same files.)"""
    corpus_path, queries_path, split_files = _locate(path)
    documents = _read_corpus(corpus_path)
    queries = _read_queries(queries_path)
    doc_ids = {d[0] for d in documents}
    query_ids = {q[0] for q in queries}
    qrels: list[tuple[str, str, str, int]] = []
    warnings: list[str] = []
    for split_file in split_files:
        split = split_file.name[: -len(".tsv")]
        qrels.extend(_read_qrels(split_file, split, query_ids, doc_ids, warnings))
    return build(documents, queries, qrels, warnings)


def import_beir(store: Any, path: str | os.PathLike[str], project: str, *,
                replace: bool = False) -> ImportReport:
    """Validate a whole BEIR folder, then store it as ``project`` in one transaction.

    The corpus streams: DuckDB reads corpus.jsonl straight into the project's transaction and it
    is checked in SQL, so memory does not grow with the corpus. When DuckDB refuses the file or a
    check fails, the transaction is rolled back and the line-by-line reader reads the file again
    and raises the error naming file, line and field (or, for a file DuckDB merely found odd,
    supplies the rows). Queries and qrels are read in Python.
    """
    refuse_existing(store, project, replace)
    corpus_path, queries_path, split_files = _locate(path)
    source = f"beir:{Path(path).resolve()}"
    with store.import_stage() as stage:
        stage.begin(project, replace=replace, source=source)
        if stage.load_corpus_jsonl(corpus_path) is not None:  # rolled back
            documents = table(_read_corpus(corpus_path), DOCUMENTS_SCHEMA)  # raises, naming the line
            stage.begin(project, replace=replace, source=source)  # or it was a false alarm
            stage.load_documents(documents)
            del documents
        queries = _read_queries(queries_path)
        query_ids = {q[0] for q in queries}
        doc_ids = stage.known_doc_ids(_judged_doc_ids(split_files))
        qrels: list[tuple[str, str, str, int]] = []
        warnings: list[str] = []
        for split_file in split_files:
            split = split_file.name[: -len(".tsv")]
            qrels.extend(_read_qrels(split_file, split, query_ids, doc_ids, warnings))
        for extra in (unjudged_warning(queries, qrels), empty_warning(*stage.empty_documents(5))):
            if extra is not None:
                warnings.append(extra)
        digest = dataset_hash((), queries, qrels,
                              sorted_document_json=stage.sorted_document_json())
        qrels_t = table(qrels, QRELS_SCHEMA)
        n_docs = stage.documents
        stage.commit(queries=table(queries, QUERIES_SCHEMA), qrels=qrels_t, dataset_hash=digest)
    return ImportReport(project=project, documents=n_docs, queries=len(queries),
                        splits=split_counts(qrels_t), warnings=tuple(warnings))


def _judged_doc_ids(split_files: list[Path]) -> list[str]:
    """Every corpus-id cell the qrels files hold (unchecked: only to ask the store which exist)."""
    out: set[str] = set()
    for split_file in split_files:
        try:
            with open(split_file, "rb") as fh:
                for raw in fh:
                    parts = raw.rstrip(b"\r\n").split(b"\t")
                    if len(parts) == 3:
                        out.add(parts[1].decode("utf-8", "replace"))
        except OSError:
            pass  # the real pass below reports it
    return list(out)


def _split_files(qrels_dir: Path) -> list[Path]:
    """qrels/<split>.tsv (any case of .tsv); anything that looks like one but cannot be read is an
    error rather than a split silently left out."""
    found: dict[str, Path] = {}
    try:
        entries = sorted(qrels_dir.iterdir())
    except OSError as exc:
        raise DataError(f"cannot list the qrels folder: {exc.strerror or exc}",
                        file=display_name(qrels_dir), hint="check its permissions") from None
    for p in entries:
        if p.name.startswith("."):
            continue
        lower = p.name.lower()
        packed = [s for s in COMPRESSED_SUFFIXES if lower.endswith(".tsv" + s)]
        if packed:
            raise DataError(f"{COMPRESSED_SUFFIXES[packed[0]]}-compressed qrels file",
                            file=display_name(p), hint="decompress it first, e.g. "
                            f"`gunzip -k {p.name}`, or move it out of the qrels folder")
        if not lower.endswith(".tsv"):
            continue
        problem = stat_problem(p)
        if problem is not None:
            raise DataError(f"qrels file {problem}", file=display_name(p),
                            hint="fix or remove it: every .tsv file in qrels/ is a split")
        if not p.is_file():
            raise DataError("qrels file is not a regular file", file=display_name(p),
                            hint="every .tsv entry in qrels/ must be a file holding one split")
        split = p.name[: -len(".tsv")]
        if (problem := split_problem(split)) is not None:
            raise DataError(problem, file=display_name(p),
                            hint="rename the file: the split is its name without .tsv")
        if split in found:
            raise DataError(f"two files for split '{split}': {found[split].name} and {p.name}",
                            file=display_name(qrels_dir), hint="keep one of them")
        found[split] = p
    if not found:
        raise DataError("no .tsv files in the qrels folder", file=display_name(qrels_dir),
                        hint="add one file per split, e.g. qrels/test.tsv")
    return [found[k] for k in sorted(found)]


# -- the three kinds of file ----------------------------------------------------------------------
def _required(obj: dict, key: str, name: str, number: int, hint: str) -> object:
    """``obj[key]``, or the importer's "missing" error naming file, line and field."""
    if key not in obj:
        raise DataError("missing", file=name, line=number, field=key, hint=hint)
    return obj[key]


def _read_corpus(path: Path) -> list[tuple[str, str, str]]:
    name = display_name(path)
    rows: list[tuple[str, str, str]] = []
    first_line: dict[str, int] = {}
    for number, obj in iter_jsonl(path):
        doc_id = check_id(_required(obj, "_id", name, number, 'every document needs an "_id"'),
                          file=name, line=number, field="_id")
        text = check_text(_required(obj, "text", name, number,
                                    'every document needs a "text"; use "" for none'),
                          file=name, line=number, field="text")
        title = check_text(obj.get("title"), file=name, line=number, field="title",
                           allow_null=True)
        if doc_id in first_line:
            raise DataError(
                f"duplicate document id '{doc_id}' (first on line {first_line[doc_id]})",
                file=name, line=number, field="_id", hint="document ids must be unique",
            )
        first_line[doc_id] = number
        rows.append((doc_id, title, text))
    return rows


def _read_queries(path: Path) -> list[tuple[str, str, str | None]]:
    name = display_name(path)
    rows: list[tuple[str, str, str | None]] = []
    first_line: dict[str, int] = {}
    for number, obj in iter_jsonl(path):
        query_id = check_id(_required(obj, "_id", name, number, 'every query needs an "_id"'),
                            file=name, line=number, field="_id")
        text = check_text(_required(obj, "text", name, number, 'every query needs a "text"'),
                          file=name, line=number, field="text")
        meta = obj.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            raise DataError(f"must be a JSON object or null, found {json_type(meta)}",
                            file=name, line=number, field="metadata",
                            hint='e.g. "metadata": {"source": "faq"}, or leave it out')
        if query_id in first_line:
            raise DataError(
                f"duplicate query id '{query_id}' (first on line {first_line[query_id]})",
                file=name, line=number, field="_id", hint="query ids must be unique",
            )
        first_line[query_id] = number
        metadata = None if meta is None else json.dumps(meta, ensure_ascii=False, sort_keys=True)
        if metadata is not None:
            check_unicode(metadata, file=name, line=number, field="metadata")
        rows.append((query_id, text, metadata))
    return rows


def _read_qrels(path: Path, split: str, query_ids: set[str], doc_ids: set[str],
                warnings: list[str]) -> list[tuple[str, str, str, int]]:
    name = display_name(path)
    header_hint = "the first line must be: query-id<TAB>corpus-id<TAB>score"
    rows: list[tuple[str, str, str, int]] = []
    seen: dict[tuple[str, str], tuple[int, int]] = {}  # (query, doc) -> (line, grade)
    repeated = 0
    header_seen = False
    for number, raw in iter_lines(path):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        parts = line.split("\t")  # nothing stripped: ids and grades are checked as written
        if not header_seen:
            header_seen = True
            if tuple(p.strip().lower() for p in parts) != QRELS_HEADER:
                raise DataError(
                    f"expected the header 'query-id<TAB>corpus-id<TAB>score', found {line!r}",
                    file=name, line=number, hint=header_hint,
                )
            continue
        if len(parts) != 3:
            raise DataError(
                f"expected 3 tab-separated columns (query-id, corpus-id, score), found "
                f"{len(parts)}", file=name, line=number,
                hint="separate the columns with a single tab",
            )
        query_id, doc_id, score = parts
        for value, column in ((query_id, "query-id"), (doc_id, "corpus-id")):
            if not value:
                raise DataError("must not be empty", file=name, line=number, field=column,
                                hint="each line is query-id<TAB>corpus-id<TAB>score")
            check_id(value, file=name, line=number, field=column)
        grade = parse_grade(score, file=name, line=number, field="score")
        if query_id not in query_ids:
            raise DataError(f"query id '{query_id}' is not in queries.jsonl", file=name,
                            line=number, field="query-id",
                            hint="every judged query must be listed in queries.jsonl")
        if doc_id not in doc_ids:
            raise DataError(f"document id '{doc_id}' is not in corpus.jsonl", file=name,
                            line=number, field="corpus-id",
                            hint="every judged document must be listed in corpus.jsonl")
        key = (query_id, doc_id)
        if key in seen:
            first, first_grade = seen[key]
            if first_grade != grade:
                raise DataError(
                    f"query '{query_id}' and document '{doc_id}' are judged {grade} here but "
                    f"{first_grade} on line {first}", file=name, line=number, field="score",
                    hint="keep one judgment per query and document",
                )
            repeated += 1
            continue
        seen[key] = (number, grade)
        rows.append((split, query_id, doc_id, grade))
    if not header_seen:
        raise DataError("the file is empty", file=name, hint=header_hint)
    if not rows:
        raise DataError("no judgments after the header", file=name,
                        hint="add lines query-id<TAB>corpus-id<TAB>score, or remove the file")
    if repeated:
        warnings.append(f"{name}: {repeated:,} repeated judgments were kept once")
    return rows
