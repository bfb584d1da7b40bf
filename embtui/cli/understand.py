"""`embtui inspect`, `embtui space`, `embtui drift`: what the data is, what a model makes of it,
and whether production queries moved away from what was evaluated (embtui/api/data.py)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from embtui.cli.output import open_store, print_json, table


def cmd_inspect(args: argparse.Namespace) -> int:
    from embtui.api.data import inspect
    from embtui.api.textplot import profile_lines

    store = open_store(args, create=False)
    prof = inspect(store, args.project, args.model or [], near_threshold=args.near)
    if args.json:
        print_json(prof)
    else:
        print("\n".join(profile_lines(prof)))
    return 0


def cmd_space(args: argparse.Namespace) -> int:
    from embtui.api.data import build_space
    from embtui.api.textplot import scatter_text

    store = open_store(args, create=False)
    view = build_space(store, args.project, args.model, method=args.method, k=args.k, split=args.split,
                       with_queries=not args.no_queries, labels=args.labels, max_points=args.max_points)
    if args.json:
        print_json(view.to_dict(points=args.points))
        return 0
    s = view.stats
    print(f"{view.model} on '{args.project}': {view.kinds.count('doc'):,} documents"
          + (f" (a sample of {view.sampled_from:,})" if view.sampled_from > len(view.ids) else "")
          + f", {view.kinds.count('query'):,} queries, {s.dim} dimensions")
    print(scatter_text(view.coords, args.width, args.height, view.clusters))
    if view.explained:
        print(f"{view.method.upper()}: the two axes keep {sum(view.explained):.1%} of the variance "
              f"({view.explained[0]:.1%}, {view.explained[1]:.1%})")
    rows = [["anisotropy (mean cosine of random pairs)", f"{s.anisotropy:.4f}"],
            ["effective dimensionality (participation ratio)", f"{s.participation_ratio:.1f}"],
            ["effective rank (spectral entropy)", f"{s.entropy_rank:.1f}"]]
    c = s.clustering
    if c is not None:
        rows.append([f"k-means k={c.k}: silhouette (cosine)", "–" if c.silhouette is None else f"{c.silhouette:.4f}"])
        for name in ("purity", "nmi", "ari", "v_measure"):
            v = getattr(c, name)
            if v is not None:
                rows.append([f"  {name} against --labels ({c.n_labelled:,} labelled)", f"{v:.4f}"])
        rows.append(["  cluster sizes", " ".join(str(x) for x in c.sizes)])
    print(table(["", ""], rows))
    for w in view.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    from embtui.api.data import drift
    from embtui.api.textplot import drift_lines

    store = open_store(args, create=False)
    res = drift(store, args.project, args.model, args.reference, args.current, window=args.window, k=args.k,
                permutations=args.permutations, max_n=args.max_n, seed=args.seed)
    if args.json:
        print_json(res)
    else:
        print("\n".join(drift_lines(res)))
    return 0


def add_commands(sub: Any) -> None:
    """Register `inspect`, `space` and `drift`."""
    p = sub.add_parser("inspect", help="profile a project's data: lengths, tokens, truncation, duplicates, "
                       "judgments, lexical overlap")
    p.add_argument("--project", required=True)
    p.add_argument("--model", action="append", metavar="MODEL",
                   help="a model whose tokenizer to profile (repeat for several)")
    p.add_argument("--near", type=float, default=0.95, help="cosine for near-duplicates (default 0.95)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("space", help="a model's embedding space: 2D projection, anisotropy, clusters")
    p.add_argument("--project", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--method", choices=["pca", "umap"], default="pca")
    p.add_argument("--k", type=int, default=8, help="k-means clusters (default 8)")
    p.add_argument("--split", default="test", help="whose queries to place among the documents")
    p.add_argument("--no-queries", action="store_true")
    p.add_argument("--labels", help="score clusters against 'annotation' or a file of doc_id,label")
    p.add_argument("--max-points", type=int, default=50_000)
    p.add_argument("--width", type=int, default=72)
    p.add_argument("--height", type=int, default=20)
    p.add_argument("--points", action="store_true", help="with --json: every point's coordinates")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_space)

    p = sub.add_parser("drift", help="drift of a query log or a corpus snapshot against a reference")
    p.add_argument("--project", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--reference", required=True,
                   help="SPLIT, queries, log:NAME, docs or docs:PROJECT (add @half1/@half2 for a random half)")
    p.add_argument("--current", required=True, help="the same kinds of set")
    p.add_argument("--window", choices=["day", "week", "month"], help="per time window (a timestamped log)")
    p.add_argument("--k", type=int, default=8, help="reference clusters for the population shift")
    p.add_argument("--permutations", type=int, default=500)
    p.add_argument("--max-n", type=int, default=1000, help="sample at most this many per side (seeded)")
    p.add_argument("--seed", type=int, default=20240607)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_drift)
