"""App-wide messages and the immutable view context the app hands down to every pane."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:  # pragma: no cover
    from embtui.api.workspace import ProjectInfo, RunInfo


@dataclass(frozen=True)
class Context:
    """What the user is looking at: project, split, selected models; handed down to the panes.

    ``revision`` grows whenever workspace data changed (an import, a finished run, a saved model),
    so panes showing the same project know to reload.
    """

    project: str | None = None
    split: str = "test"
    models: tuple[str, ...] = ()
    revision: int = 0


@dataclass(frozen=True)
class WorkspaceData:
    """One consistent read of the workspace: projects, saved model specs, runs."""

    root: str
    projects: tuple["ProjectInfo", ...] = ()
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: tuple["RunInfo", ...] = ()
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Saved view state per project (split, models, k, baseline per split)."""
    lineage: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Models trained or distilled here: their lineage records (base, data, loss, best step...)."""
    drift: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per project, the latest drift of a query log (``api.data.latest_drift``)."""

    def project(self, name: str | None) -> "ProjectInfo | None":
        return next((p for p in self.projects if p.name == name), None)

    def runs_of(self, project: str | None, split: str | None = None) -> list["RunInfo"]:
        return [r for r in self.runs if r.project == project and (split is None or r.split == split)]

    def model_names(self, project: str | None = None) -> list[str]:
        """Saved specs first (in name order), then models that only appear in runs of ``project``."""
        names = list(self.models)
        for r in self.runs:
            if (project is None or r.project == project) and r.model_name not in names:
                names.append(r.model_name)
        return names

    def spec_dict(self, model: str) -> dict[str, Any] | None:
        """The saved spec of ``model``, else the spec of its latest run."""
        if model in self.models:
            return self.models[model]
        for r in reversed(self.runs):
            if r.model_name == model and r.model_spec:
                return r.model_spec
        return None


class WorkspaceLoaded(Message):
    """A fresh read of the workspace is ready (posted by the app's loader worker)."""

    def __init__(self, data: WorkspaceData, *, seeded_demo: bool = False, store: Any = None,
                 project: str | None = None) -> None:
        super().__init__()
        self.data = data
        self.seeded_demo = seeded_demo
        self.store = store  # the Store the worker opened (the app keeps it)
        self.project = project  # make this project current, if it exists


class WorkspaceChanged(Message):
    """Something changed workspace data (import, saved model, finished job): reload it."""

    def __init__(self, project: str | None = None) -> None:
        super().__init__()
        self.project = project  # switch to this project after the reload, if given


class WarmedUp(Message):
    """torch and sentence-transformers are imported (so the first model load is quick)."""

    def __init__(self, seconds: float, error: str | None = None) -> None:
        super().__init__()
        self.seconds = seconds
        self.error = error


class JobsPolled(Message):
    """The job list changed (posted by the app's job watcher, at most every poll interval)."""

    def __init__(self, jobs: tuple[Any, ...], error: str | None = None) -> None:
        super().__init__()
        self.jobs = jobs
        self.error = error  # the job system is missing or listing failed

    def can_replace(self, message: Message) -> bool:  # a newer list replaces an unhandled older one
        return isinstance(message, JobsPolled)


class ModelToggled(Message):
    """Add or remove a model from the selection (from the sidebar or the Models pane)."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model


class ProjectChosen(Message):
    """Make this project current."""

    def __init__(self, project: str) -> None:
        super().__init__()
        self.project = project


class RunChosen(Message):
    """Show this run (Metrics highlights it; Failures analyses it)."""

    def __init__(self, run_id: int, pane: str = "failures") -> None:
        super().__init__()
        self.run_id = run_id
        self.pane = pane
