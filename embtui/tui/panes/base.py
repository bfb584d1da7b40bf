"""The base of every pane: receives the view context from the app and reloads only while visible."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.containers import Vertical
from textual.reactive import reactive
from textual.widget import Widget

from embtui.tui.messages import Context

if TYPE_CHECKING:  # pragma: no cover
    from embtui.api.workspace import Store
    from embtui.tui.messages import WorkspaceData


def focus_now(widget: Widget) -> None:
    """Focus at once, not after the queued events (``Widget.focus`` defers to the next message):
    keys typed right after a focus-moving key then land in the right widget."""
    widget.screen.set_focus(widget)


class Pane(Vertical):
    """A pane of the main area.

    The app binds ``context`` (project, split, selected models); a pane reloads its data when the
    context changes while it is shown, or when it is shown again after a change (``stale``), so a
    hidden pane costs nothing.
    """

    can_focus = False
    PANE_ID = ""

    context: reactive[Context] = reactive(Context(), init=False, always_update=False)
    """Project, split and selected models, bound from the app."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stale = True
        self.focus_on_mount = False
        """Shown before it mounted: focus it once mounted, then let the held keys go."""

    @property
    def store(self) -> "Store | None":
        return getattr(self.app, "store", None)

    @property
    def data(self) -> "WorkspaceData | None":
        return getattr(self.app, "workspace_data", None)

    @property
    def shown(self) -> bool:
        return getattr(self.app, "current_pane", None) == self.PANE_ID

    def on_mount(self) -> None:
        """Panes mount lazily (after the first frame): catch up if already shown."""
        if self.shown:
            self.activate()
        if self.focus_on_mount:
            self.focus_on_mount = False
            if self.shown:
                self.focus_default()
            release = getattr(self.app, "release_keys", None)
            if release is not None:
                release()

    def watch_context(self, old: Context, new: Context) -> None:
        self.stale = True
        if self.shown:
            self.activate()

    def dense_models(self) -> list[str]:
        """The selected models that have an embedding space and a tokenizer (not bm25, not a
        pipeline), in selection order."""
        data = self.data
        out = []
        for m in self.context.models:
            spec = (data.spec_dict(m) if data else None) or {}
            if m != "bm25" and spec.get("model") != "bm25" and not spec.get("stages"):
                out.append(m)
        return out

    def activate(self) -> None:
        """Called when the pane is shown: reload if something changed since the last load."""
        if self.stale and self.store is not None and self.is_mounted:
            self.stale = False
            self.reload()

    def reload(self) -> None:
        """Start the workers that read this pane's data (override)."""

    def focus_default(self) -> None:
        """Focus the widget a user most likely wants when switching here (override)."""

    def focus_body(self) -> None:
        """Focus the pane's main list or table, not a text box (escape from a box lands here)."""
        self.focus_default()
