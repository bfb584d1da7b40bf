"""`embtui compare`, `report`, `tags`, `annotate` and `export negatives`: runs side by side."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from embtui.cli.output import open_store, print_json, table
from embtui.errors import EmbtuiError


def _run_ids(values: Sequence[str]) -> list[int]:
    out = []
    for v in values:
        try:
            out.append(int(v))
        except ValueError:
            raise EmbtuiError(f"'{v}' is not a run id", "run ids are numbers: see `embtui runs`") from None
    return out


# -- compare --------------------------------------------------------------------------------------
def cmd_compare(args: argparse.Namespace) -> int:
    from embtui.analysis.stats import TEST_NAMES
    from embtui.api.compare import compare_runs, slice_comparison
    from embtui.api.compare import fmt_p, fmt_signed, fmt_value

    store = open_store(args, create=False)
    comp = compare_runs(store, _run_ids(args.runs), args.metric,
                        None if args.baseline is None else _run_ids([args.baseline])[0],
                        qrels_overlay=args.corrected)
    slices = [slice_comparison(store, comp, by) for by in (args.by or [])]
    if args.json:
        out = comp.to_dict()
        if not args.per_query:
            out.pop("per_query")
        out["slices"] = [s.to_dict() for s in slices]
        print_json(out)
        return 0
    where = f"{comp.project}/{comp.split}" + (" (qrels + overlay)" if comp.qrels_overlay else "")
    print(f"{where}: {comp.metric} over {len(comp.query_ids)} queries scored by every run; "
          f"baseline run {comp.label(comp.baseline_id)}")
    rows = []
    for r in comp.run_ids:
        name = comp.runs[r].model_name
        if r == comp.baseline_id:
            rows.append([r, name + " (baseline)", fmt_value(comp.means[r]), "", "", "", "", "", "", ""])
            continue
        t = comp.test_for(r)
        x = t.result
        rows.append([r, name, fmt_value(comp.means[r]), fmt_signed(x.mean_delta),
                     f"[{fmt_signed(x.ci_low)}, {fmt_signed(x.ci_high)}]", f"{x.wins}/{x.ties}/{x.losses}",
                     fmt_p(x.p_ttest), fmt_p(x.p_wilcoxon), fmt_p(x.p_permutation),
                     f"{fmt_p(t.p_primary)} {t.verdict}{' ' + t.stars if t.stars else ''}"])
    print(table(["run", "model", "mean", "delta", "95% CI", "W/T/L", "p t-test", "p wilcoxon",
                  "p random.", "p holm (random.)"], rows))
    notes = [f"run {t.run_id}: {t.result.note}" for t in comp.tests if t.result.note]
    dropped = {r: n for r, n in comp.dropped.items() if n}
    if dropped:
        notes.append("queries left out (not scored by every run): "
                     + ", ".join(f"run {r}: {n}" for r, n in dropped.items()))
    for note in notes:
        print(note)
    print(f"verdict by the {TEST_NAMES['permutation']} ({comp.n_resamples:,} resamples, seed {comp.seed})"
          + (", Holm-adjusted across runs" if len(comp.tests) > 1 else "") + f"; alpha {comp.tests[0].alpha}")
    if args.top:
        for r in comp.others:
            worst = [d for d in comp.deltas[r][: args.top] if d.delta < 0]
            if worst:
                print(f"\nlargest losses of run {r} against run {comp.baseline_id}:")
                print(table(["query", "text", "delta", "baseline", "run"],
                             [[d.query_id, d.text[:70], fmt_signed(d.delta), fmt_value(d.baseline),
                               fmt_value(d.value)] for d in worst]))
    for s in slices:
        print(f"\nby {s.title}:")
        headers = ["slice", "n", *(f"run {r}" for r in s.run_ids),
                   *(f"delta {r} (p holm)" for r in s.run_ids if r != s.baseline_id), "flags"]
        rows = []
        for row in s.rows:
            rows.append([row.key, row.n, *(fmt_value(row.cell(r).mean) for r in s.run_ids),
                         *(f"{fmt_signed(row.cell(r).delta)} ({fmt_p(row.cell(r).p_vs_baseline_holm)})"
                           for r in s.run_ids if r != s.baseline_id),
                         "; ".join(f"{r}: {', '.join(row.cell(r).flags)}" for r in s.run_ids
                                   if row.cell(r).flags)])
        print(table(headers, rows))
    return 0


# -- report ---------------------------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    from embtui.api.compare import build_report, report_format, write_report

    report_format(args.out)  # a bad extension fails before any work
    store = open_store(args, create=False)
    report = build_report(store, _run_ids(args.runs), args.metric,
                          None if args.baseline is None else _run_ids([args.baseline])[0],
                          slices=args.by, qrels_overlay=args.corrected, top=args.top)
    path = write_report(report, args.out)
    print(f"wrote {path}")
    for t in report.comparison.tests:
        p = "" if t.p_primary is None else f" (p {t.p_primary:.4g})"
        print(f"run {t.run_id} vs {t.baseline_id}: delta {t.mean_delta:+.4f}, {t.verdict}{p}")
    return 0


# -- annotations ----------------------------------------------------------------------------------
def cmd_tags(args: argparse.Namespace) -> int:
    store = open_store(args, create=False)
    if args.project:
        store.get_project(args.project)
    anns = store.annotations.find(args.project, label=args.label)
    judgments = store.annotations.judgments(args.project)
    if args.json:
        print_json({"annotations": [a.to_dict() for a in anns],
                     "judgments": [j.to_dict() for j in judgments]})
        return 0
    if not anns and not judgments:
        print("no annotations yet: add one with `embtui annotate PROJECT QUERY_ID --label LABEL`")
        return 0
    if anns:
        print(table(["id", "project", "query", "label", "doc", "note", "run"],
                     [[a.id, a.project, a.query_id, a.label, a.doc_id or "", (a.note or "")[:60],
                       a.run_id or ""] for a in anns]))
    if judgments and not args.label:
        print("\nqrels overlay (judgments added by hand):")
        print(table(["project", "split", "query", "doc", "grade", "note"],
                     [[j.project, j.split, j.query_id, j.doc_id, j.grade, (j.note or "")[:60]]
                      for j in judgments]))
    return 0


def cmd_annotate(args: argparse.Namespace) -> int:
    from embtui.api.judgments import mark_relevant

    store = open_store(args, create=False)
    run_id = None
    if args.target.isdigit() and not store.project_exists(args.target):
        run = store.get_run(int(args.target))
        project, split, run_id = run.project, run.split, run.id
    else:
        project, split = args.target, args.split
        store.get_project(project)
    if args.relevant is not None:
        if not args.doc:
            raise EmbtuiError("--relevant needs --doc DOC_ID", "it judges a (query, document) pair")
        if run_id is not None:
            j = mark_relevant(store, run_id, args.query, args.doc, args.relevant, note=args.note)
        else:
            j = store.annotations.set_judgment(project, split, args.query, args.doc, args.relevant,
                                               note=args.note)
            if args.relevant > 0:
                from embtui.api.judgments import MISSING_LABEL

                store.annotations.add(project, args.query, MISSING_LABEL, doc_id=args.doc, note=args.note)
        print(f"judged {j.project}/{j.split} query {j.query_id} doc {j.doc_id} grade {j.grade} (overlay)")
    if args.unjudge:
        if not args.doc:
            raise EmbtuiError("--unjudge needs --doc DOC_ID")
        gone = store.annotations.remove_judgment(project, split, args.query, args.doc)
        print("removed the overlay judgment" if gone else "no overlay judgment to remove")
    for label in args.label or []:
        if args.delete:
            n = store.annotations.remove(project, args.query, label, doc_id=args.doc)
            print(f"removed '{label}'" if n else f"no '{label}' annotation to remove")
        else:
            a = store.annotations.add(project, args.query, label, doc_id=args.doc, note=args.note,
                                      run_id=run_id)
            print(f"annotation {a.id}: {a.project} query {a.query_id}"
                  + (f" doc {a.doc_id}" if a.doc_id else "") + f" '{a.label}'")
    if not args.label and args.relevant is None and not args.unjudge:
        raise EmbtuiError("nothing to do", "pass --label LABEL, --relevant [GRADE] or --unjudge")
    return 0


# -- export negatives -----------------------------------------------------------------------------
def cmd_export_negatives(args: argparse.Namespace) -> int:
    from embtui.api.compare import export_negatives, format_for

    format_for(args.out, args.format)
    store = open_store(args, create=False)
    report = export_negatives(store, _run_ids([args.run])[0], args.out, fmt=args.format,
                              max_negatives=args.max_negatives, all_queries=args.all_queries)
    if args.json:
        print_json(report.to_dict())
    else:
        print(report.summary())
    split = store.get_run(int(args.run)).split
    if split != "train":
        print(f"note: these rows come from the '{split}' split; after training on them its numbers no "
              "longer measure generalisation (mine negatives from a run on a train split)", file=sys.stderr)
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_commands(sub: Any) -> None:
    """Register `compare`, `report`, `tags`, `annotate` and `export negatives`."""
    p = sub.add_parser("compare", help="compare runs per query with paired significance tests")
    p.add_argument("runs", nargs="+", metavar="RUN", help="two or more run ids of one project split")
    p.add_argument("--metric", default="ndcg@10")
    p.add_argument("--baseline", metavar="RUN", help="the run the others are tested against (default: the first)")
    p.add_argument("--corrected", action="store_true", help="score on qrels + judgments added by hand")
    p.add_argument("--by", action="append", metavar="SLICE",
                   help="also show slices: length, length-quantiles, relevant, tag, meta:FIELD (repeatable)")
    p.add_argument("--top", type=int, default=5, help="show the N largest losses per run (0: none)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--per-query", action="store_true", help="with --json: include every query's delta")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("report", help="write a comparison report (.md, .html, .csv or .json)")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("--out", required=True, metavar="FILE", help="format from the extension")
    p.add_argument("--metric", default="ndcg@10")
    p.add_argument("--baseline", metavar="RUN")
    p.add_argument("--corrected", action="store_true", help="score on qrels + judgments added by hand")
    p.add_argument("--by", action="append", metavar="SLICE",
                   help="slices to include (default: length, relevant, small metadata fields, tags)")
    p.add_argument("--top", type=int, default=10, help="queries in the largest losses/wins tables")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("tags", help="list annotations and judgments added by hand")
    p.add_argument("--project")
    p.add_argument("--label", help="only this label")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tags)

    p = sub.add_parser("annotate", help="label a query or (query, document), or judge a document")
    p.add_argument("target", metavar="RUN_OR_PROJECT", help="a run id (its project and split) or a project")
    p.add_argument("query", metavar="QUERY_ID")
    p.add_argument("--doc", metavar="DOC_ID", help="annotate the (query, document) pair")
    p.add_argument("--label", action="append", help="a label, e.g. 'missing label', negation (repeatable)")
    p.add_argument("--note")
    p.add_argument("--relevant", type=int, nargs="?", const=1, metavar="GRADE",
                   help="judge --doc relevant (grade, default 1) in the qrels overlay")
    p.add_argument("--unjudge", action="store_true", help="remove the overlay judgment of --doc")
    p.add_argument("--split", default="test", help="split of the overlay when TARGET is a project")
    p.add_argument("--delete", action="store_true", help="remove the given labels instead of adding")
    p.set_defaults(func=cmd_annotate)

    p = sub.add_parser("export", help="export training data from a run")
    sub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    q = sub.add_parser("negatives", help="hard negatives as anchor/positive/negative_1..n rows "
                                        "(sentence-transformers MultipleNegativesRankingLoss)")
    q.add_argument("run", metavar="RUN")
    q.add_argument("--out", required=True, metavar="FILE")
    q.add_argument("--format", choices=["jsonl", "parquet"], help="default: from the extension")
    q.add_argument("--max-negatives", type=_positive_int, default=5, help="negative columns per row")
    q.add_argument("--all-queries", action="store_true",
                   help="every judged query, not only those where a non-relevant document won")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_export_negatives)
