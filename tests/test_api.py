"""The use-case layer: evaluations planned once and run inline or as jobs; run views loaded whole."""

from __future__ import annotations

import dataclasses

import pytest

from embtui.api import plan_evaluation, run_inline
from embtui.api.views import JudgmentsView, load_judgments_view, load_run_view
from embtui.errors import EmbtuiError


def test_a_plan_decides_before_any_run_exists(demo_store, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EmbtuiError, match="unknown model 'no-such-model'"):
        plan_evaluation(demo_store, "demo", ["bm25", "no-such-model"])
    with pytest.raises(EmbtuiError, match="split"):
        plan_evaluation(demo_store, "demo", ["bm25"], split="nope")
    assert demo_store.list_runs() == []  # nothing was created by the failed plans
    plan = plan_evaluation(demo_store, "demo", ["bm25"], ks=(10,))
    assert plan.split == "test" and [r.model.name for r in plan.todo] == ["bm25"] and not plan.reused
    first = run_inline(plan)
    assert [o.reused for o in first] == [False] and first[0].rankings
    # planned again: the identical finished run stands in, nothing runs, nothing is created
    again = plan_evaluation(demo_store, "demo", ["bm25"], ks=(10,))
    assert [r.id for r in again.reused] == [first[0].run.id] and again.todo == []
    assert [(o.run.id, o.reused) for o in run_inline(again)] == [(first[0].run.id, True)]
    forced = plan_evaluation(demo_store, "demo", ["bm25"], ks=(10,), force=True)
    assert len(forced.todo) == 1 and not forced.reused
    note = plan_evaluation(demo_store, "demo", ["bm25"], ks=(10**6,)).depth_note
    assert note and "400 documents" in note


def test_views_hold_what_the_store_holds(demo_store):
    plan = plan_evaluation(demo_store, "demo", ["bm25"], ks=(10,))
    run = run_inline(plan)[0].run
    view = load_run_view(demo_store, run.id, "demo", "test")
    assert view.rankings == demo_store.run_rankings(run.id)
    assert view.qrels == demo_store.qrels("demo", "test")
    assert view.queries == demo_store.queries("demo", "test")
    assert view.depth == max(len(r) for r in view.rankings.values())
    qid, ranking = next(iter(view.rankings.items()))
    doc = ranking[0][0]
    demo_store.annotations.add("demo", qid, "acronym")
    demo_store.annotations.set_judgment("demo", "test", qid, doc, 1)
    notes = load_judgments_view(demo_store, "demo", "test")
    assert notes.labels == ["acronym"] and notes.tags() == {qid: ("acronym",)}
    assert notes.hand_marked(qid, doc) and not notes.hand_marked(qid, "no-such-doc")
    assert notes.corrected_qrels[qid][doc] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        notes.project = "other"  # type: ignore[misc]
    assert JudgmentsView().tags() == {} and not JudgmentsView().hand_marked(qid, doc)
