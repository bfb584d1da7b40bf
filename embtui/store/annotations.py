"""Annotations (labels and notes on queries and query-document pairs) and the qrels overlay: all their SQL.

Both live in the workspace DB keyed by project NAME, so they survive re-running models and
re-importing a project with ``--replace`` (a re-import gives the project a new id). The imported
qrels are never changed: a judgment added by hand ("this retrieved document is actually
relevant") goes to ``qrels_overlay`` and is merged on top only when asked for
(:meth:`AnnotationStore.corrected_qrels`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from embtui.errors import EmbtuiError, NotFound
from embtui.store.db import Workspace

# Labels offered by the UI and the CLI; any other non-empty label is accepted too.
MISSING_LABEL = "missing label"
BUILTIN_LABELS: tuple[str, ...] = (
    MISSING_LABEL, "acronym", "negation", "numbers", "long document", "ambiguous query",
)
MAX_LABEL_LEN = 64
_SPACES = re.compile(r"\s+")


def normalize_label(label: str) -> str:
    """Trim and collapse whitespace; built-in labels match case-insensitively."""
    text = _SPACES.sub(" ", str(label or "")).strip()
    if not text:
        raise EmbtuiError("an annotation label must not be empty",
                          f"built-in labels: {', '.join(BUILTIN_LABELS)}; any other text works too")
    if len(text) > MAX_LABEL_LEN:
        raise EmbtuiError(f"label is {len(text)} characters long (at most {MAX_LABEL_LEN})",
                          "put longer text in the note")
    for builtin in BUILTIN_LABELS:
        if text.lower() == builtin:
            return builtin
    return text


@dataclass(frozen=True)
class Annotation:
    """A label (and an optional note) on a query, or on a (query, document) pair when ``doc_id`` is set."""

    id: int
    project: str
    query_id: str
    doc_id: str | None
    label: str
    note: str | None
    run_id: int | None  # the run it was made from, for context (the annotation outlives the run)
    created_at: datetime | None
    updated_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "project": self.project, "query_id": self.query_id,
                "doc_id": self.doc_id, "label": self.label, "note": self.note, "run_id": self.run_id,
                "created_at": self.created_at.isoformat() if self.created_at else None,
                "updated_at": self.updated_at.isoformat() if self.updated_at else None}


@dataclass(frozen=True)
class Judgment:
    """One judgment of the qrels overlay: it replaces (or adds) the grade of ``(query_id, doc_id)``."""

    project: str
    split: str
    query_id: str
    doc_id: str
    grade: int
    note: str | None
    run_id: int | None
    created_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "split": self.split, "query_id": self.query_id,
                "doc_id": self.doc_id, "grade": self.grade, "note": self.note, "run_id": self.run_id,
                "created_at": self.created_at.isoformat() if self.created_at else None}


_ANN_COLS = "id, project, query_id, doc_id, label, note, run_id, created_at, updated_at"
_JUDG_COLS = "project, split, query_id, doc_id, grade, note, run_id, created_at"


class AnnotationStore:
    """Reads and writes of annotations and overlay judgments; every method is one short DB session."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    # -- checks --------------------------------------------------------------------------------
    @staticmethod
    def _project_id(con: Any, project: str) -> int:
        row = con.execute("SELECT id FROM projects WHERE name = ?", [project]).fetchone()
        if row is None:
            raise NotFound(f"no project named '{project}'", "see `embtui projects`")
        return int(row[0])

    def _check_target(self, con: Any, project: str, query_id: str, doc_id: str | None) -> int:
        pid = self._project_id(con, project)
        if con.execute("SELECT 1 FROM queries WHERE project_id = ? AND query_id = ?",
                       [pid, query_id]).fetchone() is None:
            raise NotFound(f"project '{project}' has no query with id '{query_id}'")
        if doc_id is not None and con.execute(
                "SELECT 1 FROM documents WHERE project_id = ? AND doc_id = ?", [pid, doc_id]
        ).fetchone() is None:
            raise NotFound(f"project '{project}' has no document with id '{doc_id}'")
        return pid

    # -- annotations ---------------------------------------------------------------------------
    def add(self, project: str, query_id: str, label: str, *, doc_id: str | None = None,
            note: str | None = None, run_id: int | None = None) -> Annotation:
        """Tag a query (or a query-document pair) with a label; the same label again updates the note."""
        label = normalize_label(label)
        note = note.strip() if note and note.strip() else None
        with self.ws.transaction() as con:
            self._check_target(con, project, query_id, doc_id)
            row = con.execute(
                "SELECT id FROM annotations WHERE project = ? AND query_id = ? AND label = ? "
                "AND doc_id IS NOT DISTINCT FROM ?", [project, query_id, label, doc_id]
            ).fetchone()
            if row is None:
                ann_id = con.execute(
                    "INSERT INTO annotations (project, query_id, doc_id, label, note, run_id) "
                    "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    [project, query_id, doc_id, label, note, run_id],
                ).fetchone()[0]
            else:
                ann_id = row[0]
                con.execute(
                    "UPDATE annotations SET note = coalesce(?, note), run_id = coalesce(?, run_id), "
                    "updated_at = current_timestamp WHERE id = ?", [note, run_id, ann_id])
            out = con.execute(f"SELECT {_ANN_COLS} FROM annotations WHERE id = ?", [ann_id]).fetchone()
        return Annotation(*out)

    def find(self, project: str | None = None, *, label: str | None = None,
             query_id: str | None = None, doc_id: str | None = None,
             level: str | None = None) -> list[Annotation]:
        """Annotations, filtered; ``level`` is ``"query"`` (no document) or ``"document"``."""
        where, params = ["1=1"], []
        if project is not None:
            where.append("project = ?")
            params.append(project)
        if label is not None:
            where.append("lower(label) = lower(?)")
            params.append(normalize_label(label))
        if query_id is not None:
            where.append("query_id = ?")
            params.append(query_id)
        if doc_id is not None:
            where.append("doc_id = ?")
            params.append(doc_id)
        if level == "query":
            where.append("doc_id IS NULL")
        elif level == "document":
            where.append("doc_id IS NOT NULL")
        elif level is not None:
            raise EmbtuiError(f"unknown annotation level '{level}'", "use 'query' or 'document'")
        if not self.ws.exists():
            return []
        with self.ws.connect() as con:
            rows = con.execute(
                f"SELECT {_ANN_COLS} FROM annotations WHERE {' AND '.join(where)} "
                "ORDER BY project, query_id, doc_id NULLS FIRST, label", params
            ).fetchall()
        return [Annotation(*r) for r in rows]

    def labels(self, project: str | None = None) -> dict[str, int]:
        """Label -> number of annotations carrying it (most used first)."""
        with self.ws.connect() as con:
            rows = con.execute(
                "SELECT label, count(*) AS n FROM annotations WHERE (? IS NULL OR project = ?) "
                "GROUP BY label ORDER BY n DESC, label", [project, project]
            ).fetchall()
        return {label: int(n) for label, n in rows}

    def query_labels(self, project: str) -> dict[str, tuple[str, ...]]:
        """query_id -> labels on the query itself or on any of its documents (sorted, distinct)."""
        with self.ws.connect() as con:
            rows = con.execute(
                "SELECT query_id, list(DISTINCT label ORDER BY label) FROM annotations "
                "WHERE project = ? GROUP BY query_id", [project]
            ).fetchall()
        return {q: tuple(labels) for q, labels in rows}

    def delete(self, annotation_id: int) -> None:
        with self.ws.transaction() as con:
            row = con.execute("DELETE FROM annotations WHERE id = ? RETURNING id",
                              [int(annotation_id)]).fetchone()
        if row is None:
            raise NotFound(f"no annotation with id {annotation_id}", "list them with `embtui tags`")

    def remove(self, project: str, query_id: str, label: str, *, doc_id: str | None = None) -> int:
        """Remove one label from a query (or pair); returns how many rows went (0 or 1)."""
        label = normalize_label(label)
        with self.ws.transaction() as con:
            rows = con.execute(
                "DELETE FROM annotations WHERE project = ? AND query_id = ? AND label = ? "
                "AND doc_id IS NOT DISTINCT FROM ? RETURNING id", [project, query_id, label, doc_id]
            ).fetchall()
        return len(rows)

    # -- the qrels overlay ---------------------------------------------------------------------
    def set_judgment(self, project: str, split: str, query_id: str, doc_id: str, grade: int = 1, *,
                     note: str | None = None, run_id: int | None = None) -> Judgment:
        """Judge ``doc_id`` for ``query_id`` (grade >= 1: relevant, 0: not); replaces an earlier one."""
        if isinstance(grade, bool) or not isinstance(grade, int) or grade < 0:
            raise EmbtuiError(f"grade {grade!r} must be an integer >= 0", "1 = relevant, 0 = not relevant")
        with self.ws.transaction() as con:
            pid = self._check_target(con, project, query_id, doc_id)
            if con.execute("SELECT 1 FROM qrels WHERE project_id = ? AND split = ? LIMIT 1",
                           [pid, split]).fetchone() is None:
                raise NotFound(f"project '{project}' has no judgments for split '{split}'")
            con.execute(
                "INSERT OR REPLACE INTO qrels_overlay (project, split, query_id, doc_id, grade, note, "
                "run_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, current_timestamp)",
                [project, split, query_id, doc_id, grade, note, run_id])
            row = con.execute(
                f"SELECT {_JUDG_COLS} FROM qrels_overlay WHERE project = ? AND split = ? "
                "AND query_id = ? AND doc_id = ?", [project, split, query_id, doc_id]).fetchone()
        return Judgment(*row)

    def remove_judgment(self, project: str, split: str, query_id: str, doc_id: str) -> bool:
        with self.ws.transaction() as con:
            rows = con.execute(
                "DELETE FROM qrels_overlay WHERE project = ? AND split = ? AND query_id = ? "
                "AND doc_id = ? RETURNING doc_id", [project, split, query_id, doc_id]).fetchall()
        return bool(rows)

    def judgments(self, project: str | None = None, split: str | None = None) -> list[Judgment]:
        if not self.ws.exists():
            return []
        with self.ws.connect() as con:
            rows = con.execute(
                f"SELECT {_JUDG_COLS} FROM qrels_overlay WHERE (? IS NULL OR project = ?) "
                "AND (? IS NULL OR split = ?) ORDER BY project, split, query_id, doc_id",
                [project, project, split, split]).fetchall()
        return [Judgment(*r) for r in rows]

    def overlay(self, project: str, split: str) -> dict[str, dict[str, int]]:
        """query_id -> {doc_id: grade} of the overlay alone."""
        out: dict[str, dict[str, int]] = {}
        for j in self.judgments(project, split):
            out.setdefault(j.query_id, {})[j.doc_id] = j.grade
        return out

    def corrected_qrels(self, project: str, split: str) -> dict[str, dict[str, int]]:
        """The imported qrels of a split with the overlay on top (an overlay grade wins)."""
        with self.ws.connect() as con:
            pid = self._project_id(con, project)
            rows = con.execute(
                "SELECT query_id, doc_id, grade FROM qrels WHERE project_id = ? AND split = ? "
                "ORDER BY query_id", [pid, split]).fetchall()
            over = con.execute(
                "SELECT query_id, doc_id, grade FROM qrels_overlay WHERE project = ? AND split = ?",
                [project, split]).fetchall()
        if not rows:
            raise NotFound(f"project '{project}' has no judgments for split '{split}'")
        out: dict[str, dict[str, int]] = {}
        for q, d, g in list(rows) + list(over):
            out.setdefault(q, {})[d] = int(g)
        return out
