"""Entry point: `embtui` opens the TUI; subcommands (import, eval, runs, ...) run headless."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from embtui.errors import EmbtuiError

# Metrics shown in the text table (all of them are in --json and in the store).
TABLE_METRICS = ("ndcg@10", "mrr@10", "map@100", "recall@10", "recall@100", "p@10")


def _store(args: argparse.Namespace, create: bool = True) -> Any:
    from embtui.store import Store, Workspace, default_workspace

    root = Path(args.workspace) if args.workspace else default_workspace()
    ws = Workspace(root)
    ws.check_paths()
    if not create and not ws.exists():
        raise EmbtuiError(f"no embtui workspace at {ws.root}",
                          "pass --workspace DIR or create one with `embtui import`")
    return Store.open(ws.root)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        return "  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))

    lines = [fmt(cells[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in cells[1:]]
    return "\n".join(line.rstrip() for line in lines)


# -- import / projects ------------------------------------------------------------------------
def cmd_import(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.kind == "beir":
        from embtui.data.beir import import_beir

        report = import_beir(store, args.path, args.project, replace=args.replace)
    else:
        from embtui.data.pairs import import_pairs

        report = import_pairs(store, args.path, args.project, replace=args.replace, split=args.split)
    print(report.summary())
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def cmd_projects(args: argparse.Namespace) -> int:
    projects = _store(args).list_projects()
    if args.json:
        _print_json({"projects": [p.to_dict() for p in projects]})
        return 0
    if not projects:
        print("no projects yet: import one with `embtui import beir PATH --project NAME`")
        return 0
    rows = [[p.name, p.source or "", p.documents, p.queries,
             ", ".join(f"{s}: {v['queries']} q / {v['qrels']} judgments" for s, v in p.splits.items())]
            for p in projects]
    print(_table(["project", "source", "documents", "queries", "splits"], rows))
    return 0


# -- models / devices ---------------------------------------------------------------------------
def _spec_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "batch_size": args.batch_size, "precision": args.precision,
        "max_seq_length": args.max_length, "query_prompt": args.query_prompt,
        "document_prompt": args.doc_prompt, "query_prompt_name": args.query_prompt_name,
        "document_prompt_name": args.doc_prompt_name, "truncate_dim": args.truncate_dim,
        "trust_remote_code": True if args.trust_remote_code else None,
        "normalize": False if getattr(args, "no_normalize", False) else None,
    }


def cmd_models(args: argparse.Namespace) -> int:
    from embtui.engine.models import ModelSpec, check_model_name

    store = _store(args)
    if args.action == "add":
        if not args.name:
            raise EmbtuiError("`models add` needs a NAME", "e.g. `embtui models add e5 --model intfloat/e5-small-v2`")
        existing = store.get_model(args.name)
        if existing is not None and not args.replace:
            raise EmbtuiError(f"a model named '{args.name}' is already saved ({existing.get('model')})",
                              "pass --replace to overwrite it, or choose another NAME")
        spec = ModelSpec(model=args.model or args.name, name=args.name,
                         revision=args.revision).with_overrides(**_spec_overrides(args),
                                                                device=args.device)
        check_model_name(spec, store)  # a wrong path or unknown id fails now, not in a run
        store.save_model(spec.name, spec.to_dict())
        print(f"{'replaced' if existing else 'saved'} model '{spec.name}' ({spec.model})")
        return 0
    if args.action == "remove":
        if store.get_model(args.name) is None:
            raise EmbtuiError(f"no saved model named '{args.name}'", "see `embtui models`")
        store.delete_model(args.name)
        print(f"removed model '{args.name}'")
        return 0
    models = store.list_models()
    if args.json:
        _print_json({"models": [{"name": n, **s} for n, s in models.items()]})
        return 0
    if not models:
        print("no saved model specs: any hub id, local path or 'bm25' works with --model; "
              "save one with `embtui models add NAME --model ID`")
        return 0
    print(_table(["name", "model", "precision", "batch", "max_len", "device", "query prompt",
                  "doc prompt"], [_model_row(n, s) for n, s in models.items()]))
    return 0


def _model_row(name: str, spec: dict[str, Any]) -> list[Any]:
    """One `embtui models` row; bm25 has no precision, batch, length, device or prompts."""
    def prompt(text: str | None, prompt_name: str | None) -> str:
        return repr(text) if text is not None else (f"<{prompt_name}>" if prompt_name else "")

    if str(spec.get("model", "")).lower() == "bm25":
        return [name, spec["model"], "", "", "", "", "", ""]
    return [name, spec["model"], spec.get("precision"), spec.get("batch_size"),
            spec.get("max_seq_length") or "", spec.get("device"),
            prompt(spec.get("query_prompt"), spec.get("query_prompt_name")),
            prompt(spec.get("document_prompt"), spec.get("document_prompt_name"))]


def cmd_devices(args: argparse.Namespace) -> int:
    from embtui.engine.devices import list_devices

    devices = list_devices(use_torch=args.torch)
    if args.json:
        _print_json({"devices": [d.to_dict() for d in devices]})
        return 0

    def gib(n: int | None) -> str:
        return "" if n is None else f"{n / 2**30:.1f} GiB"

    print(_table(["device", "name", "free", "total"],
                 [[d.id, d.name, gib(d.free_memory), gib(d.total_memory)] for d in devices]))
    return 0


# -- eval / runs ----------------------------------------------------------------------------------
class _ProgressPrinter:
    """One self-overwriting progress line on stderr when it is a terminal; quiet otherwise."""

    def __init__(self, enabled: bool, prefix: str) -> None:
        self.enabled = enabled
        self.prefix = prefix
        self.width = 0

    def __call__(self, p: Any) -> None:
        if not self.enabled:
            return
        bar = "#" * int(20 * p.fraction)
        eta = f" eta {p.eta_s:.0f}s" if p.eta_s else ""
        rate = f" {p.rate:.0f}/s" if p.rate else ""
        line = f"{self.prefix} {p.stage:<17} [{bar:<20}] {p.done}/{p.total}{rate}{eta}"
        sys.stderr.write("\r" + line.ljust(self.width))
        self.width = len(line)
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()


def _hnsw_config(args: argparse.Namespace) -> Any:
    from embtui.engine.search import HnswConfig

    base = HnswConfig()
    return HnswConfig(
        metric=base.metric, dtype=args.hnsw_dtype or base.dtype,
        connectivity=args.hnsw_connectivity or base.connectivity,
        expansion_add=args.hnsw_expansion_add or base.expansion_add,
        expansion_search=args.hnsw_expansion_search or base.expansion_search,
    )


def cmd_eval(args: argparse.Namespace) -> int:
    from embtui.engine.devices import check_device_name
    from embtui.engine.evaluate import (EvalRequest, check_run_file, depth_note, run_evaluation,
                                        write_trec_run)
    from embtui.engine.metrics import parse_ks
    from embtui.engine.models import resolve_spec

    ks = parse_ks(args.k)
    if args.run_file:
        check_run_file(args.run_file)  # before any run row exists
    if args.device:
        check_device_name(args.device)
    store = _store(args, create=False)
    # an unknown model name fails first and at once (offline: no network call at all)
    specs = [resolve_spec(name, store, **_spec_overrides(args)) for name in args.model]
    args.split = _default_split(store.get_project(args.project), args.split)  # fails fast with a hint
    store.qrels(args.project, args.split)
    hnsw = _hnsw_config(args)
    requests = []
    for spec in specs:
        requests.append(EvalRequest(project=args.project, model=spec, split=args.split,
                                    device=args.device, index=args.index, hnsw=hnsw, ks=ks,
                                    ignore_identical_ids=args.ignore_identical_ids,
                                    skip_unanswerable=args.skip_unanswerable,
                                    depth=1000 if args.run_file else None,
                                    cache_dtype="float16" if args.cache_f16 else "float32"))
    note = depth_note(requests[0], store.get_project(args.project).documents) if requests else None
    if note:  # said once, not per model
        print(f"embtui: note: {note}", file=sys.stderr)
    reused: dict[int, Any] = {}  # request index -> identical finished run
    if not args.force:
        from embtui.engine.runs import find_identical_run, identical_note

        for i, req in enumerate(requests):
            same = find_identical_run(store, req)
            if same is not None:
                reused[i] = same
                print(f"embtui: {identical_note(same)}", file=sys.stderr)
    if args.detach:
        from embtui.jobs.cli import detach_eval

        todo = [req for i, req in enumerate(requests) if i not in reused]
        if todo:
            return detach_eval(store, todo, args)
        if args.json:
            _print_json({"job_ids": [], "reused_runs": [r.id for r in reused.values()]})
        return 0
    results: list[tuple[Any, Any, bool]] = []  # (run, rankings or None, reused)
    show = sys.stderr.isatty() and not args.json
    for i, req in enumerate(requests):
        if i in reused:
            results.append((reused[i], None, True))
            continue
        printer = _ProgressPrinter(show, f"[{i + 1}/{len(requests)}] {req.model.name}")
        try:
            res = run_evaluation(store, req, progress=printer)
            results.append((res.run, res.rankings, False))
        finally:
            printer.close()
    if args.run_file:
        for run, rankings, _ in results:
            path = Path(args.run_file)
            if len(results) > 1:
                path = path.with_name(f"{path.stem}.run{run.id}{path.suffix}")
            write_trec_run(path, rankings if rankings is not None else store.run_rankings(run.id),
                           tag=f"embtui-{run.model_name}")
            if not args.json:
                print(f"run file: {path}", file=sys.stderr)
    for run, _, again in results:  # damaged artifacts found and healed, low HNSW recall
        for w in ([] if again else run.info.get("warnings") or []):
            print(f"warning: run {run.id} ({run.model_name}): {w}", file=sys.stderr)
    if args.json:
        _print_json({"runs": [{**_run_json(run), "reused": again} for run, _, again in results]})
        return 0
    _print_runs_table([run for run, _, _ in results], ks)
    for run, _, again in results:
        note = run.info.get("summary", "")
        recall = run.info.get("ann_recall@10")
        if recall is not None:
            note += f"; HNSW recall@10 vs exact {recall:.4f}"
        print(f"run {run.id} ({run.model_name}){' (reused)' if again else ''}: {note}")
    return 0


def _default_split(project: Any, split: str | None) -> str:
    """--split as given, else the project's only split, else `test` if it has one."""
    if split:
        return split
    splits = list(project.splits)
    if len(splits) == 1:
        return splits[0]
    if "test" in splits or not splits:
        return "test"
    raise EmbtuiError(f"project '{project.name}' has no split 'test'",
                      f"pass --split, one of: {', '.join(splits)}")


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
    print(_table(headers, rows))


