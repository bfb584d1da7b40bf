"""The Models & Devices pane: add a model, select it, edit and save its spec, list devices."""

from __future__ import annotations


from embtui.engine.devices import DeviceInfo
from embtui.tui.app import EmbtuiApp
from embtui.tui.testing import fixed_devices, screen_text, settle


async def open_models(pilot):
    await settle(pilot)
    await pilot.press("escape", "5")
    await settle(pilot)
    return pilot.app.pane("models")


async def test_add_a_local_model_saves_and_selects_it(ws, tiny_model):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False, device_lister=fixed_devices)
    async with app.run_test(size=(140, 48)) as pilot:
        pane = await open_models(pilot)
        await pilot.press("a")
        assert app.focused is pane.query_one("#add-model")
        await pilot.press(*str(tiny_model), "tab", *"tiny2", "enter")
        await settle(pilot)
        spec = app.store.get_model("tiny2")
        assert spec is not None and spec["model"] == str(tiny_model)
        assert "tiny2" in app.context.models  # a new model is selected at once
        assert "tiny2" in pane.query_one("#model-table").rows
        assert "[x] tiny2" in screen_text(app)


async def test_adding_a_missing_folder_shows_the_error(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False, device_lister=fixed_devices)
    async with app.run_test(size=(140, 48)) as pilot:
        pane = await open_models(pilot)
        await pilot.press("a", *"./no-such-model", "enter")
        await settle(pilot)
        area = pane.query_one("#spec-error")
        assert area.has_class("-shown")
        assert "does not exist" in str(area.render())
        assert app.store.get_model("no-such-model") is None


async def test_edit_a_spec_and_save_with_ctrl_s(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False, device_lister=fixed_devices)
    async with app.run_test(size=(140, 60)) as pilot:
        pane = await open_models(pilot)
        table = pane.query_one("#model-table")
        table.move_cursor(row=table.get_row_index("tiny"))
        await pilot.pause()
        assert pane.editing == "tiny"
        # the device list comes from the detected devices
        device = pane.query_one("#edit-device")
        assert [str(o[1]) for o in device._options if o[1] is not None][:3] == ["auto", "cpu", "cuda:0"]
        device.value = "cuda:0"
        pane.query_one("#edit-precision").value = "fp16"
        pane.query_one("#edit-batch_size").value = "8"
        pane.query_one("#edit-max_seq_length").value = "128"
        pane.query_one("#edit-query_prompt").value = "query: "
        table.focus()
        await pilot.press("ctrl+s")
        await settle(pilot)
        spec = app.store.get_model("tiny")
        assert (spec["device"], spec["precision"], spec["batch_size"]) == ("cuda:0", "fp16", 8)
        assert spec["max_seq_length"] == 128 and spec["query_prompt"] == "query: "
        assert spec["truncate_dim"] is None


async def test_a_bad_value_is_refused_with_a_message(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False, device_lister=fixed_devices)
    async with app.run_test(size=(140, 60)) as pilot:
        pane = await open_models(pilot)
        pane.query_one("#edit-batch_size").value = "lots"
        pane.action_save_spec()
        await settle(pilot)
        assert "batch size must be a whole number" in str(pane.query_one("#spec-error").render())
        pane.query_one("#edit-batch_size").value = "0"
        pane.action_save_spec()
        assert "at least 1" in str(pane.query_one("#spec-error").render())
        assert app.store.get_model("bm25")["batch_size"] == 32


async def test_space_toggles_the_model_under_the_cursor(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False, device_lister=fixed_devices)
    async with app.run_test(size=(140, 48)) as pilot:
        pane = await open_models(pilot)
        table = pane.query_one("#model-table")
        table.move_cursor(row=table.get_row_index("bm25"))
        await pilot.press("space")
        await settle(pilot)
        assert app.context.models == ("tiny",)
        assert str(table.get_cell("bm25", "sel")) == "[ ]"


async def test_devices_are_listed_and_refreshed(ws, monkeypatch):
    import embtui.tui.panes.models as models_pane

    monkeypatch.setattr(models_pane, "DEVICE_REFRESH_S", 0.3)
    calls = []

    def lister():
        calls.append(1)
        used = len(calls)
        return [DeviceInfo("cpu", "Test CPU", 16 * 2**30, (16 - used) * 2**30, 5.0 * used)]

    app = EmbtuiApp(ws, warmup=False, poll_jobs=False, device_lister=lister)
    async with app.run_test(size=(140, 48)) as pilot:
        pane = await open_models(pilot)
        table = pane.query_one("#device-table")
        seen = len(calls)
        assert str(table.get_cell("cpu", "memory used / total GiB")) == f"{seen}.0 / 16.0"
        await pilot.pause(0.5)  # a refresh tick
        await settle(pilot)
        assert len(calls) > seen
        assert str(table.get_cell("cpu", "memory used / total GiB")) == f"{len(calls)}.0 / 16.0"
        assert str(table.get_cell("cpu", "util %")) == f"{5 * len(calls)}"


