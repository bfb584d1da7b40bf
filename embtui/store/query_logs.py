"""The query_logs table: production queries per project and log name (text, optional timestamp);
a re-import of a log replaces it whole, in one transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from embtui.errors import EmbtuiError, NotFound

if TYPE_CHECKING:
    from embtui.store.db import Workspace


class QueryLogsRepo:
    """Mixed into :class:`~embtui.store.api.Store`, which provides ``ws``."""

    ws: "Workspace"

    def save_query_log(self, project: str, log: str, texts: Sequence[str],
                       timestamps: Sequence[float | None], *, replace: bool = False) -> int:
        import pyarrow as pa

        if not log or not log.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise EmbtuiError(f"log name {log!r} must be letters, digits, '-', '_' or '.'")
        table = pa.table({"row_no": pa.array(range(1, len(texts) + 1), pa.int32()),
                          "text": pa.array(list(texts), pa.string()),
                          "ts": pa.array(list(timestamps), pa.float64())})
        with self.ws.transaction() as con:
            if not con.execute("SELECT 1 FROM projects WHERE name = ?", [project]).fetchone():
                raise NotFound(f"no project named '{project}'", "list them with `embtui projects`")
            exists = con.execute("SELECT count(*) FROM query_logs WHERE project = ? AND log = ?",
                                 [project, log]).fetchone()[0]
            if exists and not replace:
                raise EmbtuiError(f"project '{project}' already has a query log named '{log}'",
                                  "pass --replace to overwrite it, or choose another --log name")
            con.execute("DELETE FROM query_logs WHERE project = ? AND log = ?", [project, log])
            con.register("_log", table)
            con.execute("INSERT INTO query_logs SELECT ?, ?, row_no, text, ts FROM _log", [project, log])
        return len(texts)

    def query_log(self, project: str, log: str) -> tuple[list[str], list[float | None]]:
        with self.ws.connect() as con:
            rows = con.execute("SELECT text, ts FROM query_logs WHERE project = ? AND log = ? ORDER BY row_no",
                               [project, log]).fetchall()
        if not rows:
            raise NotFound(f"project '{project}' has no query log named '{log}'",
                           "import one with `embtui import queries FILE --project P --log NAME`")
        return [r[0] for r in rows], [r[1] for r in rows]

    def list_query_logs(self, project: str | None = None) -> list[dict]:
        """[{project, log, queries, timestamped, first, last}] by project and log."""
        sql = ("SELECT project, log, count(*), count(ts), min(ts), max(ts) FROM query_logs "
               + ("WHERE project = ? " if project else "") + "GROUP BY project, log ORDER BY project, log")
        with self.ws.connect() as con:
            rows = con.execute(sql, [project] if project else []).fetchall()
        return [{"project": r[0], "log": r[1], "queries": r[2], "timestamped": r[3], "first": r[4], "last": r[5]}
                for r in rows]

    def delete_query_log(self, project: str, log: str) -> None:
        with self.ws.transaction() as con:
            con.execute("DELETE FROM query_logs WHERE project = ? AND log = ?", [project, log])