def cmd_runs_delete(store: Any, args: argparse.Namespace) -> int:
    """`embtui runs delete ID...`: asks first (on a terminal) unless --yes."""
    from embtui.engine.runs import delete_runs

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
        _print_json({"deleted": [r.id for r in runs], "files_removed": removed})
        return 0
    files = f"; removed {len(removed)} file(s)" if removed else ""
    print(f"deleted run(s) {listing}{files}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    store = _store(args, create=False)
    if args.action == "delete":
        return cmd_runs_delete(store, args)
    if args.ids:
        raise EmbtuiError(f"unexpected argument(s) {' '.join(map(str, args.ids))}",
                          "to delete runs: `embtui runs delete ID...`")
    runs = store.list_runs(project=args.project)
    if args.json:
        _print_json({"runs": [_run_json(r) for r in runs]})
        return 0
    if not runs:
        print("no runs yet: start one with `embtui eval --project NAME --model MODEL`")
        return 0
    for project in dict.fromkeys(r.project for r in runs):
        for split in dict.fromkeys(r.split for r in runs if r.project == project):
            print(f"\n{project} / {split}")
            _print_runs_table([r for r in runs if r.project == project and r.split == split])
    return 0


def cmd_tui(args: argparse.Namespace) -> int:
    from embtui.tui.app import run_app

    return run_app(args.workspace)


# -- parser ---------------------------------------------------------------------------------------
def _add_spec_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model options (override the saved spec)")
    g.add_argument("--batch-size", type=int, help="texts per forward pass (default 32)")
    g.add_argument("--precision", choices=["fp32", "fp16", "bf16"])
    g.add_argument("--max-length", type=int, help="max_seq_length in tokens")
    g.add_argument("--query-prompt", help="text prepended to every query")
    g.add_argument("--doc-prompt", help="text prepended to every document")
    g.add_argument("--query-prompt-name", help="name of a prompt stored with the model")
    g.add_argument("--doc-prompt-name", help="name of a prompt stored with the model")
    g.add_argument("--truncate-dim", type=int, help="keep the first N dimensions (Matryoshka)")
    g.add_argument("--no-normalize", action="store_true", help="do not L2-normalise embeddings")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="allow the model's own Python code to run (off unless you opt in)")


