"""The per-query delta view: one run against the baseline on one metric, queries sorted by delta, with the paired tests."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static


def _p(value: float | None) -> str:
    return "–" if value is None else (f"{value:.4f}" if value >= 1e-4 else f"{value:.1e}")


class DeltaScreen(ModalScreen[None]):
    """Per-query deltas of ``comparison``'s run ``run_id`` against its baseline, biggest loss first
    (r reverses); the header carries mean Δ, its bootstrap CI, wins/ties/losses and every test."""

    BINDINGS = [Binding("escape,q", "close", "Close"), Binding("r", "reverse", "Reverse")]

    DEFAULT_CSS = """
    DeltaScreen { align: center middle; }
    DeltaScreen > Vertical { width: 95%; height: 90%; border: round $primary; background: $surface; }
    DeltaScreen #delta-summary { height: auto; padding: 0 1; }
    DeltaScreen DataTable { height: 1fr; }
    """

    def __init__(self, comparison: Any, run_id: int) -> None:
        super().__init__()
        self.comparison = comparison
        self.run_id = run_id
        self.test = comparison.test_for(run_id)
        self.rows = list(comparison.query_deltas(run_id))
        self.reversed = False

    def compose(self) -> ComposeResult:
        c, t = self.comparison, self.test
        r = t.result
        with Vertical() as box:
            box.border_title = (f"{c.label(self.run_id)} − baseline {c.label(c.baseline_id)} · "
                                f"{c.metric} per query")
            box.border_subtitle = "r reverses · escape closes"
            ci = (f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]" if r.ci_low is not None and r.ci_high is not None
                  else "–")
            verdict_style = {"better": "bold green", "worse": "bold red"}.get(t.verdict, "dim")
            judged = "corrected judgments" if c.qrels_overlay else "imported judgments"
            yield Static(Text.assemble(
                (f"{t.verdict} {t.stars}".strip(), verdict_style),
                f"   mean Δ {r.mean_delta:+.4f}  95% CI {ci}   {r.wins} wins / {r.ties} ties / "
                f"{r.losses} losses over {r.n} queries ({judged})\n",
                f"p (Holm across {len(c.others)} run(s) vs baseline): randomization "
                f"{_p(t.p_holm.get('permutation', r.p_permutation))} · t-test "
                f"{_p(t.p_holm.get('ttest', r.p_ttest))} · Wilcoxon "
                f"{_p(t.p_holm.get('wilcoxon', r.p_wilcoxon))} · effect d_z {r.effect_size:+.3f}"),
                id="delta-summary")
            yield DataTable(id="delta-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("Δ", key="delta", width=8)
        table.add_column("baseline", key="base", width=8)
        table.add_column("run", key="run", width=8)
        table.add_column("rel", key="rel", width=4)
        table.add_column("query", key="query", width=10)
        table.add_column("text", key="text")
        self.fill()
        table.focus()

    def fill(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for d in (reversed(self.rows) if self.reversed else self.rows):
            style = "green" if d.outcome == "win" else "red" if d.outcome == "loss" else "dim"
            table.add_row(Text(f"{d.delta:+.4f}", style=style), f"{d.baseline:.4f}", f"{d.value:.4f}",
                          str(d.n_relevant), Text(d.query_id), Text(d.text, overflow="ellipsis"),
                          key=d.query_id)

    def action_reverse(self) -> None:
        self.reversed = not self.reversed
        self.fill()

    def action_close(self) -> None:
        self.dismiss(None)
