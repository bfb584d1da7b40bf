"""How a failed query reads in the Failures pane: its tags, the relevant documents with their ranks,
what was ranked above them, and another run's ranking beside it (rich renderables, no widgets)."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from rich.console import Group
from rich.text import Text

from embtui.analysis.failures import FailureDetail, RankedDoc

SNIPPET = 160


def snippet(text: str, limit: int = SNIPPET) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rank_text(d: RankedDoc, depth: int) -> str:
    return f"#{d.rank:<3}" if d.rank is not None else f"not in top {depth}"


def render_detail(detail: FailureDetail, annotations: Sequence[Any],
                  hand_marked: Callable[[str, str], bool]) -> Group:
    """A failed query: its tags, every relevant document with its rank, what ranked above."""
    # A separator ends the span before it, never starts a styled one: SVG viewers drop a
    # text run's leading spaces, and the words would run together in screenshots.
    parts: list[Any] = [Text.assemble(("query ", "dim"), (detail.query_id + "  ", "bold"),
                                      detail.text)]
    for a in (a for a in annotations if a.query_id == detail.query_id):
        on_what = f"doc {a.doc_id}" if a.doc_id else "query"
        parts.append(Text.assemble(("tag ", "dim"), (a.label + " ", "bold yellow"),
                                   f"on {on_what}" + (" " if a.note else ""),
                                   (f"— {a.note}" if a.note else "", "italic")))
    parts.append(Text(""))
    parts.append(Text(f"relevant ({len(detail.relevant)})", style="bold underline"))
    for d in detail.relevant:
        score = f"{d.score:.4f}" if d.score is not None else "     –"
        parts.append(Text.assemble("✓ ", (rank_text(d, detail.depth) + "  ", "bold"),
                                   f"{score}  ", (d.doc_id + "  ", "dim"),
                                   d.title or snippet(d.text, 80)))
    first = min((d.rank for d in detail.relevant if d.rank is not None), default=None)
    parts.append(Text(""))
    above = f"ranked above it ({len(detail.above)}"
    if first is None or first - 1 > len(detail.above):
        above += f" of {first - 1 if first else detail.depth}"
    parts.append(Text(above + ")", style="bold underline"))
    for d in detail.above:
        hand = hand_marked(detail.query_id, d.doc_id)
        mark = "+" if hand else ("✓" if d.grade > 0 else " ")
        parts.append(Text.assemble((mark + " ", "bold green" if hand else ""),
                                   f"#{d.rank:<3} {d.score:.4f}  ", (d.doc_id + "  ", "dim"),
                                   (d.title or "", "bold")))
        parts.append(Text("    " + snippet(d.text), style="dim"))
    return Group(*parts)


def render_compare(detail: FailureDetail, name: str) -> Group:
    """Another run's ranking of the same query, for the side-by-side column."""
    first = min((d.rank for d in detail.relevant if d.rank is not None), default=None)
    head = f"first relevant at #{first}" if first else f"no relevant in top {detail.depth}"
    parts: list[Any] = [Text.assemble(("other run ", "dim"), (name, "bold")), Text(head), Text("")]
    for d in detail.above:
        mark = "✓" if d.grade > 0 else " "
        parts.append(Text.assemble(f"{mark} #{d.rank:<3} {d.score:.4f}  ", (d.title or d.doc_id)))
    return Group(*parts)


def failures_summary(run_id: int | None, n_failures: int, qrels: Mapping[str, Mapping[str, int]],
                     tags: Mapping[str, Sequence[str]], threshold: int, depth: int, *,
                     label_filter: str = "", text_filter: str = "", corrected: bool = False,
                     by_hand: int = 0) -> str:
    """The line above the failures table: how many of which queries fail, and what is applied."""
    if run_id is None:
        return "no finished run for this project and split: evaluate a model (Jobs, e)"
    scored = sum(1 for j in qrels.values() if any(g > 0 for g in j.values()))
    among = f"{scored} queries"
    if label_filter:  # count the labelled queries, not the whole split
        labelled = sum(1 for q, j in qrels.items() if any(g > 0 for g in j.values())
                       and label_filter in tags.get(q, ()))
        among = f"the {labelled} {'query' if labelled == 1 else 'queries'} labelled '{label_filter}'"
    summary = (f"run #{run_id}: {n_failures} of {among} have no relevant doc in the "
               f"top {threshold} (ranking depth {depth})")
    if text_filter:
        summary += f" · filter '{text_filter}'"
    if corrected:
        summary += f" · corrected judgments (+{by_hand} by hand)"
    elif by_hand:
        summary += f" · +{by_hand} by hand (c applies)"
    return summary
