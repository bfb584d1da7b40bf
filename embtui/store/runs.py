"""The runs table family: a run's row, its aggregate and per-query metrics and its rankings
(written in one transaction when it finishes), listing, lookup by id and deletion."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pyarrow as pa

from embtui.errors import EmbtuiError, NotFound

if TYPE_CHECKING:
    from embtui.store.db import Workspace


@dataclass(frozen=True)
class RunInfo:
    id: int
    project: str
    split: str
    model_name: str
    model_spec: dict[str, Any]
    model_fingerprint: str | None
    device: str | None
    index_config: dict[str, Any]
    versions: dict[str, Any]
    timings: dict[str, Any]
    info: dict[str, Any]
    status: str
    error: str | None
    created_at: datetime | None
    finished_at: datetime | None
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "project": self.project, "split": self.split, "model": self.model_name,
            "model_spec": self.model_spec, "model_fingerprint": self.model_fingerprint,
            "device": self.device, "index": self.index_config, "versions": self.versions,
            "timings": self.timings, "info": self.info, "status": self.status, "error": self.error,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "metrics": self.metrics,
        }


def _arrow(con: Any, sql: str, params: list[Any]) -> pa.Table:
    return con.sql(sql, params=params).to_arrow_table()


def _loads(text: str | None) -> dict[str, Any]:
    return json.loads(text) if text else {}


def _rankings_table(rankings: Mapping[str, Sequence[tuple[str, float]]]) -> pa.Table:
    q, r, d, s = [], [], [], []
    for qid, row in rankings.items():
        for rank, (doc, score) in enumerate(row, 1):
            q.append(qid)
            r.append(rank)
            d.append(doc)
            s.append(score)
    return pa.table({"query_id": pa.array(q, pa.string()), "rank": pa.array(r, pa.int32()),
                     "doc_id": pa.array(d, pa.string()), "score": pa.array(s, pa.float64())})


def _query_metrics_table(per_query: Mapping[str, Mapping[str, float]]) -> pa.Table:
    q, m, v = [], [], []
    for qid, values in per_query.items():
        for name, value in values.items():
            q.append(qid)
            m.append(name)
            v.append(value)
    return pa.table({"query_id": pa.array(q, pa.string()), "metric": pa.array(m, pa.string()),
                     "value": pa.array(v, pa.float64())})


class RunsRepo:
    """Reads and writes of the runs tables; mixed into :class:`~embtui.store.api.Store`, which
    provides ``ws`` and ``_project_id``."""

    ws: "Workspace"

    def _project_id(self, con: Any, name: str) -> int:  # pragma: no cover - Store's
        raise NotImplementedError

    def create_run(
        self,
        project: str,
        split: str,
        model_name: str,
        *,
        model_spec: dict[str, Any],
        model_fingerprint: str | None,
        device: str | None,
        index_config: dict[str, Any],
        versions: dict[str, Any],
        job_id: str | None = None,
    ) -> int:
        """Insert a 'running' run; with ``job_id``, link it to that job in the same transaction
        (a detached job never leaves an orphan run)."""
        with self.ws.transaction() as con:
            pid = self._project_id(con, project)
            run_id = int(con.execute(
                """INSERT INTO runs (project_id, split, model_name, model_spec, model_fingerprint,
                   device, index_config, versions, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running')
                   RETURNING id""",
                [pid, split, model_name, json.dumps(model_spec, sort_keys=True), model_fingerprint,
                 device, json.dumps(index_config, sort_keys=True), json.dumps(versions, sort_keys=True)],
            ).fetchone()[0])
            if job_id is not None:
                con.execute("UPDATE jobs SET run_id = ?, updated_at = now() WHERE id = ?", [run_id, job_id])
            return run_id

    def finish_run(
        self,
        run_id: int,
        *,
        metrics: dict[str, float],
        query_metrics: Mapping[str, Mapping[str, float]],
        rankings: Mapping[str, Sequence[tuple[str, float]]],
        timings: dict[str, Any],
        info: dict[str, Any],
        device: str | None = None,
        model_fingerprint: str | None = None,
        index_config: dict[str, Any] | None = None,
    ) -> None:
        """Store a run's results in one transaction and mark it done.

        ``query_metrics``: query id -> metric -> value; ``rankings``: query id -> [(doc id, score)]
        best first (rank 1 is the first). Both go in as Arrow tables, the fast path into DuckDB.
        """
        with self.ws.transaction() as con:
            for table in ("run_metrics", "query_metrics", "rankings"):
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            con.executemany(
                "INSERT INTO run_metrics VALUES (?, ?, ?)",
                [[run_id, k, float(v)] for k, v in metrics.items()],
            )
            con.register("_qm", _query_metrics_table(query_metrics))
            con.execute("INSERT INTO query_metrics SELECT ?, query_id, metric, value FROM _qm", [run_id])
            con.register("_rk", _rankings_table(rankings))
            con.execute(
                "INSERT INTO rankings SELECT ?, query_id, rank, doc_id, score FROM _rk", [run_id]
            )
            con.execute(
                """UPDATE runs SET status = 'done', timings = ?, info = ?, finished_at = now(),
                   device = coalesce(?, device), model_fingerprint = coalesce(?, model_fingerprint),
                   index_config = coalesce(?, index_config), error = NULL
                   WHERE id = ?""",
                [json.dumps(timings, sort_keys=True), json.dumps(info, sort_keys=True), device,
                 model_fingerprint,
                 json.dumps(index_config, sort_keys=True) if index_config is not None else None,
                 run_id],
            )

    def fail_run(self, run_id: int, error: str, status: str = "failed",
                 timings: dict[str, Any] | None = None) -> None:
        """Mark a run failed or cancelled; ``timings``: the stages it finished and how far it got."""
        with self.ws.transaction() as con:
            if timings is None:
                con.execute("UPDATE runs SET status = ?, error = ?, finished_at = now() WHERE id = ?",
                            [status, error, run_id])
            else:
                con.execute("UPDATE runs SET status = ?, error = ?, timings = ?, finished_at = now() "
                            "WHERE id = ?", [status, error, json.dumps(timings, sort_keys=True), run_id])

    def delete_run(self, run_id: int) -> None:
        self.delete_runs([run_id])

    def delete_runs(self, run_ids: Sequence[int]) -> list[str]:
        """Delete runs with their metrics and rankings in one transaction; annotations and overlay
        judgments made from them stay (their run link is cleared). Returns the stored paths of the
        artifacts (HNSW indexes) no remaining run uses, already unregistered: the caller removes
        the files. A run a live job is still writing is refused (NotFound for an unknown id)."""
        ids = sorted({int(r) for r in run_ids})
        if not ids:
            return []
        with self.ws.transaction() as con:
            known = {int(r[0]): (r[1], r[2]) for r in con.execute(
                "SELECT id, status, index_config FROM runs WHERE id IN (SELECT unnest(?::INTEGER[]))",
                [ids]).fetchall()}
            missing = [i for i in ids if i not in known]
            if missing:
                raise NotFound(f"no run with id {', '.join(map(str, missing))}", "list runs with `embtui runs`")
            live = con.execute(
                "SELECT run_id, id FROM jobs WHERE run_id IN (SELECT unnest(?::INTEGER[])) "
                "AND state IN ('queued', 'running') ORDER BY run_id", [ids]).fetchall()
            if live:
                rid, job = live[0]
                raise EmbtuiError(f"run #{rid} is still being written by job {job}",
                                  f"cancel it first: `embtui jobs cancel {job}`")
            for table in ("run_metrics", "query_metrics", "rankings"):
                con.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT unnest(?::INTEGER[]))", [ids])
            con.execute("DELETE FROM runs WHERE id IN (SELECT unnest(?::INTEGER[]))", [ids])
            for table in ("annotations", "qrels_overlay"):
                con.execute(f"UPDATE {table} SET run_id = NULL WHERE run_id IN (SELECT unnest(?::INTEGER[]))",
                            [ids])
            paths = {_loads(cfg).get("path") for _s, cfg in known.values()} - {None}
            still = {_loads(r[0]).get("path") for r in con.execute("SELECT index_config FROM runs").fetchall()}
            orphans = sorted(p for p in paths - still if isinstance(p, str))
            for path in orphans:
                con.execute("DELETE FROM artifacts WHERE path = ?", [path])
        return orphans

    def list_runs(self, project: str | None = None, split: str | None = None,
                  status: str | None = None, run_id: int | None = None) -> list[RunInfo]:
        where, params = ["1=1"], []
        if run_id is not None:
            where.append("r.id = ?")
            params.append(int(run_id))
        with self.ws.connect() as con:
            if project is not None:
                where.append("r.project_id = ?")
                params.append(self._project_id(con, project))
            if split is not None:
                where.append("r.split = ?")
                params.append(split)
            if status is not None:
                where.append("r.status = ?")
                params.append(status)
            rows = con.execute(
                f"""SELECT r.id, p.name, r.split, r.model_name, r.model_spec, r.model_fingerprint,
                       r.device, r.index_config, r.versions, r.timings, r.info, r.status, r.error,
                       r.created_at, r.finished_at
                    FROM runs r JOIN projects p ON p.id = r.project_id
                    WHERE {' AND '.join(where)} ORDER BY r.id""",
                params,
            ).fetchall()
            metric_rows = con.execute(
                f"""SELECT m.run_id, m.metric, m.value FROM run_metrics m
                    WHERE m.run_id IN (SELECT r.id FROM runs r WHERE {' AND '.join(where)})""",
                params,
            ).fetchall()
        metrics: dict[int, dict[str, float]] = {}
        for rid, m, v in metric_rows:
            metrics.setdefault(rid, {})[m] = v
        return [
            RunInfo(r[0], r[1], r[2], r[3], _loads(r[4]), r[5], r[6], _loads(r[7]), _loads(r[8]),
                    _loads(r[9]), _loads(r[10]), r[11], r[12], r[13], r[14], metrics.get(r[0], {}))
            for r in rows
        ]

    def get_run(self, run_id: int) -> RunInfo:
        found = self.list_runs(run_id=run_id)
        if not found:
            raise NotFound(f"no run with id {run_id}", "list runs with `embtui runs`")
        return found[0]

    def run_rankings(self, run_id: int, query_id: str | None = None) -> dict[str, list[tuple[str, float]]]:
        """query_id -> [(doc_id, score), ...] in rank order."""
        sql = "SELECT query_id, doc_id, score FROM rankings WHERE run_id = ?"
        params: list[Any] = [run_id]
        if query_id is not None:
            sql += " AND query_id = ?"
            params.append(query_id)
        with self.ws.connect() as con:
            t = _arrow(con, sql + " ORDER BY query_id, rank", params)
        out: dict[str, list[tuple[str, float]]] = {}
        for q, d, s in zip(t["query_id"].to_pylist(), t["doc_id"].to_pylist(), t["score"].to_pylist()):
            out.setdefault(q, []).append((d, s))
        return out

    def run_query_metrics(self, run_id: int) -> dict[str, dict[str, float]]:
        """query_id -> {metric: value}."""
        with self.ws.connect() as con:
            t = _arrow(con, "SELECT query_id, metric, value FROM query_metrics WHERE run_id = ?", [run_id])
        out: dict[str, dict[str, float]] = {}
        for q, m, v in zip(t["query_id"].to_pylist(), t["metric"].to_pylist(), t["value"].to_pylist()):
            out.setdefault(q, {})[m] = v
        return out
