"""The Project pane: counts per split, imports (BEIR, pairs) in a thread, importer errors shown."""

from __future__ import annotations

import json
import shutil


from embtui.engine.demo import DEMO_PATH
from embtui.tui.app import EmbtuiApp
from embtui.tui.testing import screen_text, settle
from embtui.tui.widgets.path_suggester import complete_path


async def open_project(pilot):
    await settle(pilot)
    await pilot.press("escape", "6")
    await settle(pilot)
    return pilot.app.pane("project")


async def test_counts_per_split(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await open_project(pilot)
        table = pane.query_one("#split-table")
        info = app.store.get_project("demo")
        assert set(table.rows) == set(info.splits) == {"test", "train"}
        assert str(table.get_cell("test", "queries")) == str(info.splits["test"]["queries"])
        text = screen_text(app)
        assert "Documents 400" in text and "scifact-mini" in text


async def test_import_a_beir_folder_from_the_keyboard(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await open_project(pilot)
        await pilot.press("i")
        assert app.focused is pane.query_one("#import-path")
        await pilot.press(*str(DEMO_PATH), "enter")  # name defaults to the folder name
        assert pane.query_one("#import-name").value == "scifact-mini"
        await pilot.press("ctrl+a", "ctrl+k", *"copy", "enter")
        await settle(pilot)
        assert app.store.get_project("copy").documents == 400
        assert app.context.project == "copy"  # the new project becomes current
        assert "imported project 'copy'" in str(pane.query_one("#import-result").render())
        assert not pane.query_one("#import-error").has_class("-shown")
        assert "copy" in screen_text(app)


async def test_importer_errors_are_shown_as_reported(ws, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(DEMO_PATH, broken)
    lines = (broken / "corpus.jsonl").read_text().splitlines()
    lines[2] = '{"_id": "x", "title": "t"'  # line 3 is not JSON
    (broken / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await open_project(pilot)
        pane.query_one("#import-path").value = str(broken)
        pane.query_one("#import-name").value = "broken"
        pane.action_run_import()
        await settle(pilot)
        area = pane.query_one("#import-error")
        assert area.has_class("-shown")
        message = str(area.render())
        assert "corpus.jsonl:3" in message and "Traceback" not in message
        assert not app.store.project_exists("broken")


async def test_existing_project_needs_replace(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await open_project(pilot)
        pane.query_one("#import-path").value = str(DEMO_PATH)
        pane.query_one("#import-name").value = "demo"
        pane.action_run_import()
        await settle(pilot)
        assert "already exists" in str(pane.query_one("#import-error").render())
        pane.query_one("#import-replace").value = True
        pane.action_run_import()
        await settle(pilot)
        assert not pane.query_one("#import-error").has_class("-shown")
        assert app.store.list_runs("demo") == []  # replacing drops the old runs


async def test_import_a_pairs_file(ws, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join(json.dumps({"query": f"question {i}", "positive": f"answer {i}"})
                               for i in range(5)) + "\n")
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(120, 48)) as pilot:
        pane = await open_project(pilot)
        pane.query_one("#import-kind").value = "pairs"
        await pilot.pause()
        assert pane.query_one("#split-row").display
        pane.query_one("#import-path").value = str(pairs)
        pane.query_one("#import-name").value = "qa"
        pane.query_one("#import-split").value = "dev"
        pane.action_run_import()
        await settle(pilot)
        info = app.store.get_project("qa")
        assert info.documents == 5 and set(info.splits) == {"dev"}


def test_path_completion_lists_file_system_entries(tmp_path):
    (tmp_path / "datasets").mkdir()
    (tmp_path / "data.jsonl").write_text("")
    assert complete_path(str(tmp_path / "datas")) == str(tmp_path / "datasets") + "/"
    assert complete_path(str(tmp_path / "data.")) == str(tmp_path / "data.jsonl")
    assert complete_path(str(tmp_path / "zzz")) is None


async def test_path_input_suggests_completions(ws, tmp_path):
    (tmp_path / "my-beir-folder").mkdir()
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await open_project(pilot)
        await pilot.press("i", *str(tmp_path / "my-b"))
        await pilot.pause(0.2)
        await pilot.press("right")  # accept the suggestion
        assert pane.query_one("#import-path").value == str(tmp_path / "my-beir-folder") + "/"


def test_completion_stops_where_matches_differ(tmp_path):
    (tmp_path / "scifact").mkdir()
    (tmp_path / "scifact-mini").mkdir()
    (tmp_path / "scores.csv").write_text("")
    # "s" matches three entries sharing only "sc": completes to that, not to the first entry
    assert complete_path(str(tmp_path / "s")) == str(tmp_path / "sc")
    assert complete_path(str(tmp_path / "sc")) is None  # ambiguous from here on
    assert complete_path(str(tmp_path / "scif")) == str(tmp_path / "scifact")
    assert complete_path(str(tmp_path / "scifact-")) == str(tmp_path / "scifact-mini") + "/"
    assert complete_path(str(tmp_path / "scifact")) is None  # scifact/ and scifact-mini/ differ
    assert complete_path(str(tmp_path / "scifact-mini")) == str(tmp_path / "scifact-mini") + "/"


def test_detect_import_kind(tmp_path):
    from embtui.data.detect import detect_import_kind

    beir = detect_import_kind(DEMO_PATH)
    assert beir.kind == "beir" and "corpus.jsonl" in beir.note and "test" in beir.note
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("query,positive\n")
    assert detect_import_kind(pairs) == detect_import_kind(str(pairs))
    assert detect_import_kind(pairs).kind == "pairs" and "CSV" in detect_import_kind(pairs).note
    assert detect_import_kind(tmp_path).kind is None
    assert "without corpus.jsonl" in detect_import_kind(tmp_path).note
    assert detect_import_kind(tmp_path / "nothing-here").kind is None


async def test_kind_follows_the_path_and_ctrl_s_imports(ws, tmp_path):
    pairs = tmp_path / "qa.jsonl"
    pairs.write_text("\n".join(json.dumps({"query": f"q {i}", "positive": f"a {i}"})
                               for i in range(4)) + "\n")
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(120, 48)) as pilot:
        pane = await open_project(pilot)
        await pilot.press("i", *str(pairs))
        await settle(pilot)
        assert pane.query_one("#import-kind").value == "pairs"
        assert pane.query_one("#split-row").display  # the split box appears for pairs
        assert "detected: pairs file (JSONL)" in str(pane.query_one("#import-detected").render())
        # typing on: a BEIR folder flips the kind back
        await pilot.press("ctrl+a", "ctrl+k", *str(DEMO_PATH))
        await settle(pilot)
        assert pane.query_one("#import-kind").value == "beir"
        assert not pane.query_one("#split-row").display
        assert "BEIR folder" in str(pane.query_one("#import-detected").render())
        await pilot.press("ctrl+a", "ctrl+k", *str(pairs))
        await settle(pilot)
        # the import key is on the button and in the footer, and works from inside the box
        assert "ctrl+s" in str(pane.query_one("#import-button").label)
        assert "Import" in screen_text(app).splitlines()[-1]
        await pilot.press("ctrl+s")
        await settle(pilot)
        info = app.store.get_project("qa")
        assert info.documents == 4 and set(info.splits) == {"train"}
        assert app.context.project == "qa"


async def test_path_note_lists_ambiguous_matches(ws, tmp_path):
    (tmp_path / "scifact").mkdir()
    (tmp_path / "scifact-mini").mkdir()
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await open_project(pilot)
        await pilot.press("i", *str(tmp_path / "scif"))
        await settle(pilot)
        note = str(pane.query_one("#import-detected").render())
        assert "2 matches" in note and "scifact/" in note and "scifact-mini/" in note


async def test_replace_checkbox_reads_without_colour(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await open_project(pilot)
        box = pane.query_one("#import-replace")
        assert "X" not in box.render().plain.split("replace")[0]
        box.value = True
        await pilot.pause()
        assert "X" in box.render().plain.split("replace")[0]


async def test_import_a_query_log_into_the_current_project(ws, tmp_path):
    log = tmp_path / "prod.csv"
    log.write_text("text,timestamp\nvitamin d and bones,2025-12-01T10:00:00Z\nstatins,\n")
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(120, 48)) as pilot:
        pane = await open_project(pilot)
        pane.query_one("#import-kind").value = "queries"
        await pilot.pause()
        assert "log name" in str(pane.query_one("#import-name-label").render())
        pane.query_one("#import-path").value = str(log)
        pane.query_one("#import-name").value = "prod"
        await pilot.pause()
        assert pane.query_one("#import-kind").value == "queries"  # the path did not switch it to pairs
        pane.action_run_import()
        await settle(pilot)
        assert app.store.query_log("demo", "prod")[0] == ["vitamin d and bones", "statins"]
        assert "2 queries, 1 with a timestamp" in str(pane.query_one("#import-result").render())
