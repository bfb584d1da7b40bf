"""The workspace: its folder layout and short-lived, lock-retrying DuckDB connections."""

from __future__ import annotations

import os
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from embtui.errors import EmbtuiError
from embtui.store.schema import MIGRATIONS, SCHEMA_VERSION

DB_NAME = "embtui.duckdb"
# How long a caller waits for another process's write to finish before giving up.
LOCK_TIMEOUT_S = float(os.environ.get("EMBTUI_LOCK_TIMEOUT", "60"))


def default_workspace() -> Path:
    """``$EMBTUI_WORKSPACE`` if set, else ``./workspaces/default``."""
    env = os.environ.get("EMBTUI_WORKSPACE")
    return Path(env) if env else Path.cwd() / "workspaces" / "default"


class Workspace:
    """A folder holding one DuckDB file plus large artifacts (embeddings, indexes) as files.

    DuckDB lets one process hold a file open for writing at a time, so every caller opens a
    connection for one short unit of work and closes it; a caller that finds the file locked by
    another process (a worker, a second TUI) retries with backoff instead of failing.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.db_path = self.root / DB_NAME

    # -- folders for artifacts ------------------------------------------------------------
    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def index_dir(self) -> Path:
        return self.root / "indexes"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    def rel(self, path: Path) -> str:
        """A path as stored in the DB: relative to the workspace root when inside it."""
        try:
            return str(Path(path).resolve().relative_to(self.root))
        except ValueError:
            return str(Path(path).resolve())

    def abs(self, stored: str) -> Path:
        p = Path(stored)
        return p if p.is_absolute() else self.root / p

    # -- connections ------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.db_path.exists()

    def init(self) -> None:
        """Create the folder and DB if needed and apply pending migrations."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self.connect() as con:
            _migrate(con)

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one short unit of work, retrying while another process holds the lock."""
        if read_only and not self.db_path.exists():
            raise EmbtuiError(f"no workspace database at {self.db_path}",
                              "run a command that creates it, e.g. `embtui import`")
        con = _open_with_retry(self.db_path, read_only)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection inside BEGIN/COMMIT; any exception rolls everything back."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


def _open_with_retry(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:  # pragma: no branch
            if not _is_lock_error(exc) or time.monotonic() > deadline:
                if _is_lock_error(exc):
                    raise EmbtuiError(
                        f"the workspace database {path} stayed locked by another process for "
                        f"{LOCK_TIMEOUT_S:.0f} s", "close other embtui sessions or wait for the job"
                    ) from exc
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.1)


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    current = int(row[0]) if row else 0
    if current > SCHEMA_VERSION:
        raise EmbtuiError(
            f"this workspace was written by a newer embtui (schema {current} > {SCHEMA_VERSION})",
            "upgrade embtui",
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        con.execute("BEGIN TRANSACTION")
        try:
            for stmt in MIGRATIONS[version - 1]:
                con.execute(stmt)
            con.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(version)]
            )
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
