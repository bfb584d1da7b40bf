"""Judgments and tags as operations: "this retrieved document is actually relevant" (an overlay
judgment plus a `missing label` tag), its undo, and tags on queries and pairs. Imported qrels are
never changed; the overlay sits on top and every metric can be re-scored on it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from embtui.store.annotations import BUILTIN_LABELS, MISSING_LABEL

if TYPE_CHECKING:
    from embtui.store import Store

__all__ = ["BUILTIN_LABELS", "MISSING_LABEL", "add_tag", "mark_relevant", "remove_tag", "unmark_relevant"]


def mark_relevant(store: "Store", run_id: int, query_id: str, doc_id: str, grade: int = 1,
                  note: str | None = None) -> Any:
    """Record that a document the run retrieved is relevant: an overlay judgment for the run's
    project and split plus a "missing label" tag on the pair. Returns the judgment."""
    run = store.get_run(int(run_id))
    judgment = store.annotations.set_judgment(run.project, run.split, query_id, doc_id, grade,
                                              note=note, run_id=run.id)
    if grade > 0:
        store.annotations.add(run.project, query_id, MISSING_LABEL, doc_id=doc_id, note=note,
                              run_id=run.id)
    return judgment


def unmark_relevant(store: "Store", run_id: int, query_id: str, doc_id: str) -> bool:
    """Undo :func:`mark_relevant`: drop the overlay judgment and its "missing label" tag on the
    pair. Returns whether there was a judgment to drop."""
    run = store.get_run(int(run_id))
    removed = store.annotations.remove_judgment(run.project, run.split, query_id, doc_id)
    store.annotations.remove(run.project, query_id, MISSING_LABEL, doc_id=doc_id)
    return removed


def add_tag(store: "Store", project: str, query_id: str, label: str, *, doc_id: str | None = None,
            note: str | None = None, run_id: int | None = None) -> Any:
    """Tag a query (or one query-document pair) of a project; the same tag twice updates the note."""
    return store.annotations.add(project, query_id, label, doc_id=doc_id, note=note, run_id=run_id)


def remove_tag(store: "Store", project: str, query_id: str, label: str, *,
               doc_id: str | None = None) -> int:
    """Remove a tag from a query or pair; how many rows went (0 or 1)."""
    return store.annotations.remove(project, query_id, label, doc_id=doc_id)
