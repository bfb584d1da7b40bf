"""What a pane or a report shows of a run, loaded in one go: its rankings with the split's judgments
and query texts, and the project's annotations with the qrels overlay. Frozen, so a worker thread
builds one and hands it whole to the UI thread."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    from embtui.store import Store


@dataclass(frozen=True)
class RunView:
    """One run's stored rankings, the judgments and the query texts of its split."""

    run_id: int | None = None
    rankings: Mapping[str, list[tuple[str, float]]] = field(default_factory=dict)
    qrels: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    queries: Mapping[str, str] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        """How deep the stored rankings go."""
        return max((len(v) for v in self.rankings.values()), default=0)


@dataclass(frozen=True)
class JudgmentsView:
    """A project's annotations and, for one split, the hand-made overlay and the corrected qrels
    (imported qrels with the overlay on top; empty when there is no overlay)."""

    project: str | None = None
    annotations: Sequence[Any] = ()
    overlay: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    corrected_qrels: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return sorted({a.label for a in self.annotations})

    def tags(self) -> dict[str, tuple[str, ...]]:
        """query id -> the labels on it or on one of its documents, sorted."""
        out: dict[str, set[str]] = {}
        for a in self.annotations:
            out.setdefault(a.query_id, set()).add(a.label)
        return {q: tuple(sorted(v)) for q, v in out.items()}

    def hand_marked(self, query_id: str, doc_id: str) -> bool:
        """Whether the overlay judges this retrieved document relevant."""
        return self.overlay.get(query_id, {}).get(doc_id, 0) > 0


def load_run_view(store: "Store", run_id: int, project: str, split: str) -> RunView:
    return RunView(run_id, store.run_rankings(run_id), store.qrels(project, split),
                   store.queries(project, split))


def load_judgments_view(store: "Store", project: str, split: str) -> JudgmentsView:
    from embtui.errors import NotFound

    notes = store.annotations
    overlay = notes.overlay(project, split)
    try:  # the store merges the overlay onto the imported qrels (an overlay grade wins)
        corrected = notes.corrected_qrels(project, split) if overlay else {}
    except NotFound:  # a split without judgments has nothing to correct
        corrected = {}
    return JudgmentsView(project, tuple(notes.find(project)), overlay, corrected)
