"""Keys as fast typists (and tmux send-keys) deliver them: none lost after a focus change, pane
keys from anywhere (1-9 outside a text box, alt+1-9 inside), `/` to the query box, the footer
saying which keys work where the focus is."""

from __future__ import annotations

import unicodedata

from textual import events
from textual.widgets import Input

from embtui.tui.actions import PANES
from embtui.tui.app import EmbtuiApp
from embtui.tui.testing import screen_text, settle
from embtui.tui.widgets.hit_list import HitList

NAMED_CHARS = {"slash": "/", "space": " ", "escape": "\x1b", "enter": "\r"}


def make_app(ws):
    return EmbtuiApp(ws, warmup=False, poll_jobs=False, device_lister=lambda: [])


def type_at_once(app, *keys: str) -> None:
    """Queue every key before the app handles the first, as a terminal delivers a burst of input
    (Pilot's ``press`` waits for the app to go idle after each key, which hides lost keys)."""
    for key in keys:
        char = NAMED_CHARS.get(key, key if len(key) == 1 else None)
        if key == "ctrl+a":
            char = unicodedata.lookup("START OF HEADING")
        event = events.Key(key, char)
        event.set_sender(app)
        app.post_message(event)


def footer_text(app) -> str:
    return screen_text(app).rstrip().splitlines()[-1]


async def test_a_then_bm25_at_once_fills_the_add_box(ws):
    app = make_app(ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert isinstance(app.focused, Input)  # the app opens in the query box
        type_at_once(app, "escape", "5", "a", *"bm25")
        await settle(pilot)
        box = app.pane("models").query_one("#add-model", Input)
        assert app.current_pane == "models"
        assert box.value == "bm25"
        assert app.focused is box
        assert app.query_one("#query-input", Input).value == ""


async def test_2_then_1_slash_aspirin_at_once_leaves_aspirin_in_the_query(ws):
    app = make_app(ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.action_focus_sidebar()
        type_at_once(app, "2", "1", "slash", *"aspirin")
        await settle(pilot)
        box = app.query_one("#query-input", Input)
        assert app.current_pane == "query"
        assert box.value == "aspirin"  # the focus key `/` is not typed
        assert app.focused is box
        await pilot.pause(0.3)  # the debounce
        await settle(pilot)
        assert app.pane("query").text == "aspirin"


async def test_a_long_burst_keeps_its_order_across_panes(ws):
    """Pane keys, a focus key and text, twice over, all queued at once."""
    app = make_app(ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        type_at_once(app, "escape", "6", "i", *"/tmp/x", "escape", "5", "a", *"bm25", "escape",
                     "3", "4", "1", "slash", *"vitamin d")
        await settle(pilot)
        assert app.pane("project").query_one("#import-path", Input).value == "/tmp/x"
        assert app.pane("models").query_one("#add-model", Input).value == "bm25"
        assert app.query_one("#query-input", Input).value == "vitamin d"
        assert app.current_pane == "query"


async def test_pane_keys_outside_a_text_box_switch_and_type_nothing(ws):
    app = make_app(ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        type_at_once(app, "escape", "1")  # `1` lands on the results, not in the box
        await settle(pilot)
        assert not app.typing()
        assert app.focused in [c.query_one("ListView") for c in app.query(HitList)]
        for pid, _title, key in PANES[1:] + PANES[:1]:
            type_at_once(app, key)
            await settle(pilot)
            assert app.current_pane == pid, key
            assert app.tab_box.active == pid
        assert app.query_one("#query-input", Input).value == ""


async def test_alt_keys_switch_panes_from_inside_a_text_box(ws):
    app = make_app(ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        box = app.query_one("#query-input", Input)
        assert app.focused is box
        type_at_once(app, *"23")  # in the box, digits are text
        await settle(pilot)
        assert box.value == "23" and app.current_pane == "query"
        type_at_once(app, "alt+2")
        await settle(pilot)
        assert app.current_pane == "metrics"
        type_at_once(app, "alt+5", "a", *"x1", "alt+4")  # from the add box too
        await settle(pilot)
        assert app.pane("models").query_one("#add-model", Input).value == "x1"
        assert app.current_pane == "jobs"
        type_at_once(app, "alt+6")  # alt+N outside a box works as well
        await settle(pilot)
        assert app.current_pane == "project"


async def test_escape_leaves_the_query_box_and_slash_comes_back_without_typing_it(ws):
    app = make_app(ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        box = app.query_one("#query-input", Input)
        type_at_once(app, *"dna", "escape", "3")
        await settle(pilot)
        assert app.current_pane == "failures" and box.value == "dna"
        type_at_once(app, "4", "slash")  # from the Jobs pane: `/` is the query box
        await settle(pilot)
        assert app.current_pane == "query" and app.focused is box
        assert box.value == "dna"
        type_at_once(app, "end", *" and/or")  # inside the box a slash is text
        await settle(pilot)
        assert box.value == "dna and/or"
        type_at_once(app, "escape", "2", "slash", *"rna")  # the box comes back selected:
        await settle(pilot)  # typing starts a new query
        assert box.value == "rna"


async def test_the_footer_shows_the_keys_that_work_where_the_focus_is(ws):
    app = make_app(ws)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        inside = footer_text(app)  # the query box has the focus
        assert "alt+1-9 Panes" in inside and "esc Leave box" in inside
        assert "/ Search" not in inside and " 1-9 Panes" not in inside
        type_at_once(app, "escape")
        await settle(pilot)
        outside = footer_text(app)
        assert "1-9 Panes" in outside and "alt+1-9" not in outside
        assert "/ Search" in outside and "Leave box" not in outside


async def test_help_lists_the_pane_keys_both_ways(ws):
    from embtui.tui.screens.help import help_table

    from rich.console import Console

    console = Console(width=100, record=True, color_system=None)
    console.print(help_table())
    text = console.export_text()
    assert "1 alt+1" in text and "Show the Query pane" in text
    assert "Show the Query pane from inside" not in text  # the alt twins are not listed twice
    assert "/" in text and "Type a query" in text


async def test_keys_typed_before_the_panes_mount_wait_for_them(ws):
    """Straight after start the hidden panes may not be mounted yet: keys wait, none is lost."""
    app = make_app(ws)
    async with app.run_test(size=(120, 40)) as pilot:
        type_at_once(app, "escape", "5", "a", *"bm25")
        await settle(pilot)
        assert app.current_pane == "models"
        assert app.pane("models").query_one("#add-model", Input).value == "bm25"


def test_alt_digits_from_a_real_terminal_read_as_alt_keys():
    """Terminals send alt+5 as ESC then 5; Textual alone reads that as "∞" (macOS option+5), so
    alt+1-9 never fired outside Pilot and escape-then-5 typed "∞" into the query box."""
    import embtui.tui.keys  # noqa: F401  (the app imports it before the driver starts)
    from textual._xterm_parser import XTermParser

    keys = [(e.key, e.character) for e in XTermParser().feed("\x1b5a\x1b1∞")]
    assert keys == [("alt+5", None), ("a", "a"), ("alt+1", None), ("infinity", "∞")]


async def test_a_pane_key_before_a_new_column_mounts_its_list_does_not_crash(ws):
    """`1` pressed the moment a model is selected: its hit column has no list yet (seen in tmux
    as NoMatches: ListView, which quit the app); focus falls back to the tree instead."""
    app = make_app(ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        column = HitList("late")
        assert column.focus_list() is False  # not mounted: nothing to focus, no exception
        await pilot.press("escape", "1")
        await settle(pilot)
        assert app.current_pane == "query"
