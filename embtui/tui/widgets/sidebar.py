"""The workspace tree: projects, their models (selectable) and their runs, grouped by split."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from embtui.tui.actions import bindings
from embtui.tui.messages import Context, ModelToggled, ProjectChosen, RunChosen, WorkspaceData

NodeData = tuple[str, Any]  # ("project", name) | ("model", name) | ("run", id) | ("group", key)


def _metric(run: Any) -> str:
    if run.status != "done":
        return run.status
    value = run.metrics.get("ndcg@10")
    return f"{value:.3f}" if value is not None else "done"


class WorkspaceTree(Tree[NodeData]):
    """Sidebar tree. Enter on a project makes it current, on a run shows it, on a model (or
    space) adds it to / removes it from the selection used by the Query and Jobs panes."""

    BINDINGS = bindings("sidebar")

    DEFAULT_CSS = """
    WorkspaceTree { background: $panel; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("workspace", data=("root", None), **kwargs)
        self.show_root = True
        self.guide_depth = 2
        self._collapsed: set[str] = set()

    def show(self, data: WorkspaceData, context: Context) -> None:
        """Rebuild from a workspace read, keeping the cursor and what the user collapsed."""
        cursor = self.cursor_node.data if self.cursor_node is not None else None
        self.clear()
        self.root.set_label(Text.assemble(("embtui", "bold"), "  ", (_short_root(data.root), "dim")))
        restore: TreeNode[NodeData] | None = None
        for project in data.projects:
            current = project.name == context.project
            # the gap ends the name's span: SVG viewers drop a styled run's leading spaces
            label = Text.assemble(("● " if current else "○ "),
                                  (project.name + "  ", "bold" if current else ""),
                                  (f"{project.documents} docs", "dim"))
            if (data.drift.get(project.name) or {}).get("drifted"):
                label.append("  ⚠ drift", style="bold yellow")
            pnode = self.root.add(label, data=("project", project.name),
                                  expand=current and project.name not in self._collapsed)
            if ("project", project.name) == cursor:
                restore = pnode
            models = pnode.add("models", data=("group", f"{project.name}/models"), expand=True)
            for name in _listed_models(data, project.name):
                on = name in context.models
                node = models.add_leaf(Text.assemble(("[x] " if on else "[ ] "), name),
                                       data=("model", name))
                if ("model", name) == cursor and current:  # models repeat under each project
                    restore = node
            runs = data.runs_of(project.name)
            for split in sorted({r.split for r in runs}):
                group = pnode.add(f"runs · {split}", data=("group", f"{project.name}/runs/{split}"),
                                  expand=current and split == context.split)
                for run in (r for r in runs if r.split == split):
                    node = group.add_leaf(
                        Text.assemble((f"#{run.id} ", "dim"), run.model_name, "  ", (_metric(run), "dim")),
                        data=("run", run.id))
                    if ("run", run.id) == cursor:
                        restore = node
        self.root.expand()
        if restore is not None:
            node = restore
            self.call_after_refresh(lambda: self.move_cursor(node))

    def on_tree_node_selected(self, event: Tree.NodeSelected[NodeData]) -> None:
        """Enter: a project becomes current, a run is shown, a model is toggled."""
        event.stop()
        kind, value = event.node.data or ("", None)
        if kind == "project":
            self.post_message(ProjectChosen(value))
        elif kind == "run":
            self.post_message(RunChosen(int(value)))
        elif kind == "model":
            self._toggle(event.node)

    def on_tree_node_collapsed(self, event: Tree.NodeCollapsed[NodeData]) -> None:
        if event.node.data and event.node.data[0] == "project":
            self._collapsed.add(event.node.data[1])

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[NodeData]) -> None:
        if event.node.data and event.node.data[0] == "project":
            self._collapsed.discard(event.node.data[1])

    def _toggle(self, node: TreeNode[NodeData]) -> None:
        self.post_message(ModelToggled(node.data[1]))  # type: ignore[index]

    def action_delete_run(self) -> None:
        """del on a run (failed ones too): delete it, after a confirmation."""
        from embtui.tui.run_delete import confirm_delete_run

        node = self.cursor_node
        data = getattr(self.app, "workspace_data", None)
        if node is None or not node.data or node.data[0] != "run" or data is None:
            self.notify("move the cursor to a run to delete it", severity="warning")
            return
        run = next((r for r in data.runs if r.id == node.data[1]), None)
        if run is not None:
            confirm_delete_run(self, run)

    def action_toggle_model(self) -> None:
        node = self.cursor_node
        if node is not None and node.data and node.data[0] == "model":
            self._toggle(node)
        elif node is not None:
            node.toggle()


def _listed_models(data: WorkspaceData, project: str) -> list[str]:
    """Saved specs, then models with a run here that did not fail (a mistyped name that only left
    failed runs behind is not a model)."""
    ok = {r.model_name for r in data.runs_of(project) if r.status not in ("failed", "cancelled")}
    return [n for n in data.model_names(project) if n in data.models or n in ok]


def _short_root(root: str) -> str:
    from pathlib import Path

    return Path(root).name or root