async def test_real_device_list_has_the_cpu(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False)
    async with app.run_test(size=(140, 48)) as pilot:
        pane = await open_models(pilot)
        assert "cpu" in pane.query_one("#device-table").rows


# -- names checked at add time, bm25 without runtime settings (issue 11, items 3 and 10) ----------
async def test_an_unknown_hub_id_is_refused_at_add_time_offline(ws, monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False, device_lister=fixed_devices)
    async with app.run_test(size=(140, 48)) as pilot:
        pane = await open_models(pilot)
        t0 = time.perf_counter()
        await pilot.press("a", *"org/no-such-model", "enter")
        await settle(pilot)
        assert time.perf_counter() - t0 < 10  # Pilot typing included; the check itself is a stat
        area = pane.query_one("#spec-error")
        text = str(area.render())
        assert area.has_class("-shown") and "unknown model 'org/no-such-model'" in text
        assert "available offline" in text and "bm25" in text
        assert app.store.get_model("org/no-such-model") is None
        assert "org/no-such-model" not in pane.query_one("#model-table").rows


async def test_adding_an_existing_name_is_refused(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False, device_lister=fixed_devices)
    async with app.run_test(size=(140, 48)) as pilot:
        pane = await open_models(pilot)
        before = app.store.get_model("tiny")
        await pilot.press("a", *"bm25", "tab", *"tiny", "enter")
        await settle(pilot)
        assert "already saved" in str(pane.query_one("#spec-error").render())
        assert app.store.get_model("tiny") == before


async def test_bm25_shows_no_precision_batch_or_device(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False, device_lister=fixed_devices)
    async with app.run_test(size=(140, 60)) as pilot:
        pane = await open_models(pilot)
        table = pane.query_one("#model-table")
        row = [str(c) for c in table.get_row("bm25")]
        assert row[3:7] == ["–"] * 4 and "fp32" not in row
        assert "fp32" in [str(c) for c in table.get_row("tiny")]
        table.move_cursor(row=table.get_row_index("bm25"))
        await pilot.pause()
        assert pane.query_one("#edit-precision").disabled and pane.query_one("#edit-batch_size").disabled
        assert "nothing to tune" in str(pane.query_one("#edit-title").render())
        table.move_cursor(row=table.get_row_index("tiny"))
        await pilot.pause()
        assert not pane.query_one("#edit-precision").disabled


async def test_build_a_pipeline_from_the_keyboard(ws):
    from embtui.tui.screens.pipeline import PipelineScreen

    app = EmbtuiApp(ws, warmup=False, poll_jobs=False, device_lister=fixed_devices)
    async with app.run_test(size=(140, 48)) as pilot:
        pane = await open_models(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert isinstance(app.screen, PipelineScreen)
        assert pane.query_one("#model-table").row_count == 2  # bm25 and tiny before
        # a wrong form (two first stages, no fusion) comes back with the reason, nothing saved
        await pilot.press(*"hyb", "tab", *"bm25, tiny", "ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, PipelineScreen)
        assert "need a fusion" in str(app.screen.query_one("#pipeline-error").render())
        assert app.store.get_model("hyb") is None
        assert app.screen.query_one("#pipeline-retrieve").value == "bm25, tiny"  # kept as typed
        await pilot.press("tab", "tab", *"rrf:30", "ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, PipelineScreen)
        spec = app.store.get_model("hyb")
        assert spec is not None and spec["pipeline"]["fuse"] == "rrf" and spec["pipeline"]["rrf_k"] == 30
        assert [s["name"] for s in spec["pipeline"]["retrieve"]] == ["bm25", "tiny"]
        assert "hyb" in app.context.models  # selected for Jobs/Query at once
        assert "pipeline: rrf(k=30)[bm25, tiny]" in screen_text(app)


async def test_a_pipeline_form_escape_saves_nothing(ws):
    app = EmbtuiApp(ws, warmup=False, poll_jobs=False, device_lister=fixed_devices)
    async with app.run_test(size=(140, 48)) as pilot:
        await open_models(pilot)
        await pilot.press("p", *"x", "tab", *"bm25", "escape")
        await settle(pilot)
        assert app.store.get_model("x") is None
