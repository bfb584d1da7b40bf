"""Importers: BEIR folders and pairs files, their validation errors, and all-or-nothing writes."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embtui.data.beir import import_beir, read_beir
from embtui.data.pairs import doc_id_for, import_pairs, query_id_for, read_pairs
from embtui.data.validate import ImportReport
from embtui.errors import DataError, EmbtuiError
from embtui.store.api import Store

SCIFACT = Path(__file__).resolve().parents[2] / "shared/datasets/scifact"

CORPUS = [
    {"_id": "d1", "title": "Alpha", "text": "alpha text", "metadata": {"ignored": True}},
    {"_id": "d2", "text": "beta text"},
    {"_id": "d3", "title": "Gamma", "text": "gamma text"},
]
QUERIES = [
    {"_id": "q1", "text": "what is alpha", "metadata": {"lang": "en", "tags": ["a"]}},
    {"_id": "q2", "text": "what is beta"},
]
QRELS = {
    "test": "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq2\td2\t2\n",
    "train": "query-id\tcorpus-id\tscore\nq2\td3\t1\n",
}


def jsonl(rows: list[Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def make_beir(root: Path, *, corpus: str | bytes | None = None, queries: str | bytes | None = None,
              qrels: dict[str, str | bytes] | None = None) -> Path:
    write(root / "corpus.jsonl", jsonl(CORPUS) if corpus is None else corpus)
    write(root / "queries.jsonl", jsonl(QUERIES) if queries is None else queries)
    for split, text in (QRELS if qrels is None else qrels).items():
        write(root / "qrels" / f"{split}.tsv", text)
    return root


# -- a workspace holding the valid project "base", built once and copied per test ---------------
@pytest.fixture(scope="module")
def base_workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A workspace holding the valid project "base", and its snapshot."""
    root = tmp_path_factory.mktemp("base")
    store = Store.open(root / "ws")
    import_beir(store, make_beir(root / "beir"), "base")
    return root / "ws", snapshot(store)


@pytest.fixture
def base_snapshot(base_workspace: tuple[Path, Any]) -> Any:
    return base_workspace[1]


@pytest.fixture
def store(base_workspace: tuple[Path, Any], tmp_path: Path) -> Store:
    """A byte copy of the base workspace (already migrated, so no need to open() it)."""
    shutil.copytree(base_workspace[0], tmp_path / "ws")
    return Store(tmp_path / "ws")


def documents(store: Store, project: str) -> list[tuple[str, str, str]]:
    """(doc_id, title, text) rows of a project, by doc_id.

    Read with plain SQL rather than ``Store.corpus`` so these tests only depend on the tables.
    """
    with store.ws.connect() as con:
        return con.execute(
            """SELECT d.doc_id, d.title, d.text FROM documents d JOIN projects p
               ON p.id = d.project_id WHERE p.name = ? ORDER BY d.doc_id""", [project]
        ).fetchall()


def snapshot(store: Store) -> tuple[Any, ...]:
    """Everything an import can touch: list_projects() plus every row of the data tables."""
    projects = [(p.id, p.to_dict()) for p in store.list_projects()]
    with store.ws.connect() as con:
        tables = tuple(
            con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
            for t in ("projects", "documents", "queries", "qrels")
        )
    return projects, tables


# -- malformed input ------------------------------------------------------------------------------
# Each case builds bad input under `d` and returns (kind, path, substrings the message must have).
Case = Callable[[Path], tuple[str, Path, list[str]]]
HDR = "query-id\tcorpus-id\tscore\n"


def beir(expect: list[str], **kw: Any) -> Case:
    return lambda d: ("beir", make_beir(d / "bad", **kw), expect)


def _missing(name: str) -> Case:
    def case(d: Path) -> tuple[str, Path, list[str]]:
        root = make_beir(d / "bad")
        target = root / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        return "beir", root, [name]
    return case


def _no_tsv(d: Path) -> tuple[str, Path, list[str]]:
    root = make_beir(d / "bad", qrels={})
    (root / "qrels").mkdir()
    write(root / "qrels" / "README.txt", "nothing here")
    return "beir", root, ["qrels", ".tsv"]


def pairs(name: str, content: str | bytes, expect: list[str]) -> Case:
    return lambda d: ("pairs", write(d / name, content), expect)


