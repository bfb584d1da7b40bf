"""Typed read/write API over the workspace DB: projects, data, model specs, runs, artifacts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Sequence

import pyarrow as pa

from embtui.errors import EmbtuiError, NotFound
from embtui.store.db import Workspace
from embtui.store.inflight import refuse_while_jobs_run

if TYPE_CHECKING:
    from embtui.store.annotations import AnnotationStore


@dataclass(frozen=True)
class ProjectInfo:
    id: int
    name: str
    source: str | None
    dataset_hash: str | None
    created_at: datetime | None
    documents: int = 0
    queries: int = 0
    # split -> {"queries": n judged queries, "qrels": n judgments, "relevant": n with grade > 0}
    splits: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "source": self.source, "dataset_hash": self.dataset_hash,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "documents": self.documents, "queries": self.queries, "splits": self.splits,
        }


@dataclass(frozen=True)
class Corpus:
    """Documents of a project in a stable order (by doc_id)."""

    ids: list[str]
    titles: list[str]
    texts: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def encode_texts(self) -> list[str]:
        """Text a model sees for each document: ``title + " " + text``, trimmed (as BEIR/MTEB)."""
        return [(t + " " + x).strip() for t, x in zip(self.titles, self.texts)]


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


def check_project_name(name: Any) -> str:
    """``name`` unchanged, or an EmbtuiError: a project name is one printable line, not padded."""
    import unicodedata

    hint = "pass --project NAME with letters, digits, '-', '_' or inner spaces"
    if not isinstance(name, str) or not name.strip():
        raise EmbtuiError("a project name must not be empty", "pass --project NAME")
    for i, ch in enumerate(name):
        if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp"):
            what = {"\n": "a line break", "\r": "a carriage return", "\t": "a tab"}.get(
                ch, f"the control character U+{ord(ch):04X}")
            raise EmbtuiError(f"project name {name!r} contains {what} at position {i + 1}", hint)
    if name != name.strip():
        raise EmbtuiError(f"project name {name!r} starts or ends with whitespace", hint)
    if len(name) > 200:
        raise EmbtuiError(f"a project name is at most 200 characters, got {len(name)}", hint)
    return name


class Store:
    """All reads and writes of one workspace. Every method is one short DB session."""

    def __init__(self, workspace: Workspace | str) -> None:
        self.ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)

    @classmethod
    def open(cls, root: str | Any) -> "Store":
        store = cls(Workspace(root))
        store.ws.init()
        return store

    # -- projects ---------------------------------------------------------------------------
    def _project_id(self, con: Any, name: str) -> int:
        rows = con.execute("SELECT id FROM projects WHERE name = ?", [name]).fetchall()
        if not rows:
            names = [r[0] for r in con.execute("SELECT name FROM projects ORDER BY name").fetchall()]
            hint = f"projects here: {', '.join(names)}" if names else "import one with `embtui import`"
            raise NotFound(f"no project named '{name}' in {self.ws.root}", hint)
        return int(rows[0][0])

    def project_exists(self, name: str) -> bool:
        with self.ws.connect() as con:
            return con.execute("SELECT 1 FROM projects WHERE name = ?", [name]).fetchone() is not None

    def list_projects(self) -> list[ProjectInfo]:
        with self.ws.connect() as con:
            rows = con.execute(
                """SELECT p.id, p.name, p.source, p.dataset_hash, p.created_at,
                          (SELECT count(*) FROM documents d WHERE d.project_id = p.id),
                          (SELECT count(*) FROM queries q WHERE q.project_id = p.id)
                   FROM projects p ORDER BY p.name"""
            ).fetchall()
            split_rows = con.execute(
                """SELECT project_id, split, count(DISTINCT query_id), count(*),
                          count(*) FILTER (WHERE grade > 0)
                   FROM qrels GROUP BY project_id, split ORDER BY split"""
            ).fetchall()
        splits: dict[int, dict[str, dict[str, int]]] = {}
        for pid, split, nq, nj, nrel in split_rows:
            splits.setdefault(pid, {})[split] = {"queries": nq, "qrels": nj, "relevant": nrel}
        return [
            ProjectInfo(r[0], r[1], r[2], r[3], r[4], r[5], r[6], splits.get(r[0], {})) for r in rows
        ]

    def get_project(self, name: str) -> ProjectInfo:
        for p in self.list_projects():
            if p.name == name:
                return p
        with self.ws.connect() as con:
            self._project_id(con, name)  # raises NotFound with a hint
        raise NotFound(f"no project named '{name}'")  # pragma: no cover

    def save_project(
        self,
        name: str,
        *,
        documents: pa.Table,
        queries: pa.Table,
        qrels: pa.Table,
        source: str | None = None,
        dataset_hash: str | None = None,
        replace: bool = False,
    ) -> None:
        """Write a whole project in one transaction: all of it lands, or nothing changes.

        ``documents``: doc_id, title, text; ``queries``: query_id, text, metadata (JSON text or
        null); ``qrels``: split, query_id, doc_id, grade.
        """
        check_project_name(name)
        with self.ws.transaction() as con:
            row = con.execute("SELECT id FROM projects WHERE name = ?", [name]).fetchone()
            if row is not None:
                if not replace:
                    raise EmbtuiError(
                        f"a project named '{name}' already exists",
                        "pass --replace to overwrite it, or choose another --project name",
                    )
                refuse_while_jobs_run(con, name, "replace")
                self._delete_project(con, int(row[0]))
            pid = con.execute(
                "INSERT INTO projects (name, source, dataset_hash) VALUES (?, ?, ?) RETURNING id",
                [name, source, dataset_hash],
            ).fetchone()[0]
            con.register("_docs", documents)
            con.execute("INSERT INTO documents SELECT ?, doc_id, title, text FROM _docs", [pid])
            con.register("_queries", queries)
            con.execute(
                "INSERT INTO queries SELECT ?, query_id, text, metadata FROM _queries", [pid]
            )
            con.register("_qrels", qrels)
            con.execute(
                "INSERT INTO qrels SELECT ?, split, query_id, doc_id, grade FROM _qrels", [pid]
            )

    @staticmethod
    def _delete_project(con: Any, pid: int) -> None:
        run_ids = "(SELECT id FROM runs WHERE project_id = ?)"
        for table in ("run_metrics", "query_metrics", "rankings"):
            con.execute(f"DELETE FROM {table} WHERE run_id IN {run_ids}", [pid])
        for table in ("runs", "qrels", "queries", "documents"):
            con.execute(f"DELETE FROM {table} WHERE project_id = ?", [pid])
        con.execute("DELETE FROM projects WHERE id = ?", [pid])

    def delete_project(self, name: str) -> None:
        """Remove a project with its runs, annotations and qrels overlay (a --replace keeps those two)."""
        with self.ws.transaction() as con:
            pid = self._project_id(con, name)
            refuse_while_jobs_run(con, name, "delete")
            self._delete_project(con, pid)
            con.execute("DELETE FROM annotations WHERE project = ?", [name])
            con.execute("DELETE FROM qrels_overlay WHERE project = ?", [name])

    def corpus(self, project: str) -> Corpus:
        with self.ws.connect() as con:
            pid = self._project_id(con, project)
            t = _arrow(
                con,
                "SELECT doc_id, title, text FROM documents WHERE project_id = ? ORDER BY doc_id",
                [pid],
            )
        return Corpus(t["doc_id"].to_pylist(), t["title"].to_pylist(), t["text"].to_pylist())

    def documents(self, project: str, doc_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """doc_id -> (title, text) for the given ids (unknown ids are left out)."""
        if not doc_ids:
            return {}
        with self.ws.connect() as con:
            pid = self._project_id(con, project)
            rows = con.execute(
                "SELECT doc_id, title, text FROM documents WHERE project_id = ? AND doc_id IN "
                "(SELECT unnest(?::VARCHAR[]))",
                [pid, list(doc_ids)],
            ).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def queries(self, project: str, split: str | None = None) -> dict[str, str]:
        """query_id -> text, in query_id order; with ``split``, only queries judged in it."""
        with self.ws.connect() as con:
            pid = self._project_id(con, project)
            if split is None:
                rows = con.execute(
                    "SELECT query_id, text FROM queries WHERE project_id = ? ORDER BY query_id", [pid]
                ).fetchall()
            else:
                rows = con.execute(
                    """SELECT query_id, text FROM queries WHERE project_id = ? AND query_id IN
                       (SELECT query_id FROM qrels WHERE project_id = ? AND split = ?)
                       ORDER BY query_id""",
                    [pid, pid, split],
                ).fetchall()
        return dict(rows)

    def query_metadata(self, project: str) -> dict[str, dict[str, Any]]:
        with self.ws.connect() as con:
            pid = self._project_id(con, project)
            rows = con.execute(
                "SELECT query_id, metadata FROM queries WHERE project_id = ?", [pid]
            ).fetchall()
        return {q: _loads(m) for q, m in rows}

    def qrels(self, project: str, split: str) -> dict[str, dict[str, int]]:
        """query_id -> {doc_id: grade} for one split (grade 0 = judged non-relevant)."""
        with self.ws.connect() as con:
            pid = self._project_id(con, project)
            rows = con.execute(
                "SELECT query_id, doc_id, grade FROM qrels WHERE project_id = ? AND split = ?",
                [pid, split],
            ).fetchall()
            if not rows:
                splits = [r[0] for r in con.execute(
                    "SELECT DISTINCT split FROM qrels WHERE project_id = ? ORDER BY split", [pid]
                ).fetchall()]
                raise NotFound(
                    f"project '{project}' has no judgments for split '{split}'",
                    f"splits with judgments: {', '.join(splits)}" if splits else "import qrels",
                )
        out: dict[str, dict[str, int]] = {}
        for q, d, g in rows:
            out.setdefault(q, {})[d] = int(g)
        return out

    # -- model specs --------------------------------------------------------------------------
    def save_model(self, name: str, spec: dict[str, Any]) -> None:
        with self.ws.transaction() as con:
            con.execute(
                "INSERT OR REPLACE INTO models (name, spec, updated_at) VALUES (?, ?, now())",
                [name, json.dumps(spec, sort_keys=True)],
            )

    def get_model(self, name: str) -> dict[str, Any] | None:
        with self.ws.connect() as con:
            row = con.execute("SELECT spec FROM models WHERE name = ?", [name]).fetchone()
        return json.loads(row[0]) if row else None

    def list_models(self) -> dict[str, dict[str, Any]]:
        with self.ws.connect() as con:
            rows = con.execute("SELECT name, spec FROM models ORDER BY name").fetchall()
        return {n: json.loads(s) for n, s in rows}

    def delete_model(self, name: str) -> None:
        with self.ws.transaction() as con:
            con.execute("DELETE FROM models WHERE name = ?", [name])

    # -- per-project view state (the app's split, selected models, k, baseline) ----------------
    def view_states(self) -> dict[str, dict[str, Any]]:
        """project -> the view state the app saved for it."""
        with self.ws.connect() as con:
            rows = con.execute("SELECT key, value FROM meta WHERE key LIKE 'view:%'").fetchall()
        out = {}
        for key, value in rows:
            try:
                state = json.loads(value)
            except ValueError:
                continue  # a damaged entry is forgotten, never fatal
            if isinstance(state, dict):
                out[key[len("view:"):]] = state
        return out

    def save_view_state(self, project: str, state: dict[str, Any]) -> None:
        with self.ws.transaction() as con:
            con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                        ["view:" + project, json.dumps(state, sort_keys=True)])

    # -- runs ---------------------------------------------------------------------------------
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
    ) -> int:
        with self.ws.transaction() as con:
            pid = self._project_id(con, project)
            return int(con.execute(
                """INSERT INTO runs (project_id, split, model_name, model_spec, model_fingerprint,
                   device, index_config, versions, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running')
                   RETURNING id""",
                [pid, split, model_name, json.dumps(model_spec, sort_keys=True), model_fingerprint,
                 device, json.dumps(index_config, sort_keys=True), json.dumps(versions, sort_keys=True)],
            ).fetchone()[0])

    def finish_run(
        self,
        run_id: int,
        *,
        metrics: dict[str, float],
        query_metrics: pa.Table,
        rankings: pa.Table,
        timings: dict[str, Any],
        info: dict[str, Any],
        device: str | None = None,
        model_fingerprint: str | None = None,
        index_config: dict[str, Any] | None = None,
    ) -> None:
        """Store a run's results in one transaction and mark it done.

        ``query_metrics``: query_id, metric, value; ``rankings``: query_id, rank, doc_id, score.
        """
        with self.ws.transaction() as con:
            for table in ("run_metrics", "query_metrics", "rankings"):
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            con.executemany(
                "INSERT INTO run_metrics VALUES (?, ?, ?)",
                [[run_id, k, float(v)] for k, v in metrics.items()],
            )
            con.register("_qm", query_metrics)
            con.execute("INSERT INTO query_metrics SELECT ?, query_id, metric, value FROM _qm", [run_id])
            con.register("_rk", rankings)
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

    def fail_run(self, run_id: int, error: str, status: str = "failed") -> None:
        with self.ws.transaction() as con:
            con.execute(
                "UPDATE runs SET status = ?, error = ?, finished_at = now() WHERE id = ?",
                [status, error, run_id],
            )

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
                  status: str | None = None) -> list[RunInfo]:
        where, params = ["1=1"], []
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
        with self.ws.connect() as con:
            row = con.execute("SELECT project_id FROM runs WHERE id = ?", [run_id]).fetchone()
        if row is None:
            raise NotFound(f"no run with id {run_id}", "list runs with `embtui runs`")
        return next(r for r in self.list_runs() if r.id == run_id)

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

    # -- artifacts and file hashes -------------------------------------------------------------
    def register_artifact(self, path: str, kind: str, nbytes: int, meta: dict[str, Any]) -> None:
        with self.ws.transaction() as con:
            con.execute(
                "INSERT OR REPLACE INTO artifacts (path, kind, bytes, meta) VALUES (?, ?, ?, ?)",
                [path, kind, nbytes, json.dumps(meta, sort_keys=True)],
            )

    def list_artifacts(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self.ws.connect() as con:
            rows = con.execute(
                "SELECT path, kind, bytes, meta, created_at FROM artifacts"
                + (" WHERE kind = ?" if kind else "") + " ORDER BY path",
                [kind] if kind else [],
            ).fetchall()
        return [{"path": p, "kind": k, "bytes": b, "meta": _loads(m), "created_at": c}
                for p, k, b, m, c in rows]

    def delete_artifact(self, path: str) -> None:
        with self.ws.transaction() as con:
            con.execute("DELETE FROM artifacts WHERE path = ?", [path])

    def cached_file_hash(self, path: str, size: int, mtime: float) -> str | None:
        if not self.ws.exists():
            return None
        with self.ws.connect() as con:
            row = con.execute(
                "SELECT sha256 FROM file_hashes WHERE path = ? AND size = ? AND mtime = ?",
                [path, size, mtime],
            ).fetchone()
        return row[0] if row else None

    def save_file_hash(self, path: str, size: int, mtime: float, sha256: str) -> None:
        with self.ws.transaction() as con:
            con.execute("INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?)",
                        [path, size, mtime, sha256])

    # -- annotations and the qrels overlay (owned by embtui/store/annotations.py) ---------------
    @property
    def annotations(self) -> AnnotationStore:
        """Labels/notes on queries and query-document pairs, and the hand-made qrels overlay."""
        from embtui.store.annotations import AnnotationStore

        return AnnotationStore(self.ws)

    def corrected_qrels(self, project: str, split: str) -> dict[str, dict[str, int]]:
        """``qrels(project, split)`` with the overlay judgments on top (the imported ones unchanged)."""
        return self.annotations.corrected_qrels(project, split)
