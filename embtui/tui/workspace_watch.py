"""Keeps the app's view of the workspace fresh (polls the DB file for other sessions' writes) and remembers each project's view state."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.worker import get_current_worker

from embtui.tui.messages import WorkspaceData, WorkspaceLoaded

if TYPE_CHECKING:  # pragma: no cover
    from embtui.api.workspace import Store

WATCH_S = 1.0
"""How often the DB file is looked at (a stat, no DB connection)."""
VIEW_KEYS = ("split", "models", "k", "baseline")


def db_signature(root: str | Path) -> tuple[Any, ...]:
    """(mtime_ns, size) of the workspace DB and its WAL: changes on every committed write (any
    process), never on a read. Costs two stats."""
    from embtui.api.workspace import DB_NAME

    out: list[Any] = []
    for name in (DB_NAME, DB_NAME + ".wal"):
        try:
            st = os.stat(Path(root) / name)
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def read_workspace(store: "Store") -> WorkspaceData:
    """One read of what the app shows: projects, saved specs, runs, and the saved view states."""
    from embtui.api.data import latest_drift
    from embtui.api.training import model_lineage

    models = store.list_models()
    lineage = {}
    for name in models:
        rec = model_lineage(store, name)
        if rec:
            lineage[name] = rec
    projects = tuple(store.list_projects())
    drift = {}
    for p in projects:
        rec = latest_drift(store, p.name)
        if rec:
            drift[p.name] = rec
    return WorkspaceData(str(store.ws.root), projects, models,
                         tuple(store.list_runs()), views=store.view_states(), lineage=lineage, drift=drift)


def _content(data: WorkspaceData) -> tuple[Any, ...]:
    """What a refresh is for (the view states are this session's own business)."""
    return (data.projects, data.models, data.runs)


class WorkspaceWatchMixin:
    """For EmbtuiApp: ``watch_workspace`` posts a fresh WorkspaceLoaded when another process (or a
    job) changed projects, specs or runs; ``saved_view``/``remember_view`` keep per-project view
    state (split, selected models, k, baseline per split) in the workspace's settings."""

    workspace_watch_s = WATCH_S

    @work(thread=True, exclusive=True, group="workspace-watch", exit_on_error=False,
          description="watch the workspace")
    def watch_workspace(self, root: str) -> None:
        worker = get_current_worker()
        from embtui.api.workspace import Store

        store = Store(root)
        last = db_signature(root)
        while not worker.is_cancelled:
            time.sleep(self.workspace_watch_s)
            sig = db_signature(root)
            if sig == last:
                continue
            try:
                data = read_workspace(store)
            except Exception:  # noqa: BLE001 - a writer mid-way or a lock held long: next tick
                continue
            last = sig
            current = self.workspace_data  # type: ignore[attr-defined]
            if current is None or _content(data) != _content(current):
                self.post_message(WorkspaceLoaded(data, store=self.store))  # type: ignore[attr-defined]

    # -- per-project view state ----------------------------------------------------------------
    def _restored_view(self, data: WorkspaceData, project: str, split: str,
                       models: tuple[str, ...] | None = None) -> tuple[str, tuple[str, ...]]:
        """(split, selected models) for ``project``: as saved last time where still valid, else
        ``split`` and ``models`` (None: the app's default selection)."""
        saved = self.saved_view(project)
        info = data.project(project)
        if info is not None and saved.get("split") in info.splits:
            split = saved["split"]
        if isinstance(saved.get("models"), list):
            known = set(data.model_names(project))
            return split, tuple(m for m in saved["models"] if m in known)
        if models is None:
            models = self._default_selection(data, project, split)  # type: ignore[attr-defined]
        return split, models

    def _views(self) -> dict[str, dict[str, Any]]:
        views = getattr(self, "_view_states", None)
        if views is None:
            data = getattr(self, "workspace_data", None)
            if data is None:
                return {}  # not read yet: nothing saved is known
            views = {k: dict(v) for k, v in data.views.items()}
            self._view_states = views
        return views

    def saved_view(self, project: str | None) -> dict[str, Any]:
        """The view state saved for ``project`` ({} when none)."""
        return dict(self._views().get(project or "", {})) if project else {}

    def remember_view(self, project: str | None, **changes: Any) -> None:
        """Merge ``changes`` into the project's saved view state; written (off the UI thread) only
        when something changed."""
        if not project or getattr(self, "store", None) is None:
            return
        views = self._views()
        state = dict(views.get(project, {}))
        for key, value in changes.items():
            if key == "baseline":  # per split: {split: run id or None}
                split, run_id = value
                baselines = dict(state.get("baseline") or {})
                if run_id is None:
                    baselines.pop(split, None)
                else:
                    baselines[split] = run_id
                value = baselines
            elif isinstance(value, tuple):
                value = list(value)
            state[key] = value
        if state == views.get(project):
            return
        views[project] = state
        self._save_view(project, state)

    @work(thread=True, group="view-state", exit_on_error=False, description="save the view state")
    def _save_view(self, project: str, state: dict[str, Any]) -> None:
        store = self.store  # type: ignore[attr-defined]
        latest = self._views().get(project, state)  # the newest, should two saves overlap
        if store is None:
            return
        try:
            store.save_view_state(project, latest)
        except Exception:  # noqa: BLE001 - best effort: a read-only or busy workspace keeps working
            return
