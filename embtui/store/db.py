"""The workspace: its folder layout and short-lived, lock-retrying DuckDB connections."""

from __future__ import annotations

import os
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from embtui.errors import EmbtuiError, ResourceError, env_number, resource_error
from embtui.store.schema import MIGRATIONS, SCHEMA_VERSION

DB_NAME = "embtui.duckdb"
# How long a caller waits for another process's write to finish before giving up.
LOCK_TIMEOUT_DEFAULT_S = 60.0


def lock_timeout_s() -> float:
    """``$EMBTUI_LOCK_TIMEOUT`` (seconds, default 60), validated: a bad value is one clear line."""
    return env_number("EMBTUI_LOCK_TIMEOUT", LOCK_TIMEOUT_DEFAULT_S)


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
        # set by init(): the DB exists but this process cannot write there (read-only mount,
        # permissions); every connection is then read-only and a write says so in one line
        self.read_only = False

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
        """Create the folder and DB if needed and apply pending migrations.

        A workspace whose folder or DB this process cannot write is opened read-only (reads work,
        a write says "the workspace is read-only"); a file that is not an embtui database, or a
        damaged one, is one line naming the file.
        """
        self.check_paths()
        if self.db_path.exists() and not (os.access(self.db_path, os.W_OK)
                                          and os.access(self.root, os.W_OK)):
            self.read_only = True
            with self.connect() as con:
                if "meta" not in _check_embtui_db(con, self.db_path):
                    raise ResourceError(f"{self.db_path} is not an embtui database (it is empty)",
                                        "use another workspace with --workspace DIR")
                _check_schema(con, writable=False)
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise resource_error(exc, f"creating the workspace folder {self.root}") or exc
        with self.connect() as con:
            _check_embtui_db(con, self.db_path)
            _migrate(con)

    def check_paths(self) -> None:
        """A workspace path naming a file, or a DB path naming a folder, is one clear line."""
        if self.root.exists() and not self.root.is_dir():
            raise EmbtuiError(f"the workspace {self.root} is a file, not a folder",
                              "pass --workspace a folder; embtui creates it if it is missing")
        if self.db_path.exists() and not self.db_path.is_file():
            raise ResourceError(f"{self.db_path} is not an embtui database (it is a folder)",
                                "move it aside, or use another workspace with --workspace DIR")

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one short unit of work, retrying while another process holds the lock.

        DuckDB faults come out as one-line errors: a damaged or foreign file, a full disk, a
        write to a read-only workspace.
        """
        if read_only and not self.db_path.exists():
            raise EmbtuiError(f"no workspace database at {self.db_path}",
                              "run a command that creates it, e.g. `embtui import`")
        con = _open_with_retry(self.db_path, read_only or self.read_only)
        try:
            yield con
        except duckdb.Error as exc:
            err = _db_error(exc, self)
            if err is exc:
                raise
            raise err from exc
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
                try:
                    con.execute("ROLLBACK")
                except duckdb.Error:  # e.g. the disk is full: the original error says why
                    pass
                raise
            con.execute("COMMIT")


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


def _open_with_retry(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    timeout = lock_timeout_s()
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            if not _is_lock_error(exc) or time.monotonic() > deadline:
                if _is_lock_error(exc):
                    raise EmbtuiError(
                        f"the workspace database {path} stayed locked by another process for "
                        f"{timeout:.0f} s", "close other embtui sessions or wait for the job"
                    ) from exc
                err = _db_error(exc, None, path)
                if err is exc:
                    raise
                raise err from exc
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.1)


# DuckDB's words for a file it cannot use -> what they mean, in a few words
_DAMAGE = {"not a valid DuckDB database": "not a DuckDB file", "Corrupt database": "a checksum does not match",
           "checksum": "a checksum does not match", "Could not read enough bytes": "it is truncated",
           "Is a directory": "it is a folder", "file is too small": "it is truncated",
           "Serialization Error": "its contents cannot be read"}
_UNFIXABLE = ("embtui cannot repair it and `embtui doctor --fix` does not touch it: restore it from a "
              "backup, or move it aside and import your data into a fresh workspace")


def _db_error(exc: BaseException, ws: "Workspace | None", path: Path | None = None) -> Exception:
    """The one-line EmbtuiError for a DuckDB fault; ``exc`` itself when it is none we know."""
    path = path or (ws.db_path if ws else None)
    text = str(exc)
    why = next((short for words, short in _DAMAGE.items() if words in text), None)
    if why:
        return ResourceError(f"{path} is not an embtui database or is damaged ({why})", _UNFIXABLE)
    if "read-only mode" in text or "read-only" in text and "attached" in text:
        root = ws.root if ws else (path.parent if path else "")
        return ResourceError(f"the workspace {root} is read-only: this command writes to it",
                             "read commands such as runs, projects and compare still work; to write, use a "
                             "writable copy: cp -r it, then --workspace COPY")
    return resource_error(exc, f"writing the workspace database {path}") or exc  # type: ignore[return-value]


def _check_embtui_db(con: duckdb.DuckDBPyConnection, path: Path) -> set[str]:
    """A DuckDB file that holds tables but no embtui ``meta`` table belongs to something else."""
    tables = {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
    if tables and "meta" not in tables:
        raise ResourceError(f"{path} is a DuckDB database but not an embtui workspace "
                            f"(it has tables {', '.join(sorted(tables)[:5])})",
                            "embtui will not change it: use another folder with --workspace DIR")
    return tables


def _check_schema(con: duckdb.DuckDBPyConnection, writable: bool) -> int:
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    current = int(row[0]) if row else 0
    if current > SCHEMA_VERSION:
        raise EmbtuiError(
            f"this workspace was written by a newer embtui (schema {current} > {SCHEMA_VERSION})",
            "upgrade embtui",
        )
    if current < SCHEMA_VERSION and not writable:
        raise ResourceError(f"the workspace is read-only and was written by an older embtui "
                            f"(schema {current} < {SCHEMA_VERSION}): it cannot be upgraded in place",
                            "open a writable copy: cp -r it, then --workspace COPY")
    return current


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    current = _check_schema(con, writable=True)
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
