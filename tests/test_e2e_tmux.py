"""End to end: the real `embtui` in tmux on the demo project; evaluate all-MiniLM-L6-v2 from the
keyboard, wait for the job, type a dataset query and read the ranked titles off the screen."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from embtui.engine.demo import DEMO_PATH

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

QUERY_36 = "A deficiency of vitamin B12 increases blood levels of homocysteine."
RELEVANT_TITLES = ("Folic acid improves endothelial function",
                   "Randomized trial of folic acid supplementation")


class Tmux:
    """A session on a tmux server of its own (-L), so no user's tmux is touched."""

    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.name, *args], check=True, capture_output=True,
                              text=True).stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.run("send-keys", "-t", self.name, *(["-l"] if literal else []), *keys)
        # escape followed at once by another key reads as alt+key: leave the app time between
        time.sleep(0.4 if "Escape" in keys else 0.15)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.name)

    def wait_for(self, predicate, timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; screen:\n{text}")
            time.sleep(0.25)


@pytest.fixture()
def tmux_app(tmp_path):
    ws = tmp_path / "ws"
    subprocess.run([sys.executable, "-m", "embtui", "--workspace", str(ws), "import", "beir",
                    str(DEMO_PATH), "--project", "demo"], check=True, capture_output=True)
    name = f"embtui-e2e-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
    command = f"{sys.executable} -m embtui --workspace {ws}"
    subprocess.run(["tmux", "-L", name, "new-session", "-d", "-s", name, "-x", "160", "-y", "48",
                    command], check=True, env={**env, "TERM": "xterm-256color"})
    tmux = Tmux(name)
    tmux.run("set-option", "-s", "escape-time", "0")
    try:
        yield tmux, ws
    finally:
        subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True)


def test_evaluate_minilm_from_the_keyboard_then_search(tmux_app):
    tmux, ws = tmux_app
    t0 = time.monotonic()
    tmux.wait_for(lambda s: "embtui" in s, 10, "the first paint")
    tmux.wait_for(lambda s: "demo ▸ test" in s, 20, "the workspace to load")
    tmux.wait_for(lambda s: "model stack ready" in s, 40, "the warm-up import of the model stack")
    # Models & Devices: add the model (it becomes selected), then Jobs: evaluate it
    tmux.keys("Escape")
    tmux.keys("5")
    tmux.keys("a")
    tmux.keys("all-MiniLM-L6-v2", literal=True)
    tmux.keys("Enter")
    tmux.wait_for(lambda s: "[x] all-MiniLM-L6-v2" in s, 20, "the model to be saved and selected")
    tmux.keys("Escape")
    tmux.keys("4")
    tmux.keys("e")
    screen = tmux.wait_for(lambda s: " done " in s or " failed " in s, 85 - (time.monotonic() - t0),
                           "the evaluation job to finish")
    assert " failed " not in screen, screen
    # Query: type a dataset query; the relevant documents come back marked
    tmux.keys("1")
    tmux.keys(QUERY_36, literal=True)
    screen = tmux.wait_for(lambda s: any(t in s for t in RELEVANT_TITLES), 20, "ranked results")
    assert "dataset query 36" in screen
    assert "✓" in screen
    assert time.monotonic() - t0 < 90
