"""The `embtui` command: the parser, the dispatch, and the one place errors become exit codes.

With no command it opens the terminal app. Each command family lives in its own module
(data, understand, models, pipelines, evaluate, sweep, profile, frontier, route, train, jobs,
compare) and
registers its subcommands with ``add_commands``;
output.py holds what they share. A mistake or a resource fault is one line and exit 2; a bug
is one line pointing at a crash log (exit 1); no traceback reaches the terminal.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from embtui.cli.output import EXIT_BUG, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from embtui.errors import EmbtuiError


def cmd_tui(args: argparse.Namespace) -> int:
    from embtui.tui.app import run_app

    return run_app(args.workspace)


def build_parser() -> argparse.ArgumentParser:
    from embtui import __version__
    from embtui.cli import (compare, data, evaluate, frontier, jobs, models, pipelines, profile, route,
                            sweep, train, understand)

    parser = argparse.ArgumentParser(
        prog="embtui", description="Choose, check and improve embedding models on your own data. "
        "With no command, opens the terminal app.")
    parser.add_argument("--workspace", metavar="DIR",
                        help="workspace folder (default: $EMBTUI_WORKSPACE or ./workspaces/default)")
    parser.add_argument("--version", action="version", version=f"embtui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for family in (data, understand, models, pipelines, evaluate, sweep, profile, frontier, route, train,
                   jobs, compare):
        family.add_commands(sub)
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
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("embtui: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `embtui runs | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except MemoryError:
        print("embtui: error: out of memory (try a smaller --batch-size, fewer --k cutoffs, or a "
              "machine with more memory)", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - the last line of defence: never a traceback on screen
        return report_crash(exc, args)


def report_crash(exc: Exception, args: argparse.Namespace | None) -> int:
    from embtui.errors import crash_log, resource_error

    fault = resource_error(exc)
    if fault is not None:
        print(f"embtui: error: {fault}", file=sys.stderr)
        return EXIT_USAGE
    workspace = None
    try:
        from embtui.api.workspace import default_workspace

        root = Path(args.workspace) if args is not None and args.workspace else default_workspace()
        workspace = root if root.is_dir() else None
    except Exception:  # noqa: BLE001 - a bad workspace setting must not hide the crash
        pass
    log = crash_log(exc, workspace)
    first = (str(exc).splitlines() or [""])[0][:200]
    where = f"the traceback is in {log}" if log else "no crash log could be written"
    print(f"embtui: internal error: {type(exc).__name__}: {first} ({where}; please report it)",
          file=sys.stderr)
    return EXIT_BUG

