"""Typed read/write API over the workspace DB: projects, data, model specs, view state, artifacts
(runs: store/runs.py, annotations: store/annotations.py, jobs: store/jobs.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import pyarrow as pa

from embtui.errors import EmbtuiError, NotFound
from embtui.store.db import Workspace
from embtui.store.inflight import refuse_while_jobs_run
from embtui.store.profiles import ProfilesRepo
from embtui.store.query_logs import QueryLogsRepo
from embtui.store.runs import RunsRepo, _arrow, _loads

if TYPE_CHECKING:
    from embtui.store.annotations import AnnotationStore
    from embtui.store.imports import ImportStage
    from embtui.store.jobs import JobStore


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


CORPUS_WINDOW = 32_768  # documents read from the store at a time by a lazy corpus
LOOKUP_MAX_ROWS = 2_000  # up to this many rows, a lazy corpus looks documents up by id instead


class Corpus:
    """Documents of a project in a stable order (by doc_id).

    Eager (``Store.corpus(project)``): ids, titles and texts in memory. Lazy
    (``Store.corpus(project, lazy=True)``): only the ids; the texts are read from the store a
    window of ``window`` (``CORPUS_WINDOW``) documents at a time (``encode_texts(start, end)``, ``windows()``,
    ``texts_at(rows)``), so an evaluation of a large corpus never holds all of it. Touching
    ``titles`` or ``texts`` of a lazy corpus reads everything once (for callers that need it all).
    """

    def __init__(self, ids: list[str], titles: list[str] | None = None, texts: list[str] | None = None,
                 *, read: "Callable[[int, int], tuple[list[str], list[str]]] | None" = None,
                 lookup: "Callable[[list[str]], dict[str, tuple[str, str]]] | None" = None) -> None:
        if (titles is None or texts is None) and read is None:
            raise ValueError("a Corpus needs its titles and texts, or a reader")
        self.ids = ids
        self._titles = titles
        self._texts = texts
        self._read = read
        self._lookup = lookup  # doc ids -> (title, text), by the primary key: a few rows quickly
        self.window = CORPUS_WINDOW  # documents a lazy read brings in at once
        self.memo: dict[Any, Any] = {}  # derived per-corpus data (the engine keeps the texts' hashes here)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lazy(self) -> bool:
        """True while the texts live in the store only."""
        return self._texts is None

    def _load(self) -> None:
        if self._texts is None:
            assert self._read is not None
            self._titles, self._texts = self._read(0, len(self.ids))

    @property
    def titles(self) -> list[str]:
        self._load()
        assert self._titles is not None
        return self._titles

    @property
    def texts(self) -> list[str]:
        self._load()
        assert self._texts is not None
        return self._texts

    def encode_texts(self, start: int = 0, end: int | None = None) -> list[str]:
        """Text a model sees for each document (of ``start:end``): ``title + " " + text``,
        trimmed (as BEIR/MTEB). A lazy corpus reads just that slice from the store."""
        end = len(self.ids) if end is None else min(end, len(self.ids))
        if start >= end:
            return []
        if self._texts is None:
            assert self._read is not None
            titles, texts = self._read(start, end)
        else:
            assert self._titles is not None
            titles, texts = self._titles[start:end], self._texts[start:end]
        return [(t + " " + x).strip() for t, x in zip(titles, texts)]

    def windows(self, starts: "Iterable[int] | None" = None) -> "Iterator[tuple[int, list[str]]]":
        """``(start, encode texts of start:start + window)`` over the corpus (or only the windows
        beginning at ``starts``): what a lazy corpus holds in memory at any time."""
        size = self.window
        for start in (range(0, len(self.ids), size) if starts is None else starts):
            yield start, self.encode_texts(start, start + size)

    def documents_at(self, rows: Sequence[int]) -> list[tuple[str, str]]:
        """(title, text) of the given corpus rows, in the order given: a lazy corpus looks a few
        rows up by id (what a live query's hits need), and reads windows for many."""
        if self._texts is None and self._lookup is not None and len(rows) <= LOOKUP_MAX_ROWS:
            wanted = [self.ids[i] for i in rows]
            found = self._lookup(wanted)
            missing = [d for d in wanted if d not in found]
            if missing:
                raise EmbtuiError(f"document '{missing[0]}' is no longer in the project: it changed "
                                  "while it was being read", "open it again")
            return [found[d] for d in wanted]
        if self._texts is None:
            return [(t, "") for t in self.texts_at(rows)]  # pragma: no cover - no lookup given
        return [(self.titles[i], self.texts[i]) for i in rows]

    def texts_at(self, rows: Sequence[int]) -> list[str]:
        """Encode texts of the given corpus rows, in the order given (a reranker's candidates).
        A lazy corpus looks a few rows up by id, or reads only the windows many rows fall in."""
        if self._texts is not None:
            titles, texts = self.titles, self.texts
            return [(titles[i] + " " + texts[i]).strip() for i in rows]
        if self._lookup is not None and len(rows) <= LOOKUP_MAX_ROWS:
            return [(t + " " + x).strip() for t, x in self.documents_at(rows)]
        out: list[str] = [""] * len(rows)
        by_window: dict[int, list[int]] = {}
        for k, r in enumerate(rows):
            if not 0 <= r < len(self.ids):
                raise IndexError(f"corpus row {r} out of range")
            by_window.setdefault(r // self.window, []).append(k)
        for w, ks in sorted(by_window.items()):
            start = w * self.window
            window = self.encode_texts(start, start + self.window)
            for k in ks:
                out[k] = window[rows[k] - start]
        return out


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


class Store(RunsRepo, ProfilesRepo, QueryLogsRepo):
    """All reads and writes of one workspace. Every method is one short DB session. The runs
    table family (runs, metrics, per-query metrics, rankings) lives in store/runs.py."""

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

    def import_stage(self) -> "ImportStage":
        """One streamed import's write transaction: the corpus read by DuckDB and checked, then
        queries, qrels and the hash added (``with store.import_stage() as stage: stage.begin(...);
        ...; stage.commit(...)``; leaving without commit rolls back)."""
        from embtui.store.imports import ImportStage

        return ImportStage(self.ws, check_name=check_project_name,
                           delete_project=self._delete_project)

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
            con.execute("DELETE FROM query_logs WHERE project = ?", [name])

    def corpus(self, project: str, *, lazy: bool = False) -> Corpus:
        """The project's documents by doc_id; ``lazy``: the ids only, texts read a window at a
        time when asked for (see ``Corpus``)."""
        with self.ws.connect() as con:
            pid = self._project_id(con, project)
            if lazy:
                t = _arrow(con, "SELECT doc_id FROM documents WHERE project_id = ? ORDER BY doc_id", [pid])
            else:
                t = _arrow(
                    con,
                    "SELECT doc_id, title, text FROM documents WHERE project_id = ? ORDER BY doc_id",
                    [pid],
                )
        ids = t["doc_id"].to_pylist()
        if not lazy:
            return Corpus(ids, t["title"].to_pylist(), t["text"].to_pylist())

        def read(start: int, end: int) -> tuple[list[str], list[str]]:
            return self._corpus_slice(project, pid, ids, start, end)

        def lookup(doc_ids: list[str]) -> dict[str, tuple[str, str]]:
            with self.ws.connect() as con:
                rows = con.execute(
                    "SELECT doc_id, title, text FROM documents WHERE project_id = ? AND doc_id IN "
                    "(SELECT unnest(?::VARCHAR[]))", [pid, doc_ids]).fetchall()
            return {r[0]: (r[1], r[2]) for r in rows}

        return Corpus(ids, read=read, lookup=lookup)

    def _corpus_slice(self, project: str, pid: int, ids: list[str], start: int, end: int,
                      ) -> tuple[list[str], list[str]]:
        """Titles and texts of ``ids[start:end]``, read in one short session and checked against
        those ids: a project replaced meanwhile is an error, never another corpus's texts."""
        with self.ws.connect() as con:
            t = _arrow(con, "SELECT doc_id, title, text FROM documents WHERE project_id = ? "
                            "AND doc_id >= ? AND doc_id <= ? ORDER BY doc_id",
                       [pid, ids[start], ids[end - 1]])
        if t["doc_id"].to_pylist() != ids[start:end]:
            raise EmbtuiError(f"the documents of project '{project}' changed while they were being read",
                              "run it again once the import or replace has finished")
        return t["title"].to_pylist(), t["text"].to_pylist()

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
    @cached_property
    def annotations(self) -> AnnotationStore:
        """Labels/notes on queries and query-document pairs, and the hand-made qrels overlay
        (made once per Store)."""
        from embtui.store.annotations import AnnotationStore

        return AnnotationStore(self.ws)

    @cached_property
    def jobs(self) -> JobStore:
        """The jobs, batch-size memory, settings and health queries of this workspace (once per
        Store; the jobs layer also builds one on a bare Workspace, without a Store)."""
        from embtui.store.jobs import JobStore

        return JobStore(self.ws)

    def corrected_qrels(self, project: str, split: str) -> dict[str, dict[str, int]]:
        """``qrels(project, split)`` with the overlay judgments on top (the imported ones unchanged)."""
        return self.annotations.corrected_qrels(project, split)
