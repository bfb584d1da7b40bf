"""Job records, remembered batch sizes and workspace-health queries (all job SQL lives here).

Every method is one short connection or transaction, so a worker never holds the workspace lock for
long and the UI never waits on it. State changes are compare-and-set (``WHERE state IN ...`` and,
for a worker, ``AND pid = ?``), so a cancel, a dead-worker check and a worker finishing can race
without one silently overwriting another.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Sequence

import duckdb

from embtui.errors import EmbtuiError, NotFound
from embtui.store.db import Workspace, _db_error

JOB_STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
TERMINAL_STATES = ("done", "failed", "cancelled", "interrupted")

_COLUMNS = ("id, kind, request, state, run_id, device, pid, host, chunk_texts, attempts, error, "
            "created_at, started_at, finished_at, updated_at")


def _now() -> datetime:
    return datetime.now()


@dataclass(frozen=True)
class JobRow:
    """The durable record of one job."""

    id: str
    kind: str
    request: dict[str, Any]
    state: str
    run_id: int | None
    device: str | None
    pid: int | None
    host: str | None
    chunk_texts: int | None
    attempts: int
    error: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime | None


def _row(r: Sequence[Any]) -> JobRow:
    return JobRow(r[0], r[1], json.loads(r[2]) if r[2] else {}, r[3], r[4], r[5], r[6], r[7], r[8],
                  int(r[9] or 0), r[10], r[11], r[12], r[13], r[14])


def _placeholders(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


class JobStore:
    """Reads and writes of the ``jobs`` and ``batch_sizes`` tables of one workspace."""

    def __init__(self, ws: Workspace | str) -> None:
        self.ws = ws if isinstance(ws, Workspace) else Workspace(ws)

    # -- reading ------------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRow | None:
        with self.ws.connect() as con:
            r = con.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", [job_id]).fetchone()
        return _row(r) if r else None

    def require(self, job_id: str) -> JobRow:
        """The job with this id, or with this unique id prefix (handy on the command line)."""
        with self.ws.connect() as con:
            r = con.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", [job_id]).fetchone()
            if r is None and job_id:
                rows = con.execute(f"SELECT {_COLUMNS} FROM jobs WHERE starts_with(id, ?)",
                                   [job_id]).fetchall()
                if len(rows) > 1:
                    raise EmbtuiError(f"job id '{job_id}' is ambiguous ({len(rows)} jobs match)",
                                      "give more of the id")
                r = rows[0] if rows else None
        if r is None:
            raise NotFound(f"no job with id '{job_id}' in {self.ws.root}", "list jobs with `embtui jobs`")
        return _row(r)

    def list(self, states: Iterable[str] | None = None) -> list[JobRow]:
        """Newest first."""
        sql, params = f"SELECT {_COLUMNS} FROM jobs", []
        if states is not None:
            params = list(states)
            sql += f" WHERE state IN ({_placeholders(params)})"
        with self.ws.connect() as con:
            rows = con.execute(sql + " ORDER BY created_at DESC, id DESC", params).fetchall()
        return [_row(r) for r in rows]

    def ids(self) -> set[str]:
        with self.ws.connect() as con:
            return {r[0] for r in con.execute("SELECT id FROM jobs").fetchall()}

    # -- writing ------------------------------------------------------------------------------
    def create(self, job_id: str, kind: str, request: dict[str, Any], *, chunk_texts: int | None,
               device: str | None = None) -> None:
        now = _now()
        with self.ws.transaction() as con:
            con.execute(
                """INSERT INTO jobs (id, kind, request, state, device, chunk_texts, attempts,
                   created_at, updated_at) VALUES (?, ?, ?, 'queued', ?, ?, 0, ?, ?)""",
                [job_id, kind, json.dumps(request, sort_keys=True), device, chunk_texts, now, now])

    def set_worker(self, job_id: str, pid: int, host: str) -> bool:
        """Record the worker process of a queued job (the spawner and the worker both call it)."""
        with self.ws.transaction() as con:
            return con.execute(
                """UPDATE jobs SET pid = ?, host = ?, updated_at = ? WHERE id = ? AND state = 'queued'
                   RETURNING id""", [pid, host, _now(), job_id]).fetchone() is not None

    def set_device(self, job_id: str, pid: int, device: str) -> None:
        with self.ws.transaction() as con:
            con.execute("UPDATE jobs SET device = ?, updated_at = ? WHERE id = ? AND pid = ?",
                        [device, _now(), job_id, pid])

    def claim(self, job_id: str, pid: int) -> bool:
        """queued -> running for the worker that owns the job; False if it was cancelled meanwhile."""
        now = _now()
        with self.ws.transaction() as con:
            return con.execute(
                """UPDATE jobs SET state = 'running', started_at = ?, updated_at = ?, error = NULL,
                   attempts = attempts + 1 WHERE id = ? AND state = 'queued' AND pid = ? RETURNING id""",
                [now, now, job_id, pid]).fetchone() is not None

    def finish(self, job_id: str, pid: int, state: str, error: str | None = None) -> bool:
        """End the job as its worker (state done/failed/cancelled); False if someone else ended it."""
        assert state in TERMINAL_STATES
        now = _now()
        with self.ws.transaction() as con:
            return con.execute(
                """UPDATE jobs SET state = ?, error = ?, finished_at = ?, updated_at = ?
                   WHERE id = ? AND pid = ? AND state IN ('queued', 'running', 'interrupted')
                   RETURNING id""", [state, error, now, now, job_id, pid]).fetchone() is not None

    def mark_interrupted(self, job_id: str, state: str, pid: int | None, error: str) -> bool:
        """A worker died: job -> interrupted and its run, if still 'running', -> failed (one transaction)."""
        now = _now()
        with self.ws.transaction() as con:
            row = con.execute(
                """UPDATE jobs SET state = 'interrupted', error = ?, finished_at = ?, updated_at = ?
                   WHERE id = ? AND state = ? AND pid IS NOT DISTINCT FROM ? RETURNING run_id""",
                [error, now, now, job_id, state, pid]).fetchone()
            if row is None:
                return False
            if row[0] is not None:
                con.execute("""UPDATE runs SET status = 'failed', error = ?, finished_at = now()
                               WHERE id = ? AND status = 'running'""", [error, row[0]])
            return True

    def cancel_now(self, job_id: str, states: Sequence[str]) -> bool:
        """Cancel a job no worker is running (queued without worker, interrupted, failed)."""
        now = _now()
        with self.ws.transaction() as con:
            row = con.execute(
                f"""UPDATE jobs SET state = 'cancelled', error = 'cancelled', finished_at = ?,
                    updated_at = ? WHERE id = ? AND state IN ({_placeholders(states)}) RETURNING run_id""",
                [now, now, job_id, *states]).fetchone()
            if row is None:
                return False
            if row[0] is not None:
                con.execute("""UPDATE runs SET status = 'cancelled', error = 'cancelled',
                               finished_at = now() WHERE id = ? AND status IN ('running', 'failed')""",
                            [row[0]])
            return True

    def requeue(self, job_id: str, states: Sequence[str]) -> bool:
        """interrupted/failed/cancelled (or a queued job without a live worker) -> queued, no worker."""
        with self.ws.transaction() as con:
            return con.execute(
                f"""UPDATE jobs SET state = 'queued', pid = NULL, host = NULL, error = NULL,
                    finished_at = NULL, updated_at = ? WHERE id = ? AND state IN ({_placeholders(states)})
                    RETURNING id""", [_now(), job_id, *states]).fetchone() is not None

    # -- the job's run ------------------------------------------------------------------------
    def run_status(self, run_id: int) -> str | None:
        with self.ws.connect() as con:
            row = con.execute("SELECT status FROM runs WHERE id = ?", [run_id]).fetchone()
        return row[0] if row else None

    def reopen_run(self, run_id: int) -> bool:
        """Put a resumed job's run back to 'running'; False if the run row is gone."""
        with self.ws.transaction() as con:
            return con.execute(
                """UPDATE runs SET status = 'running', error = NULL, finished_at = NULL
                   WHERE id = ? RETURNING id""", [run_id]).fetchone() is not None

    def end_run_if_running(self, run_id: int, error: str, status: str = "failed",
                           from_states: Sequence[str] = ("running",)) -> None:
        with self.ws.transaction() as con:
            con.execute(f"""UPDATE runs SET status = ?, error = ?, finished_at = now()
                            WHERE id = ? AND status IN ({_placeholders(from_states)})""",
                        [status, error, run_id, *from_states])

    # -- batch sizes that survived an OOM back-off --------------------------------------------
    def remembered_batch_size(self, model_key: str, device: str) -> int | None:
        with self.ws.connect() as con:
            row = con.execute("SELECT batch_size FROM batch_sizes WHERE model_key = ? AND device = ?",
                              [model_key, device]).fetchone()
        return int(row[0]) if row else None

    def remember_batch_size(self, model_key: str, device: str, batch_size: int) -> None:
        with self.ws.transaction() as con:
            con.execute("INSERT OR REPLACE INTO batch_sizes VALUES (?, ?, ?, ?)",
                        [model_key, device, int(batch_size), _now()])

    def forget_batch_size(self, model_key: str, device: str) -> None:
        with self.ws.transaction() as con:
            con.execute("DELETE FROM batch_sizes WHERE model_key = ? AND device = ?", [model_key, device])

    # -- settings (the meta table) --------------------------------------------------------------
    def setting(self, key: str) -> str | None:
        with self.ws.connect() as con:
            row = con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def set_setting(self, key: str, value: str) -> None:
        with self.ws.transaction() as con:
            con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])

    # -- health checks (embtui doctor) ----------------------------------------------------------
    def table_counts(self) -> dict[str, int]:
        """Every table of the workspace DB with its row count (reads each one fully)."""
        with self.ws.connect() as con:
            names = [r[0] for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE NOT internal ORDER BY table_name").fetchall()]
            counts = {}
            for n in names:
                # hashing every row reads every column block (count(*) alone reads only metadata,
                # so a garbled or truncated block would pass); DuckDB verifies each block's checksum
                try:
                    counts[n] = int(con.execute(f'SELECT count(*), bit_xor(hash(t)) FROM "{n}" t').fetchone()[0])
                except duckdb.Error as exc:
                    err = _db_error(exc, self.ws)
                    raise (err if err is not exc else exc) from exc
            return counts

    def artifact_paths(self) -> list[str]:
        with self.ws.connect() as con:
            return [r[0] for r in con.execute("SELECT path FROM artifacts ORDER BY path").fetchall()]

    def delete_artifacts(self, paths: Sequence[str]) -> None:
        with self.ws.transaction() as con:
            for p in paths:
                con.execute("DELETE FROM artifacts WHERE path = ?", [p])

    def running_runs(self) -> list[tuple[int, str | None, str | None]]:
        """(run id, id of the live-looking job that owns it or None, that job's state)."""
        with self.ws.connect() as con:
            return [(int(r[0]), r[1], r[2]) for r in con.execute(
                """SELECT r.id, j.id, j.state FROM runs r
                   LEFT JOIN jobs j ON j.run_id = r.id AND j.state IN ('queued', 'running')
                   WHERE r.status = 'running' ORDER BY r.id""").fetchall()]