def parquet(name: str, table: pa.Table, expect: list[str]) -> Case:
    def case(d: Path) -> tuple[str, Path, list[str]]:
        pq.write_table(table, d / name)
        return "pairs", d / name, expect
    return case


C1 = jsonl(CORPUS)
Q1 = jsonl(QUERIES)

MALFORMED: dict[str, Case] = {
    # folder layout
    "missing folder": lambda d: ("beir", d / "nowhere", ["nowhere", "not found"]),
    "folder is a file": lambda d: ("beir", write(d / "plain.jsonl", C1),
                                   ["plain.jsonl", "not a folder"]),
    "missing corpus": _missing("corpus.jsonl"),
    "missing queries": _missing("queries.jsonl"),
    "missing qrels folder": _missing("qrels"),
    "no tsv in qrels": _no_tsv,
    # corpus.jsonl / queries.jsonl
    "empty corpus": beir(["corpus.jsonl", "empty"], corpus=""),
    "blank-only queries": beir(["queries.jsonl", "empty"], queries="\n  \n\n"),
    "malformed JSON": beir(["corpus.jsonl:2", "malformed JSON", "column"],
                           corpus=C1.replace('"_id": "d2"', '"_id": "d2",,', 1)),
    "line not an object": beir(["queries.jsonl:2", "JSON object", "a list"],
                               queries=jsonl([QUERIES[0], ["q2", "text"]])),
    "missing _id": beir(["corpus.jsonl:3", "'_id'", "missing"],
                        corpus=jsonl(CORPUS[:2] + [{"text": "gamma text"}])),
    "missing query text": beir(["queries.jsonl:2", "'text'", "missing"],
                               queries=jsonl([QUERIES[0], {"_id": "q2"}])),
    "empty _id": beir(["corpus.jsonl:1", "'_id'", "empty"],
                      corpus=jsonl([{"_id": " ", "text": "x"}] + CORPUS[1:])),
    "_id is a list": beir(["queries.jsonl:1", "'_id'", "a list"],
                          queries=jsonl([{"_id": ["q1"], "text": "x"}, QUERIES[1]])),
    "_id is a boolean": beir(["corpus.jsonl:2", "'_id'", "a boolean"],
                             corpus=jsonl([CORPUS[0], {"_id": True, "text": "x"}, CORPUS[2]])),
    "_id is a fraction": beir(["corpus.jsonl:2", "'_id'", "1.5"],
                              corpus=jsonl([CORPUS[0], {"_id": 1.5, "text": "x"}, CORPUS[2]])),
    "text not a string": beir(["corpus.jsonl:2", "'text'", "a number"],
                              corpus=jsonl([CORPUS[0], {"_id": "d2", "text": 7}, CORPUS[2]])),
    "title not a string": beir(["corpus.jsonl:1", "'title'", "an object"],
                               corpus=jsonl([{**CORPUS[0], "title": {"t": 1}}] + CORPUS[1:])),
    "metadata not an object": beir(["queries.jsonl:2", "'metadata'"],
                                   queries=jsonl([QUERIES[0], {**QUERIES[1], "metadata": "x"}])),
    "duplicate doc id": beir(["corpus.jsonl:3", "'_id'", "duplicate", "'d1'", "line 1"],
                             corpus=jsonl(CORPUS[:2] + [{**CORPUS[2], "_id": "d1"}])),
    "duplicate query id": beir(["queries.jsonl:3", "'_id'", "duplicate", "'q2'", "line 2"],
                               queries=jsonl(QUERIES + [{"_id": "q2", "text": "again"}])),
    "bad UTF-8 in corpus": beir(["corpus.jsonl:2", "UTF-8", "0xe9"],
                                corpus=C1.encode().replace(b"beta", b"b\xe9ta")),
    # qrels
    "qrels empty": beir(["test.tsv", "empty"], qrels={"test": ""}),
    "qrels header only": beir(["test.tsv", "no judgments"], qrels={"test": HDR}),
    "qrels wrong header": beir(["test.tsv:1", "header"],
                               qrels={"test": "q\td\ts\nq1\td1\t1\n"}),
    "qrels no header": beir(["train.tsv:1", "header"],
                            qrels={"test": QRELS["test"], "train": "q1\td1\t1\n"}),
    "qrels column count": beir(["test.tsv:3", "3 tab-separated", "found 2"],
                               qrels={"test": HDR + "q1\td1\t1\nq2\td2\n"}),
    "qrels space separated": beir(["test.tsv:2", "found 1"],
                                  qrels={"test": HDR + "q1 d1 1\n"}),
    "qrels fractional score": beir(["test.tsv:3", "'score'", "1.5"],
                                   qrels={"test": HDR + "q1\td1\t1\nq2\td2\t1.5\n"}),
    "qrels text score": beir(["train.tsv:2", "'score'", "'x'"],
                             qrels={"test": QRELS["test"], "train": HDR + "q2\td3\tx\n"}),
    "qrels unknown query": beir(["test.tsv:4", "'query-id'", "'q9'", "queries.jsonl"],
                                qrels={"test": HDR + "q1\td1\t1\nq2\td2\t1\nq9\td1\t1\n"}),
    "qrels unknown doc": beir(["test.tsv:2", "'corpus-id'", "'d9'", "corpus.jsonl"],
                              qrels={"test": HDR + "q1\td9\t1\n"}),
    "qrels conflicting grades": beir(["test.tsv:3", "'score'", "line 2"],
                                     qrels={"test": HDR + "q1\td1\t1\nq1\td1\t0\n"}),
    "qrels bad UTF-8": beir(["test.tsv:3", "UTF-8"],
                            qrels={"test": HDR.encode() + b"q1\td1\t1\nq2\td\xff2\t1\n"}),
    # pairs files
    "pairs unknown extension": pairs("p.txt", "query,positive\na,b\n",
                                     ["p.txt", ".txt", "unknown"]),
    "pairs missing file": lambda d: ("pairs", d / "absent.jsonl", ["absent.jsonl", "not found"]),
    "pairs empty jsonl": pairs("p.jsonl", "", ["p.jsonl", "empty"]),
    "pairs empty csv": pairs("p.csv", "", ["p.csv", "empty"]),
    "pairs header only": pairs("p.csv", "query,positive\n", ["p.csv", "no rows"]),
    "pairs malformed JSON": pairs("p.ndjson", '{"query": "a", "positive": "b"}\n{"query": "a"\n',
                                  ["p.ndjson:2", "malformed JSON"]),
    "pairs jsonl missing query": pairs("p.jsonl", jsonl([{"query": "a", "positive": "b"},
                                                         {"positive": "c"}]),
                                       ["p.jsonl:2", "'query'", "missing"]),
    "pairs jsonl missing positive": pairs("p.jsonl", jsonl([{"query": "a", "negative": "b"}]),
                                          ["p.jsonl:1", "'positive'", "missing"]),
    "pairs csv missing positive": pairs("p.csv", "query,pos\na,b\n",
                                        ["p.csv:1", "'positive'", "header"]),
    "pairs empty query": pairs("p.jsonl", jsonl([{"query": "a", "positive": "b"},
                                                 {"query": "  ", "positive": "c"}]),
                               ["p.jsonl:2", "'query'", "empty"]),
    "pairs csv empty positive": pairs("p.csv", "query,positive\na,b\nc,\n",
                                      ["p.csv:3", "'positive'", "empty"]),
    "pairs query wrong type": pairs("p.jsonl", jsonl([{"query": 5, "positive": "b"}]),
                                    ["p.jsonl:1", "'query'", "a number"]),
    "pairs positive wrong type": pairs("p.jsonl", jsonl([{"query": "a", "positive": {"t": 1}}]),
                                       ["p.jsonl:1", "'positive'", "an object"]),
    "pairs list item wrong type": pairs("p.jsonl", jsonl([{"query": "a", "positive": ["b", 3]}]),
                                        ["p.jsonl:1", "'positive'", "a number"]),
    "pairs empty positive list": pairs("p.jsonl", jsonl([{"query": "a", "positive": []}]),
                                       ["p.jsonl:1", "'positive'", "empty"]),
    "pairs pos and neg same row": pairs("p.jsonl", jsonl([{"query": "a", "positive": "b",
                                                           "negative": ["c", "b"]}]),
                                        ["p.jsonl:1", "'negative'", "both a positive"]),
    "pairs pos and neg across rows": pairs(
        "p.tsv", "query\tpositive\tnegative\na\tb\t\nx\ty\t\na\tc\tb\n",
        ["p.tsv:4", "'negative'", "line 2"]),
    "pairs csv column count": pairs("p.csv", 'query,positive\na,b\n"c, d",e,f\n',
                                    ["p.csv:3", "expected 2 columns", "found 3"]),
    "pairs csv line after multi-line field": pairs(
        "p.csv", 'query,positive\n"multi\nline\nquery",b\nc,\n', ["p.csv:5", "'positive'"]),
    "pairs csv bad UTF-8": pairs("p.csv", b"query,positive\na,b\nc,d\xe9\n", ["p.csv:3", "UTF-8"]),
    "pairs query_id text conflict": pairs(
        "p.jsonl", jsonl([{"query_id": "7", "query": "a", "positive": "b"},
                          {"query_id": 7, "query": "z", "positive": "c"}]),
        ["p.jsonl:2", "'query_id'", "line 1"]),
    "parquet missing column": parquet("p.parquet", pa.table({"query": ["a"], "pos": ["b"]}),
                                      ["p.parquet", "'positive'"]),
    "parquet wrong type": parquet("p.parquet", pa.table({"query": ["a", "b"], "positive": [1, 2]}),
                                  ["p.parquet:1", "'positive'", "row 1"]),
    "parquet null query": parquet("p.parquet", pa.table({"query": ["a", None],
                                                         "positive": [["b"], ["c", "d"]]}),
                                  ["p.parquet:2", "'query'", "row 2"]),
    "parquet garbage": pairs("p.parquet", b"not parquet at all", ["p.parquet", "Parquet"]),
}


