"""User-facing errors (data, usage and resource faults in one line), EMBTUI_* settings, crash logs."""

from __future__ import annotations

import errno
import os
import re
import shutil
import sys
import tempfile
import traceback
from datetime import datetime
from pathlib import Path


class EmbtuiError(Exception):
    """A mistake the user can fix (bad input, unknown name, wrong option).

    The CLI prints ``str(error)`` on one line (plus the hint) and exits non-zero; it never shows
    a traceback for these.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class DataError(EmbtuiError):
    """Malformed input data. Names the file, the line (1-based) and the field where known."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if file is not None:
            where = str(file)
            if line is not None:
                where += f":{line}"
            where += ": "
        if field is not None:
            message = f"field '{field}': {message}"
        super().__init__(where + message, hint)
        self.file = file
        self.line = line
        self.field = field


class NotFound(EmbtuiError):
    """A project, model, run or job that does not exist."""


class Cancelled(Exception):
    """Raised inside engine steps when their cancel token is set."""


class ResourceError(EmbtuiError):
    """A fault of the machine or of a file rather than of the input: disk full, a read-only
    workspace, a damaged database. Said in one line, like any EmbtuiError, with what to do."""


def _is_no_space(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    text = str(exc)
    return "No space left on device" in text or "disk is full" in text.lower()


def _where(exc: BaseException) -> str | None:
    name = getattr(exc, "filename", None)
    if name:
        return str(name)
    m = re.search(r'"([^"]+)"', str(exc))
    return m.group(1) if m else None


def _free_bytes(path: str | None) -> int | None:
    p = Path(path) if path else None
    while p is not None and not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free if p is not None else None
    except OSError:
        return None


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{max(n, 1) / 1024:.0f} KiB"


def resource_error(exc: BaseException, writing: str | None = None, needed: int | None = None,
                   at: str | os.PathLike[str] | None = None) -> ResourceError | None:
    """The one-line form of a disk-full or read-only fault (``OSError`` or DuckDB's IO errors),
    or None when ``exc`` is neither. ``writing`` says what was being written; ``needed`` how many
    bytes it needed, where known; ``at`` a path on the disk that filled up (for its free space)."""
    if isinstance(exc, ResourceError):
        return exc
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:  # the cause may be chained (fail_run on a full disk)
        seen.add(id(cur))
        where = _where(cur)
        what = writing or (f"writing {where}" if where else "writing the workspace")
        if _is_no_space(cur):
            free = _free_bytes(where or (str(at) if at else None))
            size = f"; it needed {_mib(needed)}" if needed else ""
            left = "" if free is None else f", {_mib(free)} free" if free else ", no space left"
            return ResourceError(f"disk full while {what}{size}{left}; nothing half-written was kept",
                                 "free some space, then run it again")
        if (isinstance(cur, OSError) and cur.errno == errno.EROFS) or "Read-only file system" in str(cur):
            return ResourceError(f"the workspace is read-only: cannot write {where or 'to it'}",
                                 "read commands work; to write, use a writable copy: cp -r it, then --workspace COPY")
        if isinstance(cur, PermissionError):
            return ResourceError(f"permission denied: {where or cur.strerror}",
                                 "check the file's owner and permissions")
        cur = cur.__cause__ or cur.__context__
    return None


def crash_log(exc: BaseException, workspace: str | os.PathLike[str] | None = None) -> Path | None:
    """Write ``exc``'s traceback to ``<workspace>/logs/crash-<time>.log`` (else
    ``~/.cache/embtui/crash-<time>.log``, else the temp folder); returns the file, None if all fail."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    folders = [Path(workspace) / "logs"] if workspace and Path(workspace).is_dir() else []
    folders += [Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "embtui",
                Path(tempfile.gettempdir())]
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"crash-{stamp}.log"
            path.write_text(f"embtui crash at {datetime.now().isoformat()}\n"
                            f"argv: {sys.argv}\n\n{text}", encoding="utf-8")
            return path
        except OSError:
            continue
    return None


def env_number(name: str, default: float, *, integer: bool = False, minimum: float = 0,
               example: str | None = None) -> float:
    """``$name`` as a number (``default`` when unset or empty), or an EmbtuiError naming the
    variable, the bad value and an example of a good one."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value: float = int(raw) if integer else float(raw)
        ok = value >= minimum and value == value and value != float("inf")
    except ValueError:
        ok = False
    if not ok:
        kind = "a whole number" if integer else "a number"
        raise EmbtuiError(f"{name}={raw!r} is not valid: it must be {kind} >= {minimum:g}",
                          f"e.g. {name}={example or (int(default) if integer else f'{default:g}')}, "
                          f"or unset it")
    return value


# Every numeric EMBTUI_* setting: name -> (default, whole number?, minimum). check_environment()
# validates them all up front, so a bad value is one line before any work starts.
ENV_NUMBERS: dict[str, tuple[float, bool, float]] = {
    "EMBTUI_LOCK_TIMEOUT": (60.0, False, 0),
    "EMBTUI_CHUNK_TEXTS": (512, True, 1),
    "EMBTUI_JOBS_PER_DEVICE": (1, True, 1),
    "EMBTUI_JOBS_HEARTBEAT_TIMEOUT": (30.0, False, 1),
}


def check_environment() -> None:
    """Raise EmbtuiError for the first numeric EMBTUI_* variable whose value is not valid."""
    for name, (default, integer, minimum) in ENV_NUMBERS.items():
        env_number(name, default, integer=integer, minimum=minimum)
