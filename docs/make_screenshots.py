"""Screenshots of the data panes for docs/screenshots/ (160x48, the demo with all-MiniLM-L6-v2
from its shipped vectors; the 'web' log is 150 Natural Questions questions from tests/data).

Usage: python docs/make_screenshots.py [WORKSPACE]   (default: a temporary folder)
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "screenshots"


async def main(ws: Path) -> None:
    from embtui.api.projects import ensure_demo, evaluate_demo
    from embtui.api.workspace import Store
    from embtui.tui.app import EmbtuiApp
    from embtui.tui.testing import fixed_devices, settle, steady_cursors

    store = Store.open(ws)
    if ensure_demo(store):
        evaluate_demo(store)
        nq = [x.strip() for x in (REPO / "tests" / "data" / "nq_questions.txt").read_text().splitlines() if x.strip()]
        store.save_query_log("demo", "web", nq[:150], [None] * 150)
    shots = [("space", ["escape", "8"], None), ("space-relevance", ["escape", "8", "c", "c"], None),
             ("drift", ["escape", "9"], "ctrl+s"), ("profile", ["escape", "6", "p"], None)]
    for name, keys, then in shots:
        app = EmbtuiApp(ws, warmup=False, poll_jobs=False, device_lister=fixed_devices)
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(pilot, timeout=120)
            for k in keys:
                await pilot.press(k)
                await settle(pilot, timeout=120)
            if then:
                await pilot.press(then)
                await settle(pilot, timeout=120)
            steady_cursors(app)
            await pilot.pause()
            app.save_screenshot(str(OUT / f"{name}.svg"))
        print("wrote", OUT / f"{name}.svg")


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="embtui-shots-")) / "ws"
    asyncio.run(main(root))
