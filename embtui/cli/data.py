"""`embtui import` and `embtui projects`: datasets into projects, and what each holds."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from embtui.cli.output import open_store, print_json, table


def cmd_import(args: argparse.Namespace) -> int:
    store = open_store(args)
    if args.kind == "queries":
        from embtui.api.data import import_query_log

        if not args.log:
            from embtui.errors import EmbtuiError

            raise EmbtuiError("a query log needs a name", "pass --log NAME")
        res = import_query_log(store, args.path, args.project, args.log, replace=args.replace)
        print(f"imported query log '{res['log']}' into '{res['project']}': {res['queries']:,} queries, "
              f"{res['timestamped']:,} with a timestamp")
        return 0
    if args.kind == "beir":
        from embtui.api.projects import import_beir

        report = import_beir(store, args.path, args.project, replace=args.replace)
    else:
        from embtui.api.projects import import_pairs

        report = import_pairs(store, args.path, args.project, replace=args.replace, split=args.split)
    print(report.summary())
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def cmd_projects(args: argparse.Namespace) -> int:
    projects = open_store(args).list_projects()
    if args.json:
        print_json({"projects": [p.to_dict() for p in projects]})
        return 0
    if not projects:
        print("no projects yet: import one with `embtui import beir PATH --project NAME`")
        return 0
    rows = [[p.name, p.source or "", p.documents, p.queries,
             ", ".join(f"{s}: {v['queries']} q / {v['qrels']} judgments" for s, v in p.splits.items())]
            for p in projects]
    print(table(["project", "source", "documents", "queries", "splits"], rows))
    return 0


def add_commands(sub: Any) -> None:
    """Register `import` and `projects`."""
    p = sub.add_parser("import", help="import a dataset into a project")
    p.add_argument("kind", choices=["beir", "pairs", "queries"],
                   help="beir: a BEIR folder; pairs: JSONL/CSV/Parquet; queries: a query log "
                        "(JSONL/CSV/TSV/Parquet with text and optional timestamp, or .txt one per line)")
    p.add_argument("path", help="the folder (beir) or file (pairs, queries)")
    p.add_argument("--project", required=True)
    p.add_argument("--replace", action="store_true", help="overwrite an existing project")
    p.add_argument("--split", default="train", help="split for pair files (default train)")
    p.add_argument("--log", help="name of the query log (queries)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("projects", help="list projects with their counts")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_projects)
