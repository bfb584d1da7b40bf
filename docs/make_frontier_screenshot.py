"""Regenerate docs/screenshots/frontier.svg: the frontier screen (f in the Metrics pane) on the
bundled demo project — bm25, all-MiniLM-L6-v2, their RRF hybrid and MiniLM's int8/binary variants,
profiled on this machine — with a constraint answered.

Usage: python docs/make_frontier_screenshot.py [--workspace DIR] [--out docs/screenshots]
(a workspace that already has these runs and profiles is reused as it is)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
MINILM = "all-MiniLM-L6-v2"
QUICK = {"n_queries": 100, "batch_sizes": (16,), "sample_docs": 128}


def prepare(ws: Path) -> None:
    from embtui.api.evaluations import plan_evaluation, run_inline
    from embtui.api.models import ModelSpec
    from embtui.api.pipelines import make_pipeline
    from embtui.api.profiles import load_profiles, run_profile
    from embtui.api.projects import DEMO_PATH, import_beir
    from embtui.api.workspace import Store

    store = Store.open(ws)
    if "demo" not in [p.name for p in store.list_projects()]:
        import_beir(store, DEMO_PATH, "demo")
    if store.get_model(MINILM) is None:
        store.save_model(MINILM, ModelSpec(MINILM, device="cpu").to_dict())
    if store.get_model("hybrid") is None:
        make_pipeline(store, "hybrid", ["bm25", MINILM], fuse="rrf")
    run_inline(plan_evaluation(store, "demo", ["bm25", MINILM, "hybrid"], split="test", device="cpu"))
    for q in ("int8", "binary"):
        run_inline(plan_evaluation(store, "demo", [MINILM], split="test", device="cpu",
                                   overrides={"quantize": q, "rescore": 4}))
    have = {(p.model, p.precision) for p in load_profiles(store, "demo")}
    for model, quantize in (("bm25", None), (MINILM, None), (MINILM, "int8"), (MINILM, "binary")):
        if (model, quantize or "float32") not in have:
            run_profile(store, "demo", model, device="cpu", overrides={"quantize": quantize, "rescore": 4}
                        if quantize else None, **QUICK)


async def shoot(ws: Path, out: Path) -> Path:
    from embtui.tui.app import EmbtuiApp
    from embtui.tui.testing import settle

    app = EmbtuiApp(str(ws), warmup=False, poll_jobs=False)
    async with app.run_test(size=(160, 60)) as pilot:
        await settle(pilot)
        await pilot.press("escape", "2")
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        await pilot.press(*"40", "tab", *"2", "tab", *"1M", "enter")
        for _ in range(40):
            await pilot.pause(0.25)
            if "best" in str(app.screen.query_one("#frontier-answer").render()):
                break
        await settle(pilot)
        app.save_screenshot("frontier.svg", path=str(out))
    return out / "frontier.svg"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "screenshots"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(args.workspace) if args.workspace else Path(tmp) / "ws"
        prepare(ws)
        print(asyncio.run(shoot(ws, out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
