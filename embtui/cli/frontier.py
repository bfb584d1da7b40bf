"""`embtui frontier`: every run of a project split by quality, p99 latency (from profiles) and
memory, the Pareto-optimal ones marked, and the best run under constraints with its test against
the next best."""

from __future__ import annotations

import argparse
from typing import Any

from embtui.cli.output import open_store, print_json, table


def cmd_frontier(args: argparse.Namespace) -> int:
    from embtui.api.evaluations import default_split
    from embtui.api.frontier import best_under, describe_answer, load_frontier
    from embtui.analysis.frontier import scatter
    from embtui.api.profiles import parse_count

    store = open_store(args, create=False)
    split = default_split(store.get_project(args.project), args.split)
    view = load_frontier(store, args.project, split, args.metric)
    docs = parse_count(args.docs) if args.docs else view.documents
    answer = None
    if args.max_p99 is not None or args.max_memory is not None:
        answer = best_under(store, view, max_p99_ms=args.max_p99, max_gb=args.max_memory, at_docs=docs)
    if args.json:
        print_json({"metric": view.metric, "documents": docs, "points": [
            {"run_id": p.run_id, "label": p.label, "quality": p.quality, "p99_ms": p.p99_ms,
             "bytes_per_doc": p.bytes_per_doc,
             "memory_gb": None if p.bytes_per_doc is None else p.bytes_per_doc * docs / 1e9,
             "pareto_latency": p.run_id in view.on_latency, "pareto_memory": p.run_id in view.on_memory}
            for p in view.points],
            "best": None if answer is None or answer.best is None else {
                "run_id": answer.best.run_id, "runner_up": answer.runner_up.run_id if answer.runner_up else None,
                "p_value": answer.p_value, "significant": answer.significant, "note": answer.note}})
        return 0
    if not view.points:
        print(f"no finished run on {args.project}/{split} has {args.metric}")
        return 0
    rows = []
    for i, p in enumerate(view.points, 1):
        marks = ("L" if p.run_id in view.on_latency else "") + ("M" if p.run_id in view.on_memory else "")
        rows.append([i, p.label, f"{p.quality:.4f}", "" if p.p99_ms is None else f"{p.p99_ms:.2f}",
                     "" if p.bytes_per_doc is None else f"{p.bytes_per_doc:g}",
                     "" if p.bytes_per_doc is None else f"{p.bytes_per_doc * docs / 1e9:.3g}", marks])
    print(table(["#", "run", view.metric, "p99 ms", "bytes/doc", f"GB at {docs:,}", "frontier"], rows))
    print("frontier: L = no run is both better and faster, M = no run is both better and smaller")
    if view.missing_profiles:
        names = list(view.missing_profiles)
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        print(f"no profile (no latency) for {shown}: `embtui profile --project P --model M` "
              "(with --quantize int8|binary for a quantised run)")
    if any(p.p99_ms for p in view.points):
        print(f"\n{view.metric} against p99 latency (ms, log scale):")
        print("\n".join(scatter(view.points, "p99_ms", set(view.on_latency))))
    if answer is not None:
        print("\n" + describe_answer(answer, view.metric))
    return 0


def add_commands(sub: Any) -> None:
    """Register `frontier`."""
    p = sub.add_parser("frontier", help="quality against latency and memory; the best run under constraints")
    p.add_argument("--project", required=True)
    p.add_argument("--split")
    p.add_argument("--metric", default="ndcg@10")
    p.add_argument("--max-p99", type=float, metavar="MS", help="only runs whose profiled p99 is at most MS")
    p.add_argument("--max-memory", type=float, metavar="GB", help="only runs whose index fits in GB at --docs")
    p.add_argument("--docs", metavar="N", help="corpus size for the memory figures (default: the project's)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_frontier)
