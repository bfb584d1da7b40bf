"""What every command shares: opening the workspace, tables, JSON, progress lines, exit codes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from embtui.errors import EmbtuiError

# Exit codes (as Harlequin's: a user's mistake or a resource fault is not a crash).
EXIT_OK = 0
EXIT_BUG = 1
"""An unexpected exception: one line on stderr, the traceback in a crash log."""
EXIT_USAGE = 2
"""A mistake in the input or a resource fault (disk full, damaged workspace): one line."""
EXIT_INTERRUPTED = 130


def open_store(args: argparse.Namespace, create: bool = True) -> Any:
    """The Store of ``--workspace`` (else the default); ``create=False``: it must exist."""
    from embtui.api.workspace import Store, Workspace, default_workspace

    root = Path(args.workspace) if args.workspace else default_workspace()
    ws = Workspace(root)
    ws.check_paths()
    if not create and not ws.exists():
        raise EmbtuiError(f"no embtui workspace at {ws.root}",
                          "pass --workspace DIR or create one with `embtui import`")
    return Store.open(ws.root)


def open_workspace(args: argparse.Namespace, must_exist: bool = True) -> Any:
    """The Workspace of ``--workspace`` without opening its database (jobs, doctor)."""
    from embtui.api.workspace import Workspace, default_workspace

    ws = Workspace(Path(args.workspace) if args.workspace else default_workspace())
    if must_exist and not ws.exists():
        raise EmbtuiError(f"no embtui workspace at {ws.root}",
                          "pass --workspace DIR or create one with `embtui import`")
    return ws


def print_json(obj: Any) -> None:
    """``obj`` as indented strict JSON on stdout (NaN and infinities become null)."""
    from embtui.api.compare import nan_to_none

    print(json.dumps(nan_to_none(obj), indent=2, default=str))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: the first two columns left-aligned, the rest right-aligned."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        return "  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))

    lines = [fmt(cells[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in cells[1:]]
    return "\n".join(line.rstrip() for line in lines)


def fmt_eta(eta: float | None) -> str:
    """Seconds as 4m05s or 1h02m; empty when unknown."""
    if eta is None:
        return ""
    eta = int(eta)
    return f"{eta // 3600}h{eta % 3600 // 60:02d}m" if eta >= 3600 else f"{eta // 60}m{eta % 60:02d}s"


class ProgressLine:
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
