"""`eval --detach`, `embtui jobs [follow|cancel|resume|log]` and `embtui doctor`."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from embtui.cli.output import fmt_eta, open_workspace, print_json, table
from embtui.errors import EmbtuiError


def detach_eval(plan: Any, args: argparse.Namespace) -> int:
    """`embtui eval ... --detach`: one background job per model of the plan that must run; prints
    the job id(s) and returns."""
    from embtui.api.evaluations import submit_jobs

    if getattr(args, "run_file", None):
        raise EmbtuiError("--run-file cannot be combined with --detach",
                          "run without --detach to write a run file")
    requests = plan.todo
    ids = submit_jobs(plan)
    if getattr(args, "json", False):
        out: dict[str, Any] = {"job_ids": ids}
        if len(ids) == 1:
            out["job_id"] = ids[0]
        print_json(out)
        return 0
    for job_id, req in zip(ids, requests):
        print(f"job {job_id}: {req.model.name} on {req.project}/{req.split}")
    print(f"follow with `embtui jobs follow {ids[0]}`; list with `embtui jobs`", file=sys.stderr)
    return 0


# -- embtui jobs ---------------------------------------------------------------------------------
def _list_json(info: Any) -> dict[str, Any]:
    d = info.to_dict()
    d.pop("log_tail", None)
    return d


def _cmd_list(ws: Any, args: argparse.Namespace) -> int:
    from embtui.api.jobs import list_jobs

    jobs = list_jobs(ws)
    if args.json:
        print_json({"jobs": [_list_json(j) for j in jobs]})
        return 0
    if not jobs:
        print("no jobs yet: start one with `embtui eval --project NAME --model MODEL --detach`")
        return 0
    rows = []
    for j in jobs:
        rows.append([j.id, j.state, f"{100 * j.progress:.0f}%", j.stage, j.model, f"{j.project}/{j.split}",
                     j.device or "", j.batch_size or "", f"{j.items_per_s:.0f}" if j.items_per_s else "",
                     fmt_eta(j.eta_s) if j.state == "running" else "", j.run_id or "", j.created_at])
    print(table(["job", "state", "progress", "stage", "model", "project", "device", "batch", "items/s",
                  "eta", "run", "created"], rows))
    for j in jobs:
        if j.error and j.state in ("failed", "interrupted"):
            print(f"{j.id}: {j.error}")
        elif j.message and not j.finished:
            print(f"{j.id}: {j.stage}: {j.message}")
    return 0


class FollowBar:
    """A live progress line: redrawn in place on a terminal (fitted to its width), one line per stage
    change otherwise (a log file, a CI pipe)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.drawn = False
        self.last_stage = ""

    def line(self, j: Any, columns: int) -> str:
        """The progress line for job info ``j``, at most ``columns - 1`` characters on a terminal."""
        rate = f" {j.items_per_s:.0f}/s" if j.items_per_s and j.state == "running" else ""
        eta = f" eta {fmt_eta(j.eta_s)}" if j.eta_s and j.state == "running" else ""
        counts = f" {j.done}/{j.total}" if j.total else ""
        batch = f" batch {j.batch_size}" if j.batch_size else ""
        note = f" ({j.message})" if j.message and not j.finished else ""
        tail = f" {100 * j.progress:3.0f}% {j.stage}{counts}{note}{rate}{eta}{batch}"
        if not self.tty:
            return f"{j.id} {j.state:<11} [{'#' * int(30 * j.progress):<30}]{tail}"
        head = f"{j.state} "
        room = columns - 1 - len(head) - len(tail) - 2
        if room < 10 and note:  # a narrow terminal: drop the note, the batch, then the ETA
            tail = f" {100 * j.progress:3.0f}% {j.stage}{counts}{rate}{eta}{batch}"
            room = columns - 1 - len(head) - len(tail) - 2
        if room < 10:
            tail = f" {100 * j.progress:3.0f}% {j.stage}{counts}{rate}{eta}"
            room = columns - 1 - len(head) - len(tail) - 2
        width = max(10, min(30, room))
        return (head + f"[{'#' * int(width * j.progress):<{width}}]" + tail)[: max(1, columns - 1)]

    def __call__(self, j: Any) -> None:
        if self.tty:
            import shutil

            columns = shutil.get_terminal_size((80, 24)).columns
            # carriage return, the line, clear to its end: never longer than the terminal, so the
            # line never wraps and is redrawn in place
            sys.stderr.write("\r" + self.line(j, columns) + "\x1b[K")
            sys.stderr.flush()
            self.drawn = True
        elif j.stage != self.last_stage or j.finished:
            print(self.line(j, 0), file=sys.stderr, flush=True)
        self.last_stage = j.stage

    def close(self) -> None:
        if self.tty and self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.drawn = False


