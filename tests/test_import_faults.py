"""Importers under hostile input: ids TREC cannot carry, odd grades, invalid Unicode, odd files,
bad project names, and `--replace` while jobs of the project are queued or running."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embtui.cli import main
from embtui.data.beir import import_beir, read_beir
from embtui.data.pairs import import_pairs, read_pairs
from embtui.errors import DataError, EmbtuiError
from embtui.store.api import Store
from embtui.store.jobs import JobStore
from tests.test_import import (  # noqa: F401 (fixtures)
    CORPUS,
    HDR,
    QRELS,
    QUERIES,
    Case,
    base_snapshot,
    base_workspace,
    beir,
    jsonl,
    make_beir,
    pairs,
    snapshot,
    store,
    write,
)

C1 = jsonl(CORPUS)


def raw_jsonl(*lines: str) -> str:
    """JSON Lines written by hand, so escapes such as \\ud800 reach the parser as written."""
    return "".join(line + "\n" for line in lines)


def corpus_with(doc: str) -> str:
    """The valid corpus with its first document replaced by the raw JSON ``doc``."""
    return raw_jsonl(doc, *(json.dumps(d) for d in CORPUS[1:]))


def qrels_line(line: str) -> dict[str, str]:
    return {"test": HDR + line + "\n"}


def _symlink_loop(name: str) -> Case:
    def case(d: Path) -> tuple[str, Path, list[str]]:
        root = make_beir(d / "bad")
        (root / name).unlink()
        os.symlink(root / (name + ".other"), root / name)
        os.symlink(root / name, root / (name + ".other"))
        return "beir", root, [name, "symlink loop"]
    return case


def _qrels_entry_link(kind: str) -> Case:
    def case(d: Path) -> tuple[str, Path, list[str]]:
        root = make_beir(d / "bad")
        link = root / "qrels" / "dev.tsv"
        if kind == "loop":
            os.symlink(link, link)
            return "beir", root, ["dev.tsv", "symlink loop"]
        os.symlink(d / "nowhere.tsv", link)
        return "beir", root, ["dev.tsv", "broken symlink", "nowhere.tsv"]
    return case


def _broken_link(d: Path) -> tuple[str, Path, list[str]]:
    root = make_beir(d / "bad")
    (root / "queries.jsonl").unlink()
    os.symlink(d / "gone.jsonl", root / "queries.jsonl")
    return "beir", root, ["queries.jsonl", "broken symlink", "gone.jsonl"]


def _root_loop(d: Path) -> tuple[str, Path, list[str]]:
    os.symlink(d / "b", d / "a")
    os.symlink(d / "a", d / "b")
    return "beir", d / "a", ["symlink loop"]


def _pairs_loop(d: Path) -> tuple[str, Path, list[str]]:
    os.symlink(d / "q.jsonl", d / "p.jsonl")
    os.symlink(d / "p.jsonl", d / "q.jsonl")
    return "pairs", d / "p.jsonl", ["p.jsonl", "symlink loop"]


def _split_is_folder(d: Path) -> tuple[str, Path, list[str]]:
    root = make_beir(d / "bad")
    (root / "qrels" / "dev.tsv").mkdir()
    return "beir", root, ["dev.tsv", "not a regular file"]


def _gzip_split(d: Path) -> tuple[str, Path, list[str]]:
    root = make_beir(d / "bad")
    write(root / "qrels" / "dev.tsv.gz", gzip.compress(QRELS["train"].encode()))
    return "beir", root, ["dev.tsv.gz", "gzip-compressed", "decompress"]


def _gzip_corpus(d: Path) -> tuple[str, Path, list[str]]:
    root = make_beir(d / "bad", corpus=gzip.compress(C1.encode()))
    return "beir", root, ["corpus.jsonl", "gzip-compressed", "decompress", "gunzip"]


def _gzip_sibling(d: Path) -> tuple[str, Path, list[str]]:
    root = make_beir(d / "bad")
    write(root / "corpus.jsonl.gz", gzip.compress(C1.encode()))
    (root / "corpus.jsonl").unlink()
    return "beir", root, ["corpus.jsonl", "not found", "corpus.jsonl.gz", "decompress"]


def _two_cases(d: Path) -> tuple[str, Path, list[str]]:
    root = make_beir(d / "bad")
    write(root / "CORPUS.JSONL", C1)
    return "beir", root, ["several files", "CORPUS.JSONL", "corpus.jsonl"]


def _split_twice(d: Path) -> tuple[str, Path, list[str]]:
    root = make_beir(d / "bad")
    write(root / "qrels" / "test.TSV", QRELS["test"])
    return "beir", root, ["split 'test'", "test.TSV", "test.tsv"]


def _parquet_duplicate(d: Path) -> tuple[str, Path, list[str]]:
    table = pa.Table.from_arrays([pa.array(["a"]), pa.array(["b"]), pa.array(["c"])],
                                 names=["query", "positive", "positive"])
    pq.write_table(table, d / "p.parquet")
    return "pairs", d / "p.parquet", ["p.parquet", "'positive'", "twice"]


ID = "whitespace or control characters"  # in every id hint
FAULTS: dict[str, Case] = {
    # 1. ids TREC cannot carry, nothing stripped
    "doc id leading space": beir(["corpus.jsonl:1", "'_id'", "' d1'", "a space at the start", ID],
                                 corpus=corpus_with('{"_id": " d1", "text": "x"}')),
    "doc id trailing space": beir(["corpus.jsonl:1", "'_id'", "a space at the end"],
                                  corpus=corpus_with('{"_id": "d1 ", "text": "x"}')),
    "doc id inner space": beir(["corpus.jsonl:1", "'d 1'", "position 2"],
                               corpus=corpus_with('{"_id": "d 1", "text": "x"}')),
    "doc id tab": beir(["corpus.jsonl:1", "'_id'", "a tab"],
                       corpus=corpus_with('{"_id": "d\\t1", "text": "x"}')),
    "doc id newline": beir(["corpus.jsonl:1", "'_id'", "line break"],
                           corpus=corpus_with('{"_id": "d\\n1", "text": "x"}')),
    "doc id NUL": beir(["corpus.jsonl:1", "'_id'", "control character U+0000"],
                       corpus=corpus_with('{"_id": "d\\u00001", "text": "x"}')),
    "doc id no-break space": beir(["corpus.jsonl:1", "non-breaking space"],
                                  corpus=corpus_with('{"_id": "d\\u00a01", "text": "x"}')),
    "query id line separator": beir(["queries.jsonl:2", "'_id'", "U+2028"],
                                    queries=raw_jsonl(json.dumps(QUERIES[0]),
                                                      '{"_id": "q\\u20282", "text": "t"}')),
    "qrels query id leading space": beir(["test.tsv:2", "'query-id'", "' q1'", "at the start"],
                                         qrels=qrels_line(" q1\td1\t1")),
    "qrels doc id trailing space": beir(["test.tsv:2", "'corpus-id'", "'d1 '", "at the end"],
                                        qrels=qrels_line("q1\td1 \t1")),
    "qrels id vertical tab": beir(["test.tsv:2", "'corpus-id'", "U+000B"],
                                  qrels=qrels_line("q1\td\x0b1\t1")),
    "pairs query_id tab (csv)": pairs("p.csv", 'query_id,query,positive\n"a\tb",q,p\n',
                                      ["p.csv:2", "'query_id'", "a tab", ID]),
    "pairs query_id space (jsonl)": pairs("p.jsonl", jsonl([{"query_id": " 7", "query": "q",
                                                             "positive": "p"}]),
                                          ["p.jsonl:1", "'query_id'", "at the start"]),
    "pairs query_id blank": pairs("p.jsonl", jsonl([{"query_id": "  ", "query": "q",
                                                     "positive": "p"}]),
                                  ["p.jsonl:1", "'query_id'", "empty"]),
    # 2. grades: plain ASCII integers in the int32 range
    "grade with underscore": beir(["test.tsv:2", "'score'", "'1_0'", "plain ASCII digits"],
                                  qrels=qrels_line("q1\td1\t1_0")),
    "grade Arabic-Indic digit": beir(["test.tsv:2", "'score'", "'\u0661'"],
                                     qrels=qrels_line("q1\td1\t\u0661")),
    "grade beyond int32": beir(["test.tsv:2", "'score'", "99999999999", "32-bit"],
                               qrels=qrels_line("q1\td1\t99999999999")),
    "grade below int32": beir(["test.tsv:2", "'score'", "-2147483649", "32-bit"],
                              qrels=qrels_line("q1\td1\t-2147483649")),
    "grade of 5000 digits": beir(["test.tsv:2", "'score'", "32-bit"],
                                 qrels=qrels_line("q1\td1\t" + "9" * 5000)),
    "grade exponent": beir(["test.tsv:2", "'score'", "'1e0'"], qrels=qrels_line("q1\td1\t1e0")),
    "grade padded": beir(["test.tsv:2", "'score'", "' 1'"], qrels=qrels_line("q1\td1\t 1")),
    # 3. lone surrogates (invalid Unicode) in text, title, ids, metadata, pairs
    "surrogate in text": beir(["corpus.jsonl:1", "'text'", "lone surrogate U+D800", "pair"],
                              corpus=corpus_with('{"_id": "d1", "text": "a\\ud800b"}')),
    "surrogate in title": beir(["corpus.jsonl:1", "'title'", "lone surrogate U+DC00"],
                               corpus=corpus_with('{"_id": "d1", "title": "\\udc00", "text": ""}')),
    "surrogate in id": beir(["queries.jsonl:1", "'_id'", "lone surrogate U+DFFF"],
                            queries=raw_jsonl('{"_id": "q\\udfff", "text": "t"}',
                                              json.dumps(QUERIES[1]))),
    "surrogate in metadata": beir(["queries.jsonl:2", "'metadata'", "lone surrogate"],
                                  queries=raw_jsonl(json.dumps(QUERIES[0]),
                                                    '{"_id": "q2", "text": "t", '
                                                    '"metadata": {"k": "\\ud83d"}}')),
    "surrogate in pairs query": pairs("p.jsonl", raw_jsonl('{"query": "\\ud800", "positive": "p"}'),
                                      ["p.jsonl:1", "'query'", "lone surrogate"]),
    "surrogate in pairs positive": pairs("p.jsonl", raw_jsonl('{"query": "q", "positive": '
                                                              '["ok", "x\\udc00"]}'),
                                         ["p.jsonl:1", "'positive'", "lone surrogate"]),
    # 4. columns, keys and files
    "duplicate JSON key": beir(["corpus.jsonl:1", "'_id'", "twice"],
                               corpus=corpus_with('{"_id": "d1", "text": "x", "_id": "d9"}')),
    "duplicate CSV column": pairs("p.csv", "query,positive,positive\na,b,c\n",
                                  ["p.csv:1", "'positive'", "twice"]),
    "duplicate TSV column": pairs("p.tsv", "query\tpositive\tquery\na\tb\tc\n",
                                  ["p.tsv:1", "'query'", "twice"]),
    "duplicate Parquet column": _parquet_duplicate,
    "qrels split is a folder": _split_is_folder,
    "qrels split gzip": _gzip_split,
    "two splits of one name": _split_twice,
    "two corpus files by case": _two_cases,
    "gzip corpus": _gzip_corpus,
    "gzip next to missing corpus": _gzip_sibling,
    "gzip pairs by content": pairs("p.jsonl", gzip.compress(b'{"query": "a", "positive": "b"}\n'),
                                   ["p.jsonl", "gzip-compressed", "decompress"]),
    "gzip csv by content": pairs("p.csv", gzip.compress(b"query,positive\na,b\n"),
                                 ["p.csv", "gzip-compressed"]),
    "gzip parquet by content": pairs("p.parquet", gzip.compress(b"PAR1"),
                                     ["p.parquet", "gzip-compressed"]),
    "pairs .gz name": pairs("p.jsonl.gz", gzip.compress(b'{"query": "a", "positive": "b"}\n'),
                            ["p.jsonl.gz", "gzip-compressed", "decompress"]),
    "split name with a line break": lambda d: (
        "beir", make_beir(d / "bad", qrels={**QRELS, "de\nv": QRELS["train"]}),
        ["'de\\nv'", "split name", "line break", "rename"]),
    "split name with a trailing space": lambda d: (
        "beir", make_beir(d / "bad", qrels={**QRELS, "dev ": QRELS["train"]}),
        ["'dev '", "whitespace"]),
    "pairs file name with a line break": pairs("p\n.jsonl", raw_jsonl('{"query": "\\ud800", '
                                                                      '"positive": "p"}'),
                                               ["p\\n.jsonl", "lone surrogate"]),
    "corpus symlink loop": _symlink_loop("corpus.jsonl"),
    "queries broken symlink": _broken_link,
    "qrels split symlink loop": _qrels_entry_link("loop"),
    "qrels split broken symlink": _qrels_entry_link("broken"),
    "folder symlink loop": _root_loop,
    "pairs symlink loop": _pairs_loop,
}


@pytest.mark.parametrize("case", list(FAULTS.values()), ids=list(FAULTS))
def test_fault_is_one_line_with_hint_and_store_unchanged(case: Case, store: Store, tmp_path: Path,
                                                         base_snapshot: Any) -> None:
    kind, path, expect = case(tmp_path)
    importer = import_beir if kind == "beir" else import_pairs
    for project, replace in (("bad", False), ("base", True)):
        with pytest.raises(DataError) as info:
            importer(store, path, project, replace=replace)
        message = str(info.value)
        for part in expect:
            assert part in message, f"{part!r} not in {message!r}"
        assert info.value.hint, f"no hint on {message!r}"
        assert "\n" not in message
        message.encode("utf-8")  # printable: no lone surrogate reaches the terminal
    assert snapshot(store) == base_snapshot


@pytest.mark.parametrize("split, expect", [("a\nb", "line break"), ("\tx", "a tab"),
                                           ("x ", "whitespace")])
def test_pairs_split_name_is_one_printable_word(split: str, expect: str, tmp_path: Path) -> None:
    path = write(tmp_path / "p.jsonl", jsonl([{"query": "q", "positive": "p"}]))
    with pytest.raises(DataError, match="split name") as info:
        read_pairs(path, split=split)
    assert expect in str(info.value) and "\n" not in str(info.value)


def test_cli_fault_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_beir(tmp_path / "b", qrels=qrels_line("q1\td1\t99999999999"))
    code = main(["--workspace", str(tmp_path / "ws"), "import", "beir", str(root), "--project", "p"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "test.tsv:2: field 'score'" in err and "Traceback" not in err


# -- what is still accepted ----------------------------------------------------------------------
def test_upper_case_split_and_corpus_names_are_found(tmp_path: Path) -> None:
    root = make_beir(tmp_path / "b")
    (root / "corpus.jsonl").rename(root / "CORPUS.JSONL")
    write(root / "qrels" / "dev.TSV", HDR + "q1\td3\t1\n")
    data = read_beir(root)
    assert data.documents.num_rows == 3
    assert data.splits() == {"dev": {"queries": 1, "qrels": 1}, "test": {"queries": 2, "qrels": 3},
                             "train": {"queries": 1, "qrels": 1}}


def test_plain_grades_and_unusual_but_valid_ids_are_kept(tmp_path: Path) -> None:
    corpus = jsonl([{"_id": "dé-1", "text": "a"}, {"_id": "d/2:x", "text": "tab\there\nok"}])
    queries = jsonl([{"_id": "q1", "text": "line\nbreak"}, {"_id": "q2", "text": "x"}])
    qrels = {"test": HDR + "q1\tdé-1\t+2\nq1\td/2:x\t-1\nq2\tdé-1\t2147483647\nq2\td/2:x\t1.0\n"}
    data = read_beir(make_beir(tmp_path / "b", corpus=corpus, queries=queries, qrels=qrels))
    rows = sorted(zip(data.qrels["query_id"].to_pylist(), data.qrels["doc_id"].to_pylist(),
                      data.qrels["grade"].to_pylist()))
    assert rows == [("q1", "d/2:x", -1), ("q1", "dé-1", 2), ("q2", "d/2:x", 1),
                    ("q2", "dé-1", 2147483647)]
    assert data.documents["text"].to_pylist()[1] == "tab\there\nok"


def test_pairs_empty_query_id_cell_still_derives_an_id(tmp_path: Path) -> None:
    data = read_pairs(write(tmp_path / "p.csv", "query_id,query,positive\n,q,p\n"))
    assert data.queries["query_id"].to_pylist()[0].startswith("q")


# -- project names -----------------------------------------------------------------------------
@pytest.mark.parametrize("name, expect", [
    ("a\nb", "a line break"), ("a\tb", "a tab"), ("x\r", "a carriage return"),
    ("\x1b[31mred", "U+001B"), ("p\u2028q", "U+2028"), (" lead", "whitespace"),
    ("trail ", "whitespace"), ("", "empty"), ("x" * 201, "200 characters"),
])
def test_bad_project_names_refused_by_api_and_cli(name: str, expect: str, store: Store,
                                                  tmp_path: Path, base_snapshot: Any,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = make_beir(tmp_path / "b")
    with pytest.raises(EmbtuiError, match="project name") as info:
        import_beir(store, root, name)
    assert expect in str(info.value) and "\n" not in str(info.value)
    data = read_beir(root)
    with pytest.raises(EmbtuiError, match="project name"):  # the Python API's own write path
        store.save_project(name, documents=data.documents, queries=data.queries,
                           qrels=data.qrels)
    code = main(["--workspace", str(store.ws.root), "import", "beir", str(root), "--project", name])
    err = capsys.readouterr().err
    assert code == 2 and expect in err and err.count("\n") == 1
    assert snapshot(store) == base_snapshot


def test_project_name_with_inner_space_is_fine(store: Store, tmp_path: Path) -> None:
    import_beir(store, make_beir(tmp_path / "b"), "my project")
    assert "my project" in [p.name for p in store.list_projects()]


# -- import --replace while jobs of the project are in flight --------------------------------------
def _queued_job(store: Store, project: str) -> str:
    from embtui.engine.evaluate import EvalRequest
    from embtui.engine.models import resolve_spec
    from embtui.jobs import submit_eval

    return submit_eval(store.ws.root, EvalRequest(project=project, model=resolve_spec("bm25", store)),
                       start=False)


def test_replace_refused_while_a_job_is_queued_then_allowed_after_cancel(
        store: Store, tmp_path: Path, base_snapshot: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    from embtui.jobs import cancel_job

    root = make_beir(tmp_path / "b", corpus=jsonl(CORPUS + [{"_id": "d4", "text": "delta"}]))
    job = _queued_job(store, "base")
    before = snapshot(store)
    with pytest.raises(EmbtuiError) as info:
        import_beir(store, root, "base", replace=True)
    message = str(info.value)
    assert f"{job} (queued)" in message and f"embtui jobs cancel {job}" in message
    data = read_beir(root)  # the store's own check, inside its transaction
    with pytest.raises(EmbtuiError, match="queued or running"):
        store.save_project("base", documents=data.documents, queries=data.queries,
                           qrels=data.qrels, replace=True)
    code = main(["--workspace", str(store.ws.root), "import", "beir", str(root), "--project",
                 "base", "--replace"])
    err = capsys.readouterr().err
    assert code == 2 and f"embtui jobs cancel {job}" in err and err.count("\n") == 1
    assert snapshot(store) == before
    # another project's job does not block, and a cancelled one no longer does
    import_beir(store, root, "other")
    cancel_job(store.ws.root, job)
    assert import_beir(store, root, "base", replace=True).documents == 4


def test_replace_refused_while_a_job_runs_and_its_run_survives(store: Store, tmp_path: Path) -> None:
    job = _queued_job(store, "base")
    js = JobStore(store.ws)
    pid = os.getpid()  # a live process stands in for the worker (no model work is needed)
    assert js.set_worker(job, pid, "localhost") and js.claim(job, pid)
    run_id = store.create_run("base", "test", "bm25", model_spec={"name": "bm25"}, model_fingerprint=None,
                              device="cpu", index_config={}, versions={}, job_id=job)
    root = make_beir(tmp_path / "b")
    with pytest.raises(EmbtuiError, match=rf"{job} \(running\)"):
        import_beir(store, root, "base", replace=True)
    with pytest.raises(EmbtuiError, match="cannot delete project 'base'"):
        store.delete_project("base")
    assert store.get_run(run_id).status == "running"
    assert js.finish(job, pid, "done")
    import_beir(store, root, "base", replace=True)
    assert [r.id for r in store.list_runs("base")] == []

