"""The app shell: start without heavy imports, workspace loading, demo seeding, panes, keys,
help, palette, sidebar."""

from __future__ import annotations

import subprocess
import sys


from embtui.tui.actions import ACTIONS, PANES
from embtui.tui.app import EmbtuiApp
from embtui.tui.messages import WorkspaceLoaded
from embtui.tui.testing import screen_text, settle


def make_app(ws, **kw):
    kw.setdefault("warmup", False)
    kw.setdefault("poll_jobs", False)
    kw.setdefault("device_lister", lambda: [])
    return EmbtuiApp(ws, **kw)


def test_importing_the_app_loads_no_model_stack():
    code = ("import sys, embtui.tui.app; heavy = [m for m in ('torch', 'sentence_transformers', "
            "'usearch', 'transformers') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_start_paints_then_loads_the_workspace(ws):
    messages = []
    app = make_app(ws)
    async with app.run_test(size=(100, 30), message_hook=messages.append) as pilot:
        await pilot.pause()
        assert "embtui" in screen_text(app)  # painted before any workspace read finished
        await settle(pilot)
        loaded = [m for m in messages if isinstance(m, WorkspaceLoaded)]
        assert len(loaded) == 1
        assert [p.name for p in loaded[0].data.projects] == ["demo"]
        assert app.context.project == "demo" and app.context.split == "test"
        # both models with a finished run are selected by default
        assert set(app.context.models) == {"bm25", "tiny"}
        text = screen_text(app)
        assert "demo ▸ test" in text
        assert "#1 bm25" in text and "#2 tiny" in text  # runs in the sidebar
        assert app.first_paint_s is not None


async def test_default_workspace_is_seeded_with_the_demo(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBTUI_WORKSPACE", str(tmp_path / "default"))
    app = EmbtuiApp(None, warmup=False, poll_jobs=False, device_lister=lambda: [])
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert app.context.project == "demo"
        assert app.store is not None
        assert set(app.store.list_models()) == {"bm25", "all-MiniLM-L6-v2"}
        assert app.store.get_project("demo").documents == 400
        assert any("demo" in n.message for n in app._notifications)


async def test_another_workspace_is_not_seeded(tmp_path):
    app = make_app(str(tmp_path / "empty"))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert app.context.project is None
        assert app.store is not None and app.store.list_projects() == []
        await pilot.press("escape", "6")
        await settle(pilot)
        assert "No project yet" in screen_text(app)


async def test_number_keys_switch_panes_and_escape_leaves_a_text_box(ws):
    app = make_app(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.action_focus_sidebar()
        for pid, _title, key in PANES:
            await pilot.press("escape", key)  # escape: leave the query box if focus is there
            await settle(pilot)
            assert app.current_pane == pid
            assert app.tab_box.active == pid
        await pilot.press("1")  # a pane key lands on the results: the next 1-6 switches again
        await settle(pilot)
        assert app.current_pane == "query" and app.focused is not app.query_one("#query-input")
        await pilot.press("slash")  # `/` goes to the box (the slash is not typed)
        await settle(pilot)
        assert app.focused is app.query_one("#query-input")
        await pilot.press("escape", "2")
        assert app.current_pane == "metrics"
        assert app.query_one("#query-input").value == ""


async def test_help_lists_every_registered_key(ws):
    from embtui.tui.screens.help import HelpScreen

    app = make_app(ws)
    async with app.run_test(size=(120, 60)) as pilot:
        await settle(pilot)
        app.action_focus_sidebar()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for action in [a for a in ACTIONS if a.in_help][:12]:  # the first screenful
            assert (action.help or action.description)[:30] in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_palette_holds_every_action_and_runs_it(ws):
    app = make_app(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        for action in ACTIONS:
            if action.palette:
                where = "" if action.scope == "app" else f" ({action.scope})"
                assert f"{action.description}{where}" in commands
        commands["Jobs"].callback()
        await settle(pilot)
        assert app.current_pane == "jobs"
        commands["Baseline (metrics)"].callback()
        await settle(pilot)
        assert app.current_pane == "metrics"
        assert app.pane("metrics").baseline == 1


async def test_palette_opens_with_ctrl_p(ws):
    from textual.command import CommandPalette

    app = make_app(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"export")
        await pilot.pause(0.3)
        assert "Export (metrics)" in screen_text(app)


async def test_sidebar_space_toggles_a_model_and_enter_on_a_run_opens_failures(ws):
    app = make_app(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        tree = app.sidebar
        app.action_focus_sidebar()
        model_node = next(n for n in _walk(tree.root) if n.data == ("model", "bm25"))
        tree.move_cursor(model_node)
        await pilot.press("space")
        await settle(pilot)
        assert app.context.models == ("tiny",)
        assert "[ ] bm25" in screen_text(app)
        model_node = next(n for n in _walk(tree.root) if n.data == ("model", "bm25"))
        tree.move_cursor(model_node)
        await pilot.press("enter")
        await settle(pilot)
        assert app.context.models == ("tiny", "bm25")
        run_node = next(n for n in _walk(tree.root) if n.data == ("run", 1))
        tree.move_cursor(run_node)
        await pilot.press("enter")
        await settle(pilot)
        assert app.current_pane == "failures"
        assert app.pane("failures").run_id == 1


async def test_t_switches_split_and_ctrl_b_hides_the_sidebar(ws):
    app = make_app(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.action_focus_sidebar()
        await pilot.press("t")
        assert app.context.split == "train"
        assert "demo ▸ train" in screen_text(app)
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert not app.sidebar.display or app.sidebar.has_class("-hidden")
        assert "runs · test" not in screen_text(app)


async def test_warm_up_imports_the_model_stack_after_first_paint(ws):
    app = make_app(ws, warmup=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert "sentence_transformers" in sys.modules
        assert app.status_bar.engine == "model stack ready"


def _walk(node):
    yield node
    for child in node.children:
        yield from _walk(child)


async def test_a_fresh_default_workspace_opens_on_scored_demo_runs_and_a_live_query(
        tmp_path, monkeypatch):
    """The first Quickstart command: the demo is imported, its bm25 and all-MiniLM-L6-v2 runs
    are made in the background (the dense one from the shipped vectors: nothing encoded), and a
    live query answers in both columns."""
    import asyncio
    import time

    from embtui.tui.widgets.hit_list import HitList

    monkeypatch.setenv("EMBTUI_WORKSPACE", str(tmp_path / "default"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    app = EmbtuiApp(None, warmup=True, poll_jobs=False, device_lister=lambda: [])

    async def wait_for(predicate, what, timeout=300.0):
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.1)
            await pilot.pause()

    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(lambda: app.workspace_data is not None
                       and len(app.workspace_data.runs_of("demo", "test")) == 2, "the demo runs")
        runs = {r.model_name: r for r in app.workspace_data.runs_of("demo", "test")}
        assert set(runs) == {"bm25", "all-MiniLM-L6-v2"}
        assert all(r.status == "done" for r in runs.values())
        dense = runs["all-MiniLM-L6-v2"].info["encode"]["documents"]
        assert dense["cached"] == 400 and dense["encoded"] == 0  # the shipped vectors were used
        assert runs["all-MiniLM-L6-v2"].metrics["ndcg@10"] > 0.8
        await wait_for(lambda: "#1 bm25" in screen_text(app)
                       and "all-MiniLM-L6-v2" in screen_text(app), "the runs in the sidebar")
        assert set(app.context.models) == {"bm25", "all-MiniLM-L6-v2"}
        text = "vitamin d and multiple sclerosis"
        app.pane("query").set_query(text)
        columns = lambda: list(app.query(HitList))  # noqa: E731
        await wait_for(lambda: len(columns()) == 2 and all(
            c.shown_text == text and c.ranked for c in columns()), "a live query in both columns")
