"""Runs in flight: which jobs of a project are queued or running, and refusing to delete or
replace a project under them (read on the caller's connection, inside its transaction)."""

from __future__ import annotations

import json
from typing import Any

from embtui.errors import EmbtuiError


def active_jobs_of_project(con: Any, project: str) -> list[tuple[str, str]]:
    """(job id, state) of the queued or running jobs on ``project``, oldest first, read on ``con``
    (so a caller can check inside its own transaction)."""
    rows = con.execute("""SELECT id, state, request FROM jobs WHERE state IN ('queued', 'running')
                          ORDER BY created_at, id""").fetchall()
    out = []
    for job_id, state, request in rows:
        try:
            wanted = json.loads(request).get("project") if request else None
        except (ValueError, AttributeError):
            wanted = None
        if wanted == project:
            out.append((job_id, state))
    return out


def refuse_while_jobs_run(con: Any, project: str, action: str) -> None:
    """An EmbtuiError naming the queued/running jobs of ``project`` (their runs would vanish)."""
    jobs = active_jobs_of_project(con, project)
    if jobs:
        listed = ", ".join(f"{job_id} ({state})" for job_id, state in jobs)
        cancel = "; ".join(f"embtui jobs cancel {job_id}" for job_id, _ in jobs)
        raise EmbtuiError(
            f"cannot {action} project '{project}' while {len(jobs)} job(s) of it are queued or "
            f"running: {listed}",
            f"wait for them to finish, or cancel them with `{cancel}`, then try again",
        )
