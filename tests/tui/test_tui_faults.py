"""The app's worker-failure path: a resource fault is its one line, a bug is one line pointing at a
crash log (never a traceback on screen)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from embtui.tui.app import EmbtuiApp


def make_app(ws, **kw):
    return EmbtuiApp(str(ws), warmup=False, poll_jobs=False, device_lister=lambda: [], **kw)


async def wait_for_notification(app, pilot, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        notes = [n for n in app._notifications if n.severity == "error"]
        if notes:
            return notes
        await pilot.pause(0.05)
        await asyncio.sleep(0.05)
    raise AssertionError("no error notification appeared")


async def test_damaged_database_shows_one_line(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "embtui.duckdb").write_bytes(b"not a database at all" * 100)
    app = make_app(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        (note,) = await wait_for_notification(app, pilot)
        assert note.message.startswith(f"{ws / 'embtui.duckdb'} is not an embtui database or is damaged")
        assert "\n" not in note.message and "Traceback" not in note.message


async def test_a_bug_in_a_worker_points_at_a_crash_log(tmp_path: Path, monkeypatch) -> None:
    from embtui.store import Store

    ws = tmp_path / "ws"
    Store.open(ws)

    def broken(self):  # stands in for a bug in a worker
        raise KeyError("no such key")

    monkeypatch.setattr(Store, "list_projects", broken)
    app = make_app(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        (note,) = await wait_for_notification(app, pilot)
    assert note.message.startswith("internal error: KeyError: 'no such key' (traceback in ")
    log = Path(note.message.split("(traceback in ", 1)[1].rstrip(")"))
    assert log.name.startswith("crash-") and "Traceback (most recent call last)" in log.read_text()
