"""Deleting a run from the app: ask with a modal, delete in a thread worker, reload the workspace."""

from __future__ import annotations

from typing import Any

from textual.widget import Widget


def confirm_delete_run(owner: Widget, run: Any) -> None:
    """Ask whether to delete ``run`` (a RunInfo); on yes, delete it off the UI thread."""
    from embtui.tui.screens.confirm import ConfirmScreen

    question = (f"Delete run #{run.id} ({run.model_name} on {run.project}/{run.split}, {run.status}) "
                "with its rankings, metrics and index files? Tags and marks made on it stay.")

    def answered(yes: bool | None) -> None:
        if yes:
            owner.run_worker(lambda: _delete(owner, run.id), thread=True, group="delete-run",
                             exit_on_error=False, description="delete a run")

    owner.app.push_screen(ConfirmScreen(question, yes=f"Delete #{run.id}"), answered)


def _delete(owner: Widget, run_id: int) -> None:
    from embtui.api.runs import delete_runs
    from embtui.tui.messages import WorkspaceChanged

    store = getattr(owner.app, "store", None)
    assert store is not None
    delete_runs(store, [run_id])  # an EmbtuiError (a job still writing it) is notified by the app
    owner.app.call_from_thread(owner.app.notify, f"deleted run #{run_id}", timeout=3)
    owner.app.post_message(WorkspaceChanged())
