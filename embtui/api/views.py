"""What a pane or a report shows, loaded in one go: a run's rankings with the split's judgments and
query texts, the project's annotations with the qrels overlay, one failed query in detail (what
outranked its relevant documents, optionally beside a second run), runs re-scored on corrected
judgments, and the significance marks against a baseline. Frozen, so a worker thread builds one and
hands it whole to the UI thread."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from embtui.analysis.failures import FailureDetail, RankedDoc, failure_detail

if TYPE_CHECKING:
    from embtui.store import Store

MAX_ABOVE = 10
"""How many documents above the first relevant one a failure's detail shows."""


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


@dataclass(frozen=True)
class FailureView:
    """One failed query of a run in detail, and the same query in a second run when compared."""

    detail: FailureDetail
    compare: FailureDetail | None = None
    compare_run: int | None = None


def load_failure_view(store: "Store", project: str, query_id: str, text: str,
                      ranking: Sequence[tuple[str, float]], judged: Mapping[str, int], *,
                      compare_run: int | None = None, max_above: int = MAX_ABOVE) -> FailureView:
    """The detail of ``query_id`` from its ranking and judgments (read by the caller with the run
    view) plus the documents' titles and texts, read here in one query."""
    other = store.run_rankings(compare_run, query_id).get(query_id, []) if compare_run else []
    ids = [d for d, g in judged.items() if g > 0]
    ids += [d for d, _ in ranking[:max_above]] + [d for d, _ in other[:max_above]]
    docs = store.documents(project, list(dict.fromkeys(ids)))
    detail = failure_detail(query_id, text, list(ranking), dict(judged), docs, max_above)
    compare = None
    if compare_run:
        base = failure_detail(query_id, text, other, dict(judged), docs, max_above)
        compare = FailureDetail(base.query_id, base.text, base.relevant,
                                tuple(RankedDoc(d, i, s, *docs.get(d, ("", "")), judged.get(d, 0))
                                      for i, (d, s) in enumerate(other[:max_above], 1)),
                                base.depth)
    return FailureView(detail, compare, compare_run)


@dataclass(frozen=True)
class CorrectedView:
    """Runs re-scored on the corrected judgments (qrels + overlay), and the overlay's size."""

    values: Mapping[int, Mapping[str, float]] = field(default_factory=dict)
    overlay: int = 0


def load_corrected_view(store: "Store", project: str, split: str, run_ids: Sequence[int]) -> CorrectedView:
    from embtui.engine.compare import corrected_metrics

    values = {rid: corrected_metrics(store, rid) for rid in run_ids}
    overlay = sum(len(v) for v in store.annotations.overlay(project, split).values())
    return CorrectedView(values, overlay)


@dataclass(frozen=True)
class SignificanceView:
    """(run id, metric) -> ▲/▼ with stars where a run differs significantly from the baseline
    (randomization test, Holm across runs); ``error`` says why there are none."""

    marks: Mapping[tuple[int, str], str] = field(default_factory=dict)
    error: str = ""


def load_significance_view(store: "Store", run_ids: Sequence[int], metrics: Sequence[str],
                           corrected: bool) -> SignificanceView:
    """``run_ids[0]`` is the baseline. A failure becomes the view's error, never an exception, so
    a pane shows it instead of waiting forever."""
    from embtui.engine.compare import compare_metrics

    try:
        comps = compare_metrics(store, list(run_ids), list(metrics), baseline=run_ids[0],
                                qrels_overlay=corrected, tests=("permutation",))
    except Exception as exc:  # noqa: BLE001 - reported in the view
        return SignificanceView({}, str(exc))
    return SignificanceView({(t.run_id, metric): t.marker for metric, comp in comps.items()
                             for t in comp.tests if t.marker})
