"""Annotations in the Failures pane: tag a query or a document, filter by label, mark a retrieved
document relevant (the qrels overlay) and judge failures on the corrected judgments."""

from __future__ import annotations

from embtui.tui.app import EmbtuiApp
from embtui.tui.screens.annotate import AnnotateScreen, MarkRelevantScreen
from embtui.tui.testing import open_failures as open_pane
from embtui.tui.testing import screen_text, settle


async def open_failures(pilot):
    pane = await open_pane(pilot, 2)
    pane.query_one("#failures-table").focus()
    return pane


async def test_a_tags_the_query_and_a_document_and_l_filters_by_label(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(160, 48)) as pilot:
        pane = await open_failures(pilot)
        first = pane.failures[0].query_id
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, AnnotateScreen)
        await pilot.press(*"acro")
        await pilot.press("right")  # accept the suggestion: the built-in label "acronym"
        await pilot.press("enter")
        await settle(pilot)
        (ann,) = app.store.annotations.find("demo", query_id=first)
        assert (ann.label, ann.doc_id, ann.run_id) == ("acronym", None, 2)
        assert pane.tags[first] == ("acronym",)
        assert "acronym" in str(pane.query_one("#failures-table").get_row(first)[2])
        assert "tag acronym on query" in screen_text(app)

        # the second failure: tag one of the documents ranked above its relevant one, with a note
        await pilot.press("n")
        await settle(pilot)
        second = pane.detail.query_id
        doc = pane.detail.above[0].doc_id
        await pilot.press("a")
        await pilot.pause()
        app.screen.query_one("#annotate-target").value = doc
        await pilot.press(*"near duplicate", "tab", "tab")  # label box, then (past the hint) the note
        app.screen.query_one("#annotate-note").focus()
        await pilot.press(*"same trial, other cohort", "enter")
        await settle(pilot)
        (ann2,) = app.store.annotations.find("demo", query_id=second)
        assert (ann2.label, ann2.doc_id, ann2.note) == ("near duplicate", doc, "same trial, other cohort")
        assert f"tag near duplicate on doc {doc}" in screen_text(app)

        # l cycles the label filter: acronym → near duplicate → any
        n_all = len(pane.failures)
        await pilot.press("l")
        await settle(pilot)
        assert pane.label_filter == "acronym"
        assert [f.query_id for f in pane.failures] == [first]
        # the count is of the labelled queries, not of the whole split
        assert "1 of the 1 query labelled 'acronym' have no relevant doc" in screen_text(app)
        await pilot.press("l")
        await settle(pilot)
        assert [f.query_id for f in pane.failures] == [second]
        await pilot.press("l")
        await settle(pilot)
        assert pane.label_filter == "" and len(pane.failures) == n_all

        # escape cancels without writing
        await pilot.press("a")
        await pilot.pause()
        await pilot.press(*"ambiguous query", "escape")
        await settle(pilot)
        assert len(app.store.annotations.find("demo")) == 2


async def test_r_marks_relevant_in_the_overlay_and_c_judges_on_corrected_qrels(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(160, 48)) as pilot:
        pane = await open_failures(pilot)
        failure = pane.failures[0]
        qid = failure.query_id
        top = pane.detail.above[0].doc_id
        imported = app.store.qrels("demo", "test")
        assert imported[qid].get(top, 0) == 0
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, MarkRelevantScreen)
        await pilot.press("enter")  # the top-ranked document
        await settle(pilot)
        assert app.store.annotations.overlay("demo", "test") == {qid: {top: 1}}
        assert app.store.qrels("demo", "test") == imported  # imported judgments untouched
        assert [a.label for a in app.store.annotations.find("demo", query_id=qid, doc_id=top)] == \
            ["missing label"]
        assert qid in {f.query_id for f in pane.failures}  # still judged on the imported qrels
        assert "+1 by hand (c applies)" in screen_text(app)

        await pilot.press("c")
        await settle(pilot)
        assert pane.corrected
        assert qid not in {f.query_id for f in pane.failures}  # found at rank 1 now
        assert "corrected judgments (+1 by hand)" in screen_text(app)
        await pilot.press("c")
        await settle(pilot)
        assert qid in {f.query_id for f in pane.failures}

        # again on the same document: unmark
        pane.query_one("#failures-table").move_cursor(row=[f.query_id for f in pane.failures].index(qid))
        await settle(pilot)
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, MarkRelevantScreen)
        await pilot.press("enter")
        await settle(pilot)
        assert app.store.annotations.overlay("demo", "test") == {}
        assert app.store.annotations.find("demo", query_id=qid) == []
