"""The run card under the Metrics table: how the run under the cursor was made."""

from __future__ import annotations

from embtui.tui.app import EmbtuiApp
from embtui.tui.testing import fixed_devices, screen_text, settle
from embtui.tui.widgets.run_card import RunCard


async def test_the_card_follows_the_cursor_and_shows_the_runs_config(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False, device_lister=fixed_devices)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        app.action_toggle_sidebar()
        app.action_show_pane("metrics")
        await settle(pilot)
        pane = app.pane("metrics")
        card = pane.query_one(RunCard)
        table = pane.query_one("#metrics-table")
        table.move_cursor(row=table.get_row_index("1"))
        await settle(pilot)
        text = screen_text(app)
        assert card.display and "run #1 bm25  done" in text
        assert "bm25, depth 100" in text and "400 docs, 100 queries" in text
        assert "precision" not in text  # a lexical model has no precision or batch
        table.move_cursor(row=table.get_row_index("2"))
        await settle(pilot)
        text = screen_text(app)
        run = next(r for r in app.workspace_data.runs if r.id == 2)
        enc = run.info["encode"]["documents"]
        assert "run #2 tiny  done" in text
        assert f"{enc['cached']} of {enc['texts']} docs cached, {enc['encoded']} encoded" in text
        assert "precision" in text and run.model_spec["precision"] in text
        assert "exact" in text
