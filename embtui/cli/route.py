"""`embtui route RUN RUN [RUN...]`: the per-query oracle over the runs and a cross-validated learned
router, each against the best single run with a paired randomization test."""

from __future__ import annotations

import argparse
from typing import Any

from embtui.cli.output import open_store, print_json, table


def cmd_route(args: argparse.Namespace) -> int:
    from embtui.api.routing import route_runs

    store = open_store(args, create=False)
    res = route_runs(store, args.runs, args.metric, folds=args.folds)
    d = res.to_dict()
    if args.json:
        print_json(d)
        return 0
    share = d["router"]["share"]
    print(table(["run", "model", f"mean {res.metric}", "router share"],
                [[r["id"], r["model"], f"{r['mean']:.4f}", f"{share[r['id']]:.0%}"] for r in d["runs"]]))

    def p(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3g}"

    best = d["best_single"]
    print(f"\nbest single run #{best['id']}: {best['mean']:.4f} over {d['queries']} queries")
    print(f"oracle (each query by its best run, the ceiling): {d['oracle']['mean']:.4f} "
          f"(p = {p(d['oracle']['p_vs_best'])} against the best single run)")
    print(f"learned router ({d['folds']}-fold cross-validated logistic regression on query features): "
          f"{d['router']['mean']:.4f}, {d['router']['delta_vs_best']:+.4f} against the best single run "
          f"(randomization test p = {p(d['router']['p_vs_best'])}); "
          "a query runs only the models of the run it is sent to")
    return 0


def add_commands(sub: Any) -> None:
    """Register `route`."""
    p = sub.add_parser("route", help="the per-query oracle and a learned router over runs of one split")
    p.add_argument("runs", nargs="+", type=int, metavar="RUN")
    p.add_argument("--metric", default="ndcg@10")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds over queries (default 5)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_route)
