"""Screenshots of every pane at 80x24 and 160x48 on the demo project (fixed data, timings frozen,
elapsed times masked). Regenerate with `pytest tests/tui/test_tui_snapshots.py --snapshot-update`."""

from __future__ import annotations

from pathlib import Path

import pytest

from embtui.tui.app import EmbtuiApp
from embtui.tui.messages import RunChosen
from embtui.tui.testing import fixed_devices, settle, steady_cursors
from embtui.tui.widgets.hit_list import HitList

SIZES = [(80, 24), (160, 48)]
QUERY_5 = "1/2000 in UK have abnormal PrP positivity."
NQ = Path(__file__).resolve().parents[1] / "data" / "nq_questions.txt"
# Screenshots are taken after Pilot's idle waits: keep Textual's own 20 ms step here (tests/tui/conftest.py)
PILOT_IDLE_STEP_S = 0.02


@pytest.fixture()
def app(ws):
    return EmbtuiApp(ws, warmup=False, poll_jobs=False, device_lister=fixed_devices)


async def steady(pilot) -> None:
    """All panes mounted, workers done, cursors not blinking."""
    await settle(pilot)
    steady_cursors(pilot.app)


async def redraw(pilot) -> None:
    """Settle, then repaint every widget from scratch: cached partial renders can otherwise split
    the same row into different (identical-looking) SVG rectangles from one run to the next."""
    await steady(pilot)
    for widget in pilot.app.screen.walk_children():
        widget.refresh()
    await pilot.pause()


def mask_elapsed(app) -> None:
    """Query latencies differ from run to run: show the hits without them."""
    for column in app.query(HitList):
        if column.ranked:
            column.show_hits(column.ranked, column.grades, column.shown_seq, column.shown_text)


def pane_setup(key: str):
    async def run_before(pilot):
        await steady(pilot)
        await pilot.press("escape", key)
        await redraw(pilot)
    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
class TestPanes:
    def test_query(self, snap_compare, app, size):
        async def run_before(pilot):
            await steady(pilot)
            pilot.app.pane("query").set_query(QUERY_5)
            await settle(pilot)
            mask_elapsed(pilot.app)
            await redraw(pilot)
        assert snap_compare(app, terminal_size=size, run_before=run_before)

    def test_metrics(self, snap_compare, app, size):
        async def run_before(pilot):
            await pane_setup("2")(pilot)
            await pilot.press("b")  # run 1 as baseline: deltas on run 2
            await redraw(pilot)
        assert snap_compare(app, terminal_size=size, run_before=run_before)

    def test_failures(self, snap_compare, app, size):
        async def run_before(pilot):
            await steady(pilot)
            pilot.app.post_message(RunChosen(2))
            await redraw(pilot)
        assert snap_compare(app, terminal_size=size, run_before=run_before)

    def test_jobs(self, snap_compare, app, size):
        assert snap_compare(app, terminal_size=size, run_before=pane_setup("4"))

    def test_models(self, snap_compare, app, size):
        assert snap_compare(app, terminal_size=size, run_before=pane_setup("5"))

    def test_project(self, snap_compare, app, size):
        assert snap_compare(app, terminal_size=size, run_before=pane_setup("6"))

    def test_train(self, snap_compare, app, size):
        assert snap_compare(app, terminal_size=size, run_before=pane_setup("7"))

    def test_space(self, snap_compare, app, size):
        assert snap_compare(app, terminal_size=size, run_before=pane_setup("8"))

    def test_drift(self, snap_compare, app, size):
        async def run_before(pilot):
            await steady(pilot)
            nq = [line.strip() for line in NQ.read_text().splitlines() if line.strip()]
            pilot.app.store.save_query_log("demo", "web", nq[:120], [None] * 120)
            await pilot.press("escape", "9")
            await settle(pilot)
            await pilot.press("ctrl+s")
            await settle(pilot, timeout=120)
            pilot.app.pane("drift").status("")  # it says how long the measurement took
            await redraw(pilot)
        assert snap_compare(app, terminal_size=size, run_before=run_before)

    def test_project_profile(self, snap_compare, app, size):
        async def run_before(pilot):
            await pane_setup("6")(pilot)
            await pilot.press("p")
            await settle(pilot, timeout=60)
            await redraw(pilot)
        assert snap_compare(app, terminal_size=size, run_before=run_before)


class TestModals:
    def test_help(self, snap_compare, app):
        async def run_before(pilot):
            await steady(pilot)
            await pilot.press("escape", "question_mark")
            await redraw(pilot)
        assert snap_compare(app, terminal_size=(100, 40), run_before=run_before)

    def test_document(self, snap_compare, app):
        async def run_before(pilot):
            await steady(pilot)
            pilot.app.pane("query").set_query(QUERY_5)
            await settle(pilot)
            await pilot.press("enter", "enter")
            await redraw(pilot)
        assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)
