"""The one registry of user actions: keys, names and help, feeding bindings, footer, help and palette."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

# Panes in tab order: (id, title, key).
PANES: tuple[tuple[str, str, str], ...] = (
    ("query", "Query", "1"),
    ("metrics", "Metrics", "2"),
    ("failures", "Failures", "3"),
    ("jobs", "Jobs", "4"),
    ("models", "Models & Devices", "5"),
    ("project", "Project", "6"),
    ("train", "Train", "7"),
    ("space", "Space", "8"),
    ("drift", "Drift", "9"),
)
PANE_TITLES = {pid: title for pid, title, _ in PANES}

SCOPE_TITLES = {
    "app": "Everywhere", "sidebar": "Sidebar (workspace tree)", "query": "Query pane",
    "metrics": "Metrics pane", "failures": "Failures pane", "jobs": "Jobs pane",
    "models": "Models & Devices pane", "project": "Project pane", "train": "Train pane",
    "space": "Space pane", "drift": "Drift pane",
}


@dataclass(frozen=True)
class ActionSpec:
    """One user action. ``scope`` names where its binding lives (the app, a pane, the sidebar);
    ``action`` is the Textual action string run on that owner."""

    scope: str
    key: str
    action: str
    description: str
    help: str = ""
    show: bool = True
    key_display: str | None = None
    priority: bool = False
    palette: bool = True
    footer: str | None = None
    """The footer's label, where it differs from ``description`` (the palette's name)."""
    in_help: bool = True

    @property
    def keys_text(self) -> str:
        return self.key_display or self.key.replace("question_mark", "?").split(",")[0]


# Pane keys (lazygit/k9s habit): 1-9 switch panes whenever no text box has focus; in a box they
# type, and alt+1-9 switch instead (escape leaves the box). The footer shows the pair that works
# where the focus is (EmbtuiApp.check_action); `/` goes to the query box from anywhere.
ACTIONS: tuple[ActionSpec, ...] = (
    *(ActionSpec("app", f"{key},alt+{key}", f"show_pane('{pid}')", title.split(" ")[0],
                 f"Show the {title} pane", show=key == "1", key_display="1-9", footer="Panes")
      for pid, title, key in PANES),
    *(ActionSpec("app", f"alt+{key}", f"jump_pane('{pid}')", title.split(" ")[0],
                 f"Show the {title} pane from inside a text box", show=key == "1",
                 key_display="alt+1-9", footer="Panes", priority=True, palette=False,
                 in_help=False)
      for pid, title, key in PANES),
    ActionSpec("app", "escape", "leave_input", "Leave box",
               "Leave a text box (then 1-9 and the pane keys work)", key_display="esc",
               palette=False),
    ActionSpec("app", "slash", "search", "Search",
               "Type a query: the Query pane with the focus in its box (from any pane)",
               key_display="/"),
    ActionSpec("app", "question_mark,f1", "help", "Help", "List every key", key_display="?"),
    ActionSpec("app", "t", "next_split", "Split", "Switch to the project's next split"),
    ActionSpec("app", "ctrl+b", "toggle_sidebar", "Sidebar", "Hide or show the workspace tree",
               show=False),
    ActionSpec("app", "0", "focus_sidebar", "Tree", "Move focus to the workspace tree", show=False),
    ActionSpec("app", "ctrl+r", "reload", "Reload", "Read the workspace again", show=False),
    ActionSpec("app", "q", "quit", "Quit", "Leave embtui", show=False),
    ActionSpec("sidebar", "delete", "delete_run", "Delete run",
               "Delete the run under the cursor, failed ones too (asks first)", key_display="del",
               show=False, palette=False),
    ActionSpec("sidebar", "space", "toggle_model", "Select model",
               "Add the model under the cursor to the selection (or remove it)", palette=False),
    ActionSpec("query", "ctrl+o,d", "pick_dataset_query", "Dataset query",
               "Pick a query of the dataset from a searchable list", key_display="^o"),
    ActionSpec("query", "k", "next_k", "Top k", "Show the top 10, 20 or 50 hits of each model"),
    ActionSpec("query", "ctrl+t", "toggle_tokens", "Tokens",
               "Show how each selected model's tokenizer cuts the query (pieces, [UNK], truncation)",
               key_display="^t"),
    ActionSpec("metrics", "s", "sort_next", "Sort", "Sort by the next column (again: reverse)"),
    ActionSpec("metrics", "k", "next_k", "Next k", "Show metrics at the next cutoff k"),
    ActionSpec("metrics", "b", "toggle_baseline", "Baseline",
               "Make the run under the cursor the baseline (deltas in every other row)"),
    ActionSpec("metrics", "d", "deltas", "Deltas",
               "Per-query deltas of the run under the cursor against the baseline, with paired tests"),
    ActionSpec("metrics", "c", "toggle_corrected", "Corrected",
               "Show metrics on the corrected judgments (qrels plus your marks) or the imported ones"),
    ActionSpec("metrics", "x", "export", "Export", "Write the table as CSV and Markdown"),
    ActionSpec("metrics", "f", "frontier", "Frontier",
               "Quality against p99 latency and memory, Pareto runs marked; best under constraints"),
    ActionSpec("metrics", "delete", "delete_run", "Delete run",
               "Delete the run under the cursor with its rankings and files (asks first)",
               key_display="del", show=False),
    ActionSpec("failures", "n", "next_failure", "Next", "Next failed query"),
    ActionSpec("failures", "p", "previous_failure", "Prev", "Previous failed query"),
    ActionSpec("failures", "o", "compare", "Other model",
               "Show another run's ranking of the same query beside it"),
    ActionSpec("failures", "slash", "focus_filter", "Filter", "Filter failures by text",
               key_display="/"),
    ActionSpec("failures", "a", "annotate", "Tag",
               "Label the failed query or one of its documents (built-in or free label, note)"),
    ActionSpec("failures", "r", "mark_relevant", "Relevant",
               "Mark a retrieved document actually relevant (qrels overlay; again: unmark)"),
    ActionSpec("failures", "c", "toggle_corrected", "Corrected",
               "Judge on the imported qrels or on the corrected ones (with your marks)"),
    ActionSpec("failures", "l", "next_label", "Label filter",
               "Show only failures carrying the next label (cycles back to any)"),
    ActionSpec("jobs", "e", "evaluate", "Evaluate",
               "Evaluate the selected models on the current project and split"),
    ActionSpec("jobs", "E", "evaluate_force", "Evaluate again",
               "Evaluate the selected models even where an identical finished run exists",
               show=False),
    ActionSpec("jobs", "c", "cancel_job", "Cancel", "Cancel the job under the cursor"),
    ActionSpec("jobs", "r", "resume_job", "Resume", "Resume an interrupted or cancelled job"),
    ActionSpec("jobs", "l", "show_log", "Log", "Open the job's log"),
    ActionSpec("models", "a", "add_model", "Add", "Add a model (hub id, local path or bm25)"),
    ActionSpec("models", "p", "new_pipeline", "Pipeline",
               "Build a pipeline: fuse first stages (RRF, weighted) and rerank their candidates"),
    ActionSpec("models", "space", "toggle_model", "Select",
               "Add the model under the cursor to the selection (or remove it)", palette=False),
    ActionSpec("models", "ctrl+s", "save_spec", "Save spec", "Save the edited model spec"),
    ActionSpec("train", "ctrl+s", "start_training", "Start",
               "Fine-tune the base model on the project's training split (a detached job)"),
    ActionSpec("train", "e", "edit_form", "Edit", "Move into the training form (base model first)"),
    ActionSpec("train", "c", "cancel_training", "Cancel",
               "Cancel the training job (it keeps a checkpoint; Jobs pane r resumes it)"),
    ActionSpec("space", "m", "next_method", "Method", "Switch the projection: PCA or UMAP (umap-learn)"),
    ActionSpec("space", "c", "next_colour", "Colour",
               "Colour by k-means cluster, by annotation label, or by relevance to the query under the cursor"),
    ActionSpec("space", "k", "next_k", "Clusters", "k-means with 4, 8 or 16 clusters"),
    ActionSpec("drift", "e", "edit_form", "Edit", "Move into the reference and current boxes"),
    ActionSpec("drift", "ctrl+s", "run_drift", "Measure",
               "Measure the drift of the current set against the reference through the selected model"),
    ActionSpec("project", "p", "profile", "Profile",
               "Profile the data: lengths, tokens and truncation per selected model, duplicates, overlap"),
    ActionSpec("project", "i", "start_import", "Path", "Type the path of a BEIR folder or a pairs file"),
    ActionSpec("project", "ctrl+s", "run_import", "Import",
               "Import the folder or file in the form (kind detected from the path)"),
    ActionSpec("project", "D", "load_demo", "Demo", "Import the bundled demo project",
               key_display="D"),
)


def bindings(scope: str) -> list[Binding]:
    """The Textual bindings of one scope, straight from the registry."""
    return [Binding(a.key, a.action, a.footer or a.description, show=a.show,
                    key_display=a.key_display, priority=a.priority, tooltip=a.help)
            for a in ACTIONS if a.scope == scope]


def for_scope(scope: str) -> list[ActionSpec]:
    return [a for a in ACTIONS if a.scope == scope]
