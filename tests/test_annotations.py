"""Annotations and the qrels overlay: add/list/filter/delete, survival across re-runs, corrected metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from embtui.cli import main
from embtui.api.judgments import mark_relevant
from embtui.engine.compare import compare_runs, corrected_metrics
from embtui.errors import EmbtuiError, NotFound
from embtui.store.annotations import BUILTIN_LABELS, MISSING_LABEL
from tests.conftest import DEMO


def bm25(store: Any, project: str, name: str = "bm25", **params: Any) -> int:
    from embtui.engine.evaluate import EvalRequest, run_evaluation
    from embtui.engine.models import ModelSpec

    return run_evaluation(store, EvalRequest(project=project, model=ModelSpec(
        model="bm25", name=name, bm25=params))).run.id


@pytest.fixture()
def tiny(store: Any) -> tuple[Any, int]:
    """Two queries, four documents, one BM25 run whose rankings are checked below (hand-made case)."""
    docs = pa.table({"doc_id": ["d1", "d2", "d3", "d4"], "title": [""] * 4,
                     "text": ["apple banana cherry grape", "apple pie", "cherry tart", "melon"]})
    queries = pa.table({"query_id": ["q1", "q2"], "text": ["apple", "cherry"], "metadata": [None, None]})
    qrels = pa.table({"split": ["test", "test"], "query_id": ["q1", "q2"], "doc_id": ["d1", "d3"],
                      "grade": [1, 1]})
    store.save_project("tiny", documents=docs, queries=queries, qrels=qrels)
    run_id = bm25(store, "tiny")
    ranked = {q: [d for d, _ in row] for q, row in store.run_rankings(run_id).items()}
    # BM25 puts the short "apple pie" above the judged d1 for q1; q2's judged d3 is first.
    assert ranked["q1"][:2] == ["d2", "d1"] and ranked["q2"][0] == "d3"
    return store, run_id


def test_add_list_filter_delete(demo_store: Any) -> None:
    ann = demo_store.annotations
    a = ann.add("demo", "5", "Negation", note="'no' flips the claim")  # built-ins match any case
    b = ann.add("demo", "5", MISSING_LABEL, doc_id="13734012")
    c = ann.add("demo", "24", "numbers")
    d = ann.add("demo", "24", "  needs   domain expert ")  # a free label, whitespace collapsed
    assert a.label == "negation" and a.doc_id is None and a.note == "'no' flips the claim"
    assert b.doc_id == "13734012" and d.label == "needs domain expert"
    assert {x.id for x in ann.find("demo")} == {a.id, b.id, c.id, d.id}
    assert [x.id for x in ann.find("demo", label="NEGATION")] == [a.id]
    assert [x.id for x in ann.find("demo", level="document")] == [b.id]
    assert {x.id for x in ann.find("demo", level="query")} == {a.id, c.id, d.id}
    assert {x.id for x in ann.find("demo", query_id="24")} == {c.id, d.id}
    assert ann.labels("demo") == {"missing label": 1, "needs domain expert": 1, "negation": 1, "numbers": 1}
    assert ann.query_labels("demo")["5"] == ("missing label", "negation")
    # the same label again updates the note instead of adding a row
    again = ann.add("demo", "5", "negation", note="changed")
    assert again.id == a.id and again.note == "changed" and len(ann.find("demo", label="negation")) == 1
    ann.delete(c.id)
    assert ann.remove("demo", "5", MISSING_LABEL, doc_id="13734012") == 1
    assert {x.id for x in ann.find("demo")} == {a.id, d.id}
    with pytest.raises(NotFound):
        ann.delete(c.id)
    assert set(BUILTIN_LABELS) >= {"missing label", "acronym", "negation", "numbers", "long document",
                                   "ambiguous query"}
    json.dumps([x.to_dict() for x in ann.find()])


def test_annotation_mistakes(demo_store: Any) -> None:
    ann = demo_store.annotations
    with pytest.raises(NotFound, match="no query with id 'nope'"):
        ann.add("demo", "nope", "acronym")
    with pytest.raises(NotFound, match="no document with id 'ghost'"):
        ann.add("demo", "5", "acronym", doc_id="ghost")
    with pytest.raises(NotFound, match="no project"):
        ann.add("elsewhere", "5", "acronym")
    with pytest.raises(EmbtuiError, match="must not be empty"):
        ann.add("demo", "5", "   ")
    with pytest.raises(EmbtuiError, match="split 'dev'"):
        ann.set_judgment("demo", "dev", "5", "13734012")
    with pytest.raises(EmbtuiError, match="grade"):
        ann.set_judgment("demo", "test", "5", "13734012", grade=-1)


def test_annotations_survive_new_runs_and_reimport(demo_store: Any) -> None:
    from embtui.data.beir import import_beir

    demo_store.annotations.add("demo", "5", "acronym")
    demo_store.annotations.set_judgment("demo", "test", "5", "13734012", 1)
    bm25(demo_store, "demo")
    import_beir(demo_store, DEMO, "demo", replace=True)  # a new project id; annotations keyed by name
    assert [a.label for a in demo_store.annotations.find("demo")] == ["acronym"]
    assert demo_store.annotations.overlay("demo", "test") == {"5": {"13734012": 1}}


def test_overlay_never_touches_imported_qrels(tiny: tuple[Any, int]) -> None:
    store, _ = tiny
    before = store.qrels("tiny", "test")
    j = store.annotations.set_judgment("tiny", "test", "q1", "d2", 1, note="pie is about apples")
    assert (j.grade, j.note) == (1, "pie is about apples")
    assert store.qrels("tiny", "test") == before == {"q1": {"d1": 1}, "q2": {"d3": 1}}
    assert store.corrected_qrels("tiny", "test") == {"q1": {"d1": 1, "d2": 1}, "q2": {"d3": 1}}
    store.annotations.set_judgment("tiny", "test", "q1", "d2", 2)  # replaces, does not add
    assert store.annotations.overlay("tiny", "test") == {"q1": {"d2": 2}}
    assert store.annotations.remove_judgment("tiny", "test", "q1", "d2") is True
    assert store.annotations.remove_judgment("tiny", "test", "q1", "d2") is False
    assert store.corrected_qrels("tiny", "test") == before


def test_corrected_metrics_on_a_hand_made_case(tiny: tuple[Any, int]) -> None:
    store, run_id = tiny
    stored = store.get_run(run_id).metrics
    # no overlay: re-scoring the stored rankings gives exactly the stored metrics
    assert corrected_metrics(store, run_id) == pytest.approx(stored)
    # imported judgments: q1's d1 at rank 2, q2's d3 at rank 1
    assert stored["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1) / 2)
    assert (stored["mrr@10"], stored["recall@1"], stored["p@1"]) == pytest.approx((0.75, 0.5, 0.5))

    # "d2 is actually relevant to q1": q1's relevant docs are now at ranks 1 and 2
    mark_relevant(store, run_id, "q1", "d2", note="apple pie is about apples")
    fixed = corrected_metrics(store, run_id)
    assert fixed["ndcg@10"] == pytest.approx(1.0) and fixed["mrr@10"] == pytest.approx(1.0)
    assert fixed["p@1"] == pytest.approx(1.0) and fixed["recall@1"] == pytest.approx((0.5 + 1) / 2)
    assert store.get_run(run_id).metrics == stored  # the run itself is unchanged
    (a,) = store.annotations.find("tiny")
    assert (a.query_id, a.doc_id, a.label, a.run_id) == ("q1", "d2", MISSING_LABEL, run_id)

    # a graded overlay judgment: d1 (rank 2) is highly relevant (2) to q2, whose d3 (rank 1) is 1
    store.annotations.set_judgment("tiny", "test", "q2", "d1", 2)
    q2 = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert corrected_metrics(store, run_id)["ndcg@10"] == pytest.approx((1.0 + q2) / 2)

    # comparisons can use the corrected judgments too
    other = bm25(store, "tiny", "bm25-flat", k1=0.3, b=0.1)
    plain = compare_runs(store, [run_id, other], "ndcg@10", n_resamples=500)
    fixed_cmp = compare_runs(store, [run_id, other], "ndcg@10", qrels_overlay=True, n_resamples=500)
    assert plain.means[run_id] == pytest.approx(stored["ndcg@10"])
    assert fixed_cmp.means[run_id] == pytest.approx((1.0 + q2) / 2) and fixed_cmp.qrels_overlay


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_annotate_and_tags(tiny: tuple[Any, int], capsys: pytest.CaptureFixture[str]) -> None:
    store, run_id = tiny
    ws = str(store.ws.root)
    code, out, err = run_cli(capsys, "--workspace", ws, "tags")
    assert code == 0 and "no annotations yet" in out
    code, out, err = run_cli(capsys, "--workspace", ws, "annotate", "tiny", "q2", "--label", "acronym",
                             "--label", "ambiguous query", "--note", "two readings")
    assert code == 0, err
    code, out, err = run_cli(capsys, "--workspace", ws, "annotate", str(run_id), "q1", "--doc", "d2",
                             "--relevant")
    assert code == 0 and "grade 1" in out, err
    code, out, _ = run_cli(capsys, "--workspace", ws, "tags", "--project", "tiny", "--json")
    data = json.loads(out)
    assert sorted(a["label"] for a in data["annotations"]) == ["acronym", "ambiguous query", "missing label"]
    assert [(j["query_id"], j["doc_id"], j["grade"]) for j in data["judgments"]] == [("q1", "d2", 1)]
    code, out, _ = run_cli(capsys, "--workspace", ws, "tags", "--label", "acronym")
    assert code == 0 and "acronym" in out and "ambiguous" not in out
    code, out, _ = run_cli(capsys, "--workspace", ws, "annotate", "tiny", "q2", "--label", "acronym", "--delete")
    assert code == 0 and "removed" in out
    for argv, needle in ((["annotate", "tiny", "q9", "--label", "x"], "no query with id 'q9'"),
                         (["annotate", "tiny", "q1"], "nothing to do"),
                         (["annotate", "tiny", "q1", "--relevant"], "--relevant needs --doc"),
                         (["annotate", "777", "q1", "--label", "x"], "no run with id 777"),
                         (["tags", "--project", "nope"], "no project named 'nope'")):
        code, _, err = run_cli(capsys, "--workspace", ws, *argv)
        assert code != 0 and needle in err and len(err.strip().splitlines()) == 1, (argv, err)


def test_migration_adds_tables_to_an_existing_workspace(tmp_path: Path) -> None:
    """A workspace made before annotations existed gets the tables on open, data kept."""
    from embtui.store import Store, Workspace
    from embtui.store.db import _migrate
    from embtui.store.schema import MIGRATIONS

    mine = next(i for i, m in enumerate(MIGRATIONS) if any("annotations (" in s for s in m))
    ws = Workspace(tmp_path / "old")
    ws.root.mkdir()
    with ws.connect() as con:
        con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        for stmt in [s for m in MIGRATIONS[:mine] for s in m]:
            if not stmt.startswith("CREATE TABLE IF NOT EXISTS meta"):
                con.execute(stmt)
        con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(mine)])
        con.execute("INSERT INTO projects (name) VALUES ('kept')")
    with ws.connect() as con:
        _migrate(con)
    store = Store.open(ws.root)
    assert [p.name for p in store.list_projects()] == ["kept"]
    assert store.annotations.find() == [] and store.annotations.judgments() == []
