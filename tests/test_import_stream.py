"""The streamed BEIR import (DuckDB reads corpus.jsonl inside the project's transaction) stores and
hashes exactly what the line-by-line reader parses, refuses what it refuses, and leaves nothing
behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embtui.data.beir import import_beir, read_beir
from embtui.errors import DataError
from embtui.store.api import Store
from tests.test_import import CORPUS, QRELS, QUERIES, documents, jsonl, make_beir, snapshot

# every character class the JSON writers could disagree on: controls (escaped), DEL, C1, quotes,
# backslashes before escapes, the line separators, BMP and astral characters
TRICKY = ["".join(chr(c) for c in range(0x00, 0x80)), "".join(chr(c) for c in range(0x80, 0x800)),
          "\\u000B literal \\\\\x0b \\\x1f \x1a\x1b", "\u2028\u2029\ufeff\ufffd\uffff", "😀𝔘\U0010ffff",
          '"quoted" \\ back/slash', "\x0bstart", "end\x1f", "é" * 50]


def _corpus() -> list[dict]:
    docs = [dict(d) for d in CORPUS]
    for i, text in enumerate(TRICKY):
        docs.append({"_id": f"t{i}", "title": text[::-1], "text": text})
    for i in range(7):  # seven empty documents: the warning shows five and "..."
        docs.append({"_id": f"e{i}", "title": " \u3000" if i % 2 else None, "text": "\u2003\n\t"})
    docs.append({"_id": 42, "text": "a numeric id"})
    return docs


def test_streamed_import_equals_the_in_memory_reader(store: Store, tmp_path: Path) -> None:
    root = make_beir(tmp_path / "b", corpus=jsonl(_corpus()))
    data = read_beir(root)
    report = import_beir(store, root, "s")
    assert store.get_project("s").dataset_hash == data.dataset_hash
    want = sorted(zip(*(data.documents[c].to_pylist() for c in ("doc_id", "title", "text"))))
    assert documents(store, "s") == want
    assert report.warnings == data.warnings
    assert any("7 documents are empty" in w and ", ..." in w for w in report.warnings)
    assert report.splits == data.splits() and report.documents == len(want)
    assert not list(store.ws.root.glob(".import-*"))


def test_a_false_alarm_is_imported_from_the_python_rows(store: Store, tmp_path: Path) -> None:
    # DuckDB types 1e2 as a DOUBLE and refuses NaN: the line-by-line reader accepts both
    corpus = jsonl(CORPUS) + '{"_id": 1e2, "text": "x", "score": NaN}\n'
    root = make_beir(tmp_path / "b", corpus=corpus)
    import_beir(store, root, "f")
    assert ("100", "", "x") in documents(store, "f")
    assert store.get_project("f").dataset_hash == read_beir(root).dataset_hash


@pytest.mark.parametrize("line, expect", [
    ('{"_id": "d1", "text": "x"}', ["corpus.jsonl:4", "duplicate document id 'd1'", "line 1"]),
    ('{"_id": "d\\u00a0", "text": "x"}', ["corpus.jsonl:4", "non-breaking space"]),
    ('{"_id": "d9", "text": ["x"]}', ["corpus.jsonl:4", "'text'", "a list"]),
    ('{"_id": "d9", "text": "x", "title": 5}', ["corpus.jsonl:4", "'title'", "a number"]),
    ('{"_id": "d9", "text": null}', ["corpus.jsonl:4", "'text'", "null"]),
    ('{"_id": "d9"}', ["corpus.jsonl:4", "'text'", "missing"]),
    ('{"_id": "d9", "text": "x", "_id": "d8"}', ["corpus.jsonl:4", "'_id'", "twice"]),
    ('{"_id": "d9", "text": "x"\x0b}', ["corpus.jsonl:4", "malformed JSON"]),
    ('{"_id": "d9", "text": "a\\ud800"}', ["corpus.jsonl:4", "lone surrogate"]),
])
def test_late_faults_name_their_line_and_roll_back(line: str, expect: list[str], store: Store,
                                                    tmp_path: Path) -> None:
    import_beir(store, make_beir(tmp_path / "ok"), "base")
    before = snapshot(store)
    root = make_beir(tmp_path / "b", corpus=jsonl(CORPUS) + line + "\n")
    for project, replace in (("new", False), ("base", True)):
        with pytest.raises(DataError) as info:
            import_beir(store, root, project, replace=replace)
        for part in expect:
            assert part in str(info.value), (part, str(info.value))
    assert snapshot(store) == before
    assert not list(store.ws.root.glob(".import-*"))


def test_a_qrels_fault_after_the_corpus_loaded_leaves_the_store_as_it_was(store: Store,
                                                                        tmp_path: Path) -> None:
    import_beir(store, make_beir(tmp_path / "ok"), "base")
    before = snapshot(store)
    root = make_beir(tmp_path / "b", qrels={**QRELS, "dev": "query-id\tcorpus-id\tscore\nq1\tnope\t1\n"})
    with pytest.raises(DataError, match=r"dev.tsv:2.*'nope' is not in corpus.jsonl"):
        import_beir(store, root, "base", replace=True)
    assert snapshot(store) == before
    assert json.loads(json.dumps(QUERIES))  # the fixtures are untouched


def test_a_valid_corpus_takes_the_fast_path(store: Store, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The line-by-line reader runs only on a problem: a valid corpus (numeric and string ids,
    null and absent titles, every tricky character) never reaches it."""
    import embtui.data.beir as beir

    def refuse(path):  # pragma: no cover - reached only if the fast path fell back
        raise AssertionError(f"the Python reader ran on {path}")

    monkeypatch.setattr(beir, "_read_corpus", refuse)
    root = make_beir(tmp_path / "b", corpus=jsonl(_corpus()))
    assert import_beir(store, root, "fast").documents == len(_corpus())