def _cmd_follow(ws: Any, args: argparse.Namespace) -> int:
    from embtui.api.jobs import follow_job, get_job

    info = get_job(ws, args.job_id, log_lines=0)
    bar = FollowBar()
    if bar.tty and not info.finished:
        print(f"following job {info.id}: {info.model} on {info.project}/{info.split}, "
              f"{info.device or 'device pending'} (Ctrl-C stops following; the job keeps running)",
              file=sys.stderr)
    try:
        final = follow_job(ws, info.id, bar)
    except KeyboardInterrupt:
        bar.close()
        print(f"stopped following; job {info.id} keeps running "
              f"(`embtui jobs follow {info.id}` to watch it again)", file=sys.stderr)
        return 130
    finally:
        bar.close()
    if args.json:
        print_json(final.to_dict())
    else:
        what = f"run {final.run_id}" if final.run_id else "no run"
        print(f"job {final.id} {final.state} ({what})" + (f": {final.error}" if final.error else ""))
        if final.state == "interrupted":
            print(f"resume with `embtui jobs resume {final.id}`", file=sys.stderr)
    return 0 if final.state == "done" else 1


def _cmd_cancel(ws: Any, args: argparse.Namespace) -> int:
    from embtui.api.jobs import cancel_job, get_job

    cancel_job(ws, args.job_id)
    info = get_job(ws, args.job_id, log_lines=0)
    deadline = time.monotonic() + args.wait
    while info.state in ("running", "queued") and time.monotonic() < deadline:
        time.sleep(0.2)
        info = get_job(ws, args.job_id, log_lines=0)
    if args.json:
        print_json(_list_json(info))
    elif info.state in ("running", "queued"):
        print(f"job {info.id}: cancel requested; it stops after its current batch")
    else:
        print(f"job {info.id} {info.state}")
    return 0


def _cmd_resume(ws: Any, args: argparse.Namespace) -> int:
    from embtui.api.jobs import get_job, resume_job

    resume_job(ws, args.job_id)
    info = get_job(ws, args.job_id, log_lines=0)
    if args.json:
        print_json(_list_json(info))
    else:
        print(f"job {info.id} resumed (worker pid {info.pid}); follow with `embtui jobs follow {info.id}`")
    return 0


def _cmd_log(ws: Any, args: argparse.Namespace) -> int:
    from embtui.api.jobs import job_log

    text = job_log(ws, args.job_id, args.lines)
    if text:
        print(text)
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    ws = open_workspace(args)
    if args.action == "list":
        return _cmd_list(ws, args)
    if not args.job_id:
        raise EmbtuiError(f"`embtui jobs {args.action}` needs a job id", "list jobs with `embtui jobs`")
    return {"follow": _cmd_follow, "cancel": _cmd_cancel, "resume": _cmd_resume,
            "log": _cmd_log}[args.action](ws, args)


# -- embtui doctor -------------------------------------------------------------------------------
def cmd_doctor(args: argparse.Namespace) -> int:
    from embtui.api.jobs import check_workspace

    ws = open_workspace(args, must_exist=False)
    report = check_workspace(ws, fix=args.fix)
    if args.json:
        print_json(report.to_dict())
        return 0 if report.ok else 1
    for c in report.checks:
        print(f"{'ok ' if c['ok'] else 'BAD'}  {c['check']:<16} {c['detail']}")
    for p in report.problems:
        print(f"problem: {p}")
    for w in report.warnings:
        print(f"warning: {w}")
    if report.orphans:
        print(f"{len(report.orphans)} orphan file(s) (left by interrupted writers; readers ignore them)"
              + ("" if args.fix else "; remove with `embtui doctor --fix`") + ":")
        for o in report.orphans[:20]:
            print(f"  {o}")
        if len(report.orphans) > 20:
            print(f"  ... and {len(report.orphans) - 20} more")
    for f in report.fixed:
        print(f"fixed: {f}")
    # a database that does not open is beyond --fix (the message says what to do instead)
    db_bad = any(c["check"] == "database" and not c["ok"] for c in report.checks)
    print("workspace is healthy" if report.ok else "workspace has problems"
          + ("" if args.fix or db_bad else " (some can be repaired with `embtui doctor --fix`)"))
    return 0 if report.ok else 1


def add_commands(sub: Any) -> None:
    """Add `jobs` and `doctor` to the embtui command parser."""
    p = sub.add_parser("jobs", help="list, follow, cancel, resume background jobs",
                              description="Background jobs of this workspace (started with "
                              "`embtui eval --detach` or from the app).")
    p.add_argument("action", nargs="?", choices=["list", "follow", "cancel", "resume", "log"],
                   default="list")
    p.add_argument("job_id", nargs="?", help="job id (a unique prefix is enough)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--lines", type=int, default=200, help="log lines to show (log)")
    p.add_argument("--wait", type=float, default=10.0,
                   help="seconds `cancel` waits for the worker to stop (default 10)")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("doctor", help="check the workspace: database, files, cache, stuck runs")
    p.add_argument("--json", action="store_true")
    p.add_argument("--fix", action="store_true",
                   help="remove orphan files, drop rows of missing artifacts, end stuck runs")
    p.set_defaults(func=cmd_doctor)