def build_parser() -> argparse.ArgumentParser:
    from embtui import __version__

    parser = argparse.ArgumentParser(
        prog="embtui", description="Choose, check and improve embedding models on your own data. "
        "With no command, opens the terminal app.")
    parser.add_argument("--workspace", metavar="DIR",
                        help="workspace folder (default: $EMBTUI_WORKSPACE or ./workspaces/default)")
    parser.add_argument("--version", action="version", version=f"embtui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("import", help="import a dataset into a project")
    p.add_argument("kind", choices=["beir", "pairs"], help="beir: a BEIR folder; pairs: JSONL/CSV/Parquet")
    p.add_argument("path", help="the folder (beir) or file (pairs)")
    p.add_argument("--project", required=True)
    p.add_argument("--replace", action="store_true", help="overwrite an existing project")
    p.add_argument("--split", default="train", help="split for pair files (default train)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("projects", help="list projects with their counts")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_projects)

    p = sub.add_parser("models", help="list, add or remove saved model specs")
    p.add_argument("action", nargs="?", choices=["list", "add", "remove"], default="list")
    p.add_argument("name", nargs="?")
    p.add_argument("--model", help="hub id, local path or 'bm25' (default: the name)")
    p.add_argument("--revision")
    p.add_argument("--device", help="preferred device for this model")
    p.add_argument("--replace", action="store_true", help="overwrite a saved spec of that name")
    p.add_argument("--json", action="store_true")
    _add_spec_options(p)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("devices", help="list CPU, CUDA and MPS devices with memory")
    p.add_argument("--torch", action="store_true",
                   help="ask torch (slow to import) instead of NVML; also lists MPS")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("eval", help="evaluate models on a project split and store the runs")
    p.add_argument("--project", required=True)
    p.add_argument("--model", action="append", required=True,
                   help="saved spec name, hub id, local path or 'bm25' (repeat for several)")
    p.add_argument("--split", help="default: the project's only split, else test")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default: the spec's, else auto)")
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
    _add_spec_options(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("runs", help="list stored runs with their metrics, or delete runs")
    p.add_argument("action", nargs="?", choices=["list", "delete"], default="list")
    p.add_argument("ids", nargs="*", type=int, metavar="ID", help="run ids (for delete)")
    p.add_argument("--project")
    p.add_argument("--yes", "-y", action="store_true", help="delete without asking")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)
    from embtui.jobs.cli import add_commands
    add_commands(sub)
    from embtui.compare_cli import add_commands as add_compare_commands
    add_compare_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. A mistake or a resource fault (disk full, read-only or damaged workspace)
    is one line and exit 2; a bug is one line pointing at a crash log with the traceback, exit 1."""
    args: argparse.Namespace | None = None
    try:
        from embtui.errors import check_environment

        check_environment()
        parser = build_parser()
        args = parser.parse_args(argv)
        func: Callable[[argparse.Namespace], int] = getattr(args, "func", cmd_tui)
        return func(args)
    except EmbtuiError as exc:
        print(f"embtui: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("embtui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `embtui runs | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except MemoryError:
        print("embtui: error: out of memory (try a smaller --batch-size, fewer --k cutoffs, or a "
              "machine with more memory)", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the last line of defence: never a traceback on screen
        return _report_crash(exc, args)


def _report_crash(exc: Exception, args: argparse.Namespace | None) -> int:
    from embtui.errors import crash_log, resource_error

    fault = resource_error(exc)
    if fault is not None:
        print(f"embtui: error: {fault}", file=sys.stderr)
        return 2
    workspace = None
    try:
        from embtui.store import default_workspace

        root = Path(args.workspace) if args is not None and args.workspace else default_workspace()
        workspace = root if root.is_dir() else None
    except Exception:  # noqa: BLE001 - a bad workspace setting must not hide the crash
        pass
    log = crash_log(exc, workspace)
    first = (str(exc).splitlines() or [""])[0][:200]
    where = f"the traceback is in {log}" if log else "no crash log could be written"
    print(f"embtui: internal error: {type(exc).__name__}: {first} ({where}; please report it)",
          file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