@pytest.mark.parametrize("case", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_input_is_refused_and_store_unchanged(case: Case, store: Store, tmp_path: Path,
                                                       base_snapshot: Any) -> None:
    kind, path, expect = case(tmp_path)
    before = base_snapshot  # the snapshot of the workspace this store is a byte copy of
    assert [p[1]["name"] for p in before[0]] == ["base"] and len(before[1][1]) == 3
    importer = import_beir if kind == "beir" else import_pairs
    for project, replace in (("bad", False), ("base", True)):
        with pytest.raises(DataError) as info:
            importer(store, path, project, replace=replace)
        message = str(info.value)
        for part in expect:
            assert part in message, f"{part!r} not in {message!r}"
        assert info.value.hint, f"no hint on {message!r}"
    assert snapshot(store) == before


def test_malformed_case_count() -> None:
    assert len(MALFORMED) >= 20


def test_error_names_field_and_line_attributes(tmp_path: Path) -> None:
    root = make_beir(tmp_path / "b", qrels={"test": HDR + "q1\td1\tx\n"})
    with pytest.raises(DataError) as info:
        read_beir(root)
    err = info.value
    assert err.file.endswith("test.tsv") and err.line == 2 and err.field == "score"
    assert err.hint


# -- BEIR happy path ------------------------------------------------------------------------------
def test_beir_round_trip(store: Store, tmp_path: Path) -> None:
    numeric = json.dumps({"_id": 123, "title": None, "text": "numeric id"})
    corpus = "\ufeff" + C1 + "\n   \n" + numeric + "\r\n"  # BOM, blank lines, CRLF
    root = make_beir(tmp_path / "b", corpus=corpus,
                     qrels={**QRELS, "dev": HDR + "q1\t123\t1.0\r\n\n"})
    report = import_beir(store, root, "mine")
    assert isinstance(report, ImportReport)
    assert (report.project, report.documents, report.queries) == ("mine", 4, 2)
    assert report.splits == {"dev": {"queries": 1, "qrels": 1},
                             "test": {"queries": 2, "qrels": 3},
                             "train": {"queries": 1, "qrels": 1}}
    assert report.warnings == ()
    assert "mine" in report.summary() and "test 2 queries / 3 judgments" in report.summary()

    assert documents(store, "mine") == [("123", "", "numeric id"), ("d1", "Alpha", "alpha text"),
                                        ("d2", "", "beta text"), ("d3", "Gamma", "gamma text")]
    assert store.qrels("mine", "test") == {"q1": {"d1": 1, "d2": 0}, "q2": {"d2": 2}}
    assert store.qrels("mine", "train") == {"q2": {"d3": 1}}
    assert store.qrels("mine", "dev") == {"q1": {"123": 1}}
    assert store.queries("mine") == {"q1": "what is alpha", "q2": "what is beta"}
    assert store.query_metadata("mine") == {"q1": {"lang": "en", "tags": ["a"]}, "q2": {}}
    info = store.get_project("mine")
    assert info.dataset_hash == report_hash(root) and info.source.startswith("beir:")
    assert info.splits["test"] == {"queries": 2, "qrels": 3, "relevant": 2}


def report_hash(root: Path) -> str:
    return read_beir(root).dataset_hash


def test_beir_warnings(tmp_path: Path) -> None:
    root = make_beir(
        tmp_path / "b",
        corpus=jsonl(CORPUS + [{"_id": "e", "title": " ", "text": ""}]),
        queries=jsonl(QUERIES + [{"_id": "lonely", "text": "no judgments"}]),
    )
    data = read_beir(root)
    assert len(data.warnings) == 2
    assert any("1 queries have no judgments" in w and "lonely" in w for w in data.warnings)
    assert any("empty" in w and "e" in w for w in data.warnings)
    report = data.report("p")
    assert "2 warning(s)" in report.summary()


def test_beir_repeated_identical_judgment_is_kept_once(tmp_path: Path) -> None:
    root = make_beir(tmp_path / "b", qrels={"test": HDR + "q1\td1\t1\nq1\td1\t1\nq2\td2\t1\n"})
    data = read_beir(root)
    assert data.qrels.num_rows == 2
    assert any("repeated" in w for w in data.warnings)


def test_existing_project_refused_then_replaced(store: Store, tmp_path: Path) -> None:
    before = snapshot(store)
    root = make_beir(tmp_path / "b", corpus=jsonl(CORPUS + [{"_id": "d4", "text": "delta"}]))
    with pytest.raises(EmbtuiError, match="already exists"):
        import_beir(store, root, "base")
    assert snapshot(store) == before
    report = import_beir(store, root, "base", replace=True)
    assert report.documents == 4
    assert len(documents(store, "base")) == 4
    assert [p.name for p in store.list_projects()] == ["base"]


def test_dataset_hash_stable_and_content_sensitive(tmp_path: Path) -> None:
    a = read_beir(make_beir(tmp_path / "a")).dataset_hash
    assert a == read_beir(make_beir(tmp_path / "a2")).dataset_hash
    # line order does not matter
    assert a == read_beir(make_beir(tmp_path / "a3", corpus=jsonl(CORPUS[::-1]))).dataset_hash
    changed = [dict(CORPUS[0], text="alpha text!")] + CORPUS[1:]
    assert a != read_beir(make_beir(tmp_path / "b", corpus=jsonl(changed))).dataset_hash
    regraded = {**QRELS, "test": QRELS["test"].replace("q2\td2\t2", "q2\td2\t1")}
    assert a != read_beir(make_beir(tmp_path / "c", qrels=regraded)).dataset_hash
    assert len(a) == 64


# -- pairs happy paths ----------------------------------------------------------------------
def test_pairs_jsonl_dedup_merge_and_negatives(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "p.jsonl", jsonl([
        {"query": "what is a cat", "positive": "A cat is an animal.", "negative": ["A car."]},
        {"query": "what is a cat ", "positive": ["Cats purr.", "A cat is an animal."]},
        {"query": "what is a dog", "positive": "Dogs bark.", "negative": "A car."},
        {"query_id": "custom", "query": "fish?", "positive": "Fish swim.", "negative": None},
    ]) + "\n")
    report = import_pairs(store, path, "pairs", split="dev")
    assert (report.documents, report.queries) == (5, 3)
    assert report.splits == {"dev": {"queries": 3, "qrels": 6}}
    cat, dog = query_id_for("what is a cat"), query_id_for("what is a dog")
    assert cat.startswith("q") and len(cat) == 13
    assert store.queries("pairs") == dict(sorted({cat: "what is a cat", dog: "what is a dog",
                                                  "custom": "fish?"}.items()))
    qrels = store.qrels("pairs", "dev")
    animal, car = doc_id_for("A cat is an animal."), doc_id_for("A car.")
    assert qrels[cat] == {animal: 1, doc_id_for("Cats purr."): 1, car: 0}
    assert qrels[dog] == {doc_id_for("Dogs bark."): 1, car: 0}
    assert qrels["custom"] == {doc_id_for("Fish swim."): 1}
    docs = store.documents("pairs", [animal, car])
    assert docs == {animal: ("", "A cat is an animal."), car: ("", "A car.")}


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_pairs_csv_and_tsv(tmp_path: Path, suffix: str) -> None:
    sep = "\t" if suffix == ".tsv" else ","
    path = tmp_path / f"p{suffix}"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter=sep)
        w.writerow(["query_id", "query", "positive", "negative", "extra"])
        w.writerow(["", "q one", 'He said "hi", twice\nand left', "", "x"])
        w.writerow(["", "", "", "", ""])  # spreadsheets export blank rows like this
        w.writerow(["", "q one", "second positive", "a negative", "x"])
        w.writerow(["9", "q two", "second positive", "", ""])
    data = read_pairs(path)
    assert data.splits() == {"train": {"queries": 2, "qrels": 4}}
    assert sorted(data.documents["text"].to_pylist()) == sorted(
        ['He said "hi", twice\nand left', "second positive", "a negative"])
    grades = {(q, d): g for q, d, g in zip(data.qrels["query_id"].to_pylist(),
                                           data.qrels["doc_id"].to_pylist(),
                                           data.qrels["grade"].to_pylist())}
    assert grades[(query_id_for("q one"), doc_id_for("a negative"))] == 0
    assert grades[("9", doc_id_for("second positive"))] == 1
    assert data.queries["metadata"].to_pylist() == [None, None]


