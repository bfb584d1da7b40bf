"""The Drift pane (9): a reference set against a current one (splits, a query log, a corpus
snapshot) through the selected model — centroid shift, MMD with its p-value, classifier AUC,
cluster population shift with example texts, coverage, and per time window for a timestamped log;
the project's latest drift shown as an alert when it crossed the thresholds."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Select, Sparkline, Static

from embtui.tui.actions import bindings
from embtui.tui.panes.base import Pane, focus_now

WINDOWS = [("no windows", ""), ("per day", "day"), ("per week", "week"), ("per month", "month")]


class DriftPane(Pane):
    PANE_ID = "drift"
    BINDINGS = bindings("drift")
    can_focus = True

    DEFAULT_CSS = """
    DriftPane { padding: 0 1; }
    DriftPane Horizontal { height: auto; }
    DriftPane .drift-label { width: auto; padding: 1 1 0 0; }
    DriftPane #drift-reference, DriftPane #drift-current { width: 1fr; max-width: 30; }
    DriftPane #drift-window { width: 20; }
    DriftPane #drift-alert, DriftPane #drift-status, DriftPane #drift-result { height: auto; }
    DriftPane Sparkline { height: 2; }
    """

    class Done(Message, bubble=False):
        def __init__(self, result: dict[str, Any] | None, error: str = "", latest: bool = False) -> None:
            super().__init__()
            self.result = result
            self.error = error
            self.latest = latest

    def compose(self) -> ComposeResult:
        yield Static("", id="drift-alert")
        with Horizontal():
            yield Label("reference", classes="drift-label")
            yield Input(id="drift-reference", placeholder="test")
            yield Label("current", classes="drift-label")
            yield Input(id="drift-current", placeholder="log:NAME")
        with Horizontal():
            yield Label("windows", classes="drift-label")
            yield Select(WINDOWS, value="", allow_blank=False, id="drift-window")
        yield Static("e: edit · ctrl+s: measure · sets: SPLIT, queries, log:NAME, docs, docs:PROJECT, "
                     "@half1/@half2", id="drift-status")
        with VerticalScroll():
            yield Label("", id="drift-window-label")
            yield Sparkline([], id="drift-window-curve")  # shown only with windows
            yield Static("", id="drift-result")

    def on_mount(self) -> None:
        self.query_one("#drift-window-curve", Sparkline).display = False
        self.query_one("#drift-window-label", Label).display = False
        super().on_mount()

    def model(self) -> str | None:
        """The first selected model with an embedding space."""
        return next(iter(self.dense_models()), None)

    def reload(self) -> None:
        project = self.context.project
        if not project or self.store is None:
            return
        self.read_latest(project)

    @work(thread=True, exclusive=True, group="drift-latest", exit_on_error=False, description="latest drift")
    def read_latest(self, project: str) -> None:
        from embtui.api.data import latest_drift

        logs = self.store.list_query_logs(project)
        latest = latest_drift(self.store, project)
        self.app.call_from_thread(self.fill_defaults, [x["log"] for x in logs])
        if latest is not None:
            self.post_message(self.Done(latest, latest=True))

    pending_run = False  # ctrl+s pressed before the defaults arrived: measure once they do
    defaults_filled = False

    def fill_defaults(self, logs: list[str]) -> None:
        ref, cur = self.query_one("#drift-reference", Input), self.query_one("#drift-current", Input)
        if not ref.value:
            ref.value = self.context.split or "test"
        if not cur.value:
            cur.value = f"log:{logs[-1]}" if logs else "queries@half2"
            if not logs and ref.value == (self.context.split or "test"):
                ref.value = "queries@half1"
        self.defaults_filled = True
        if self.pending_run:
            self.pending_run = False
            self.action_run_drift()

    def action_run_drift(self) -> None:
        project, model = self.context.project, self.model()
        if not project or self.store is None:
            return
        if model is None:
            self.status(Text("select a dense model in the workspace tree first", style="red"))
            return
        ref = self.query_one("#drift-reference", Input).value.strip() or "test"
        cur = self.query_one("#drift-current", Input).value.strip()
        if not cur and not self.defaults_filled:  # keys typed faster than the pane read its logs
            self.pending_run = True
            self.status("reading the project's query logs …")
            return
        if not cur:
            self.status(Text("give the current set (e.g. log:prod)", style="red"))
            return
        window = str(self.query_one("#drift-window", Select).value or "") or None
        self.status(f"measuring {cur} against {ref} through {model} …")
        self.measure(project, model, ref, cur, window)

    @on(Input.Submitted)
    def submitted(self) -> None:
        self.action_run_drift()

    @work(thread=True, exclusive=True, group="drift", exit_on_error=False, description="measure drift")
    def measure(self, project: str, model: str, ref: str, cur: str, window: str | None) -> None:
        from embtui.api.data import drift
        from embtui.errors import EmbtuiError

        try:
            self.post_message(self.Done(drift(self.store, project, model, ref, cur, window=window)))
        except EmbtuiError as exc:
            self.post_message(self.Done(None, str(exc)))

    @on(Done)
    def show(self, message: Done) -> None:
        from embtui.api.textplot import drift_lines

        r = message.result
        if r is None:
            self.status(Text(message.error, style="red"))
            return
        alert = self.query_one("#drift-alert", Static)
        if r.get("current", "").startswith("log:"):
            if r.get("drifted"):
                top = r["clusters"][0] if r.get("clusters") else None
                where = ""
                if top:
                    name = "outside every reference cluster" if top["cluster"] == r.get("k") else f"cluster {top['cluster']}"
                    where = f"; most change: {name} {top['reference_share']:.0%} → {top['current_share']:.0%}"
                alert.update(Text(f"⚠ {r['current']} drifted from {r['reference']} ({r['model']}): MMD p "
                                  f"{r['mmd']['p_value']:.3g}, AUC {r['auc'] or 0:.2f}, PSI {r['psi']:.2f}{where}",
                                  style="bold yellow"))
            else:
                alert.update(Text(f"{r['current']}: no drift beyond the thresholds against {r['reference']}",
                                  style="green"))
        self.query_one("#drift-result", Static).update(Text("\n".join(drift_lines(r))))
        windows = [w for w in r.get("windows") or [] if isinstance(w.get("centroid_shift"), (int, float))
                   and w["centroid_shift"] == w["centroid_shift"]]
        curve = self.query_one("#drift-window-curve", Sparkline)
        curve.data = [w["centroid_shift"] for w in windows]
        curve.display = bool(windows)
        self.query_one("#drift-window-label", Label).display = bool(windows)
        self.query_one("#drift-window-label", Label).update(
            "centroid shift per window: " + " ".join(w["window"] + ("⚠" if w["drifted"] else "") for w in windows)
            if windows else "")
        if not message.latest:
            self.status(f"done in {sum(r.get('seconds', {}).values()):.1f} s")
            if r.get("current", "").startswith("log:"):  # the sidebar's alert reads the saved result
                from embtui.tui.messages import WorkspaceChanged

                self.post_message(WorkspaceChanged())
        else:
            self.status("the latest drift of a query log (ctrl+s measures again)")

    def status(self, text: Any) -> None:
        self.query_one("#drift-status", Static).update(text)

    def action_edit_form(self) -> None:
        focus_now(self.query_one("#drift-reference", Input))

    def focus_default(self) -> None:
        focus_now(self)
