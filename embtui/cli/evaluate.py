"""`embtui eval` and `embtui runs`: evaluate models (inline or detached), list and delete runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from embtui.cli.models import add_spec_options, spec_overrides
from embtui.cli.output import ProgressLine, open_store, print_json, table
from embtui.errors import EmbtuiError

# Metrics shown in the text table (all of them are in --json and in the store).
TABLE_METRICS = ("ndcg@10", "mrr@10", "map@100", "recall@10", "recall@100", "p@10")


def _hnsw_config(args: argparse.Namespace) -> Any:
    from embtui.api.runs import HnswConfig

    base = HnswConfig()

    def given(value: Any, default: Any) -> Any:  # 0 is a value to refuse, not "not given"
        return default if value is None else value

    return HnswConfig(
        metric=base.metric, dtype=given(args.hnsw_dtype, base.dtype),
        connectivity=given(args.hnsw_connectivity, base.connectivity),
        expansion_add=given(args.hnsw_expansion_add, base.expansion_add),
        expansion_search=given(args.hnsw_expansion_search, base.expansion_search),
        rescore=given(args.hnsw_rescore, base.rescore),
    )


def cmd_eval(args: argparse.Namespace) -> int:
    from embtui.api.evaluations import plan_evaluation, run_inline
    from embtui.api.runs import check_run_file, write_trec_run
    from embtui.api.runs import parse_ks
    from embtui.api.runs import identical_note

    ks = parse_ks(args.k)
    if args.run_file:
        check_run_file(args.run_file)  # before any run row exists
    store = open_store(args, create=False)
    plan = plan_evaluation(
        store, args.project, args.model, split=args.split, overrides=spec_overrides(args),
        force=args.force, device=args.device, index=args.index, hnsw=_hnsw_config(args), ks=ks,
        ignore_identical_ids=args.ignore_identical_ids, skip_unanswerable=args.skip_unanswerable,
        depth=1000 if args.run_file else None,
        cache_dtype="float16" if args.cache_f16 else "float32",
        executor=args.executor, ray_address=args.ray_address, chunk_texts=args.chunk_texts)
    if plan.depth_note:  # said once, not per model
        print(f"embtui: note: {plan.depth_note}", file=sys.stderr)
    for same in plan.reused:
        print(f"embtui: {identical_note(same)}", file=sys.stderr)
    if args.detach:
        from embtui.cli.jobs import detach_eval

        if plan.todo:
            return detach_eval(plan, args)
        if args.json:
            print_json({"job_ids": [], "reused_runs": [r.id for r in plan.reused]})
        return 0
    show = sys.stderr.isatty() and not args.json
    n = len(plan.items)
    outcomes = run_inline(plan, lambda i, req: ProgressLine(show, f"[{i + 1}/{n}] {req.model.name}"))
    if args.run_file:
        for o in outcomes:
            path = Path(args.run_file)
            if len(outcomes) > 1:
                path = path.with_name(f"{path.stem}.run{o.run.id}{path.suffix}")
            rankings = o.rankings if o.rankings is not None else store.run_rankings(o.run.id)
            write_trec_run(path, rankings, tag=f"embtui-{o.run.model_name}")
            if not args.json:
                print(f"run file: {path}", file=sys.stderr)
    for o in outcomes:  # damaged artifacts found and healed, low HNSW recall (new runs only)
        for w in o.warnings:
            print(f"warning: run {o.run.id} ({o.run.model_name}): {w}", file=sys.stderr)
    if args.json:
        print_json({"runs": [{**_run_json(o.run), "reused": o.reused} for o in outcomes]})
        return 0
    _print_runs_table([o.run for o in outcomes], ks)
    for o in outcomes:
        note = o.run.info.get("summary", "")
        recall = o.run.info.get("ann_recall@10")
        if recall is not None:
            note += f"; HNSW recall@10 vs exact {recall:.4f}"
        print(f"run {o.run.id} ({o.run.model_name}){' (reused)' if o.reused else ''}: {note}")
    return 0


def _run_json(run: Any) -> dict[str, Any]:
    d = run.to_dict()
    return {"id": d["id"], "model": d["model"], "project": d["project"], "split": d["split"],
            "status": d["status"], "device": d["device"], "metrics": d["metrics"],
            "timings": d["timings"], "info": d["info"], "index": d["index"],
            "model_spec": d["model_spec"], "model_fingerprint": d["model_fingerprint"],
            "versions": d["versions"], "created_at": d["created_at"], "error": d["error"]}


def _print_runs_table(runs: Sequence[Any], ks: Sequence[int] | None = None) -> None:
    metrics = [m for m in TABLE_METRICS if any(m in r.metrics for r in runs)]
    headers = ["run", "model", *metrics, "device", "index", "time_s"]
    rows = []
    for r in runs:
        rows.append([r.id, r.model_name, *(f"{r.metrics[m]:.4f}" if m in r.metrics else "" for m in metrics),
                     r.device or "", r.index_config.get("kind", ""),
                     f"{r.timings.get('total_s', 0):.1f}" if r.timings else r.status])
    print(table(headers, rows))


def cmd_runs_delete(store: Any, args: argparse.Namespace) -> int:
    """`embtui runs delete ID...`: asks first (on a terminal) unless --yes."""
    from embtui.api.runs import delete_runs

    if not args.ids:
        raise EmbtuiError("`runs delete` needs run ids", "e.g. `embtui runs delete 3 4`; see `embtui runs`")
    runs = [store.get_run(i) for i in dict.fromkeys(args.ids)]  # unknown ids fail here
    listing = ", ".join(f"#{r.id} ({r.model_name} on {r.project}/{r.split})" for r in runs)
    if not args.yes:
        if not sys.stdin.isatty():
            raise EmbtuiError(f"not deleting {listing} without confirmation", "pass --yes")
        answer = input(f"delete run(s) {listing} with their rankings and metrics? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    removed = delete_runs(store, [r.id for r in runs])
    if args.json:
        print_json({"deleted": [r.id for r in runs], "files_removed": removed})
        return 0
    files = f"; removed {len(removed)} file(s)" if removed else ""
    print(f"deleted run(s) {listing}{files}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    store = open_store(args, create=False)
    if args.action == "delete":
        return cmd_runs_delete(store, args)
    if args.ids:
        raise EmbtuiError(f"unexpected argument(s) {' '.join(map(str, args.ids))}",
                          "to delete runs: `embtui runs delete ID...`")
    runs = store.list_runs(project=args.project)
    if args.json:
        print_json({"runs": [_run_json(r) for r in runs]})
        return 0
    if not runs:
        print("no runs yet: start one with `embtui eval --project NAME --model MODEL`")
        return 0
    for project in dict.fromkeys(r.project for r in runs):
        for split in dict.fromkeys(r.split for r in runs if r.project == project):
            print(f"\n{project} / {split}")
            _print_runs_table([r for r in runs if r.project == project and r.split == split])
    return 0


def add_commands(sub: Any) -> None:
    """Register `eval` and `runs`."""
    p = sub.add_parser("eval", help="evaluate models on a project split and store the runs")
    p.add_argument("--project", required=True)
    p.add_argument("--model", action="append", required=True,
                   help="saved spec name, hub id, local path or 'bm25' (repeat for several)")
    p.add_argument("--split", help="default: the project's only split, else test")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default: the spec's, else auto); "
                                    "several to encode on all of them: cuda:0,cuda:1 or gpus")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="where the corpus is encoded: here (default) or on a Ray cluster")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="the Ray cluster (HOST:PORT or auto; default: RAY_ADDRESS, else a local one)")
    p.add_argument("--chunk-texts", type=int, metavar="N",
                   help="texts per committed cache chunk: what a kill can lose, and the unit sent to "
                        "each device or Ray task (default 512)")
    p.add_argument("--index", choices=["auto", "exact", "hnsw"], default="auto")
    p.add_argument("--k", default="1,3,5,10,100", help="cutoffs, comma-separated")
    p.add_argument("--json", action="store_true", help="print the runs as JSON")
    p.add_argument("--run-file", metavar="PATH", help="write a TREC run file (top 1000)")
    p.add_argument("--ignore-identical-ids", action="store_true",
                   help="drop a query's own id from its results (ArguAna, Quora)")
    p.add_argument("--skip-unanswerable", action="store_true",
                   help="leave judged queries with no relevant document out of the means "
                        "(default: they count as 0, as in trec_eval, BEIR and MTEB)")
    p.add_argument("--cache-f16", action="store_true", help="store cached embeddings as float16")
    p.add_argument("--detach", action="store_true", help="run as background job(s); print job ids")
    p.add_argument("--force", action="store_true",
                   help="make a new run even when an identical finished run exists (default: reuse it)")
    p.add_argument("--hnsw-dtype", choices=["f32", "f16", "i8"])
    p.add_argument("--hnsw-connectivity", type=int)
    p.add_argument("--hnsw-expansion-add", type=int)
    p.add_argument("--hnsw-expansion-search", type=int)
    p.add_argument("--hnsw-rescore", type=int, metavar="N",
                   help="fetch N x depth candidates from the HNSW graph and score them exactly against "
                        "the float vectors (e.g. --hnsw-dtype i8 --hnsw-rescore 2: FAISS HNSW's recall "
                        "at its cost)")
    add_spec_options(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("runs", help="list stored runs with their metrics, or delete runs")
    p.add_argument("action", nargs="?", choices=["list", "delete"], default="list")
    p.add_argument("ids", nargs="*", type=int, metavar="ID", help="run ids (for delete)")
    p.add_argument("--project")
    p.add_argument("--yes", "-y", action="store_true", help="delete without asking")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)