def test_pairs_parquet_with_lists(store: Store, tmp_path: Path) -> None:
    table = pa.table({
        "query": ["a?", "b?", "a?"],
        "positive": [["x", "y"], ["z"], ["x"]],
        "negative": [["w"], None, []],
    })
    pq.write_table(table, tmp_path / "p.parquet")
    report = import_pairs(store, tmp_path / "p.parquet", "pq")
    assert (report.documents, report.queries) == (4, 2)
    assert report.splits == {"train": {"queries": 2, "qrels": 4}}
    assert store.qrels("pq", "train")[query_id_for("a?")][doc_id_for("w")] == 0
    plain = pa.table({"query": ["a?"], "positive": ["x"]})
    pq.write_table(plain, tmp_path / "plain.parquet")
    assert read_pairs(tmp_path / "plain.parquet").qrels.num_rows == 1


def test_pairs_hash_independent_of_format(tmp_path: Path) -> None:
    rows = [{"query": "a?", "positive": "x", "negative": "y"}, {"query": "b?", "positive": "z"}]
    j = write(tmp_path / "p.jsonl", jsonl(rows))
    c = write(tmp_path / "p.csv", "query,positive,negative\na?,x,y\nb?,z,\n")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "p.parquet")
    hashes = {read_pairs(p).dataset_hash for p in (j, c, tmp_path / "p.parquet")}
    assert len(hashes) == 1
    assert read_pairs(j, split="other").dataset_hash not in hashes


# -- real data (optional) -------------------------------------------------------------------
@pytest.mark.skipif(not (SCIFACT / "corpus.jsonl").exists(), reason="SciFact not available")
def test_scifact_counts(store: Store) -> None:
    data = read_beir(SCIFACT)
    assert data.documents.num_rows == 5183
    assert data.queries.num_rows == 1109
    assert data.splits() == {"test": {"queries": 300, "qrels": 339},
                             "train": {"queries": 809, "qrels": 919}}
    assert data.warnings == ()
    report = import_beir(store, SCIFACT, "scifact")
    assert (report.documents, report.queries) == (5183, 1109)
    info = store.get_project("scifact")
    assert (info.documents, info.queries, info.dataset_hash) == (5183, 1109, data.dataset_hash)
    assert info.splits["test"] == {"queries": 300, "qrels": 339, "relevant": 339}
    assert info.splits["train"] == {"queries": 809, "qrels": 919, "relevant": 919}
