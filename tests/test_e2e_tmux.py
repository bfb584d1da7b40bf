"""End to end: the real `embtui` in tmux, typed at full speed (one `send-keys` per action, no
pause between keys): add all-MiniLM-L6-v2, evaluate it as a job on a 60-document subset of the
demo, wait for the job, type a dataset query and read the ranked titles off the screen, then the
model's embedding space (pane 8) and a drift measurement (pane 9)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from embtui.engine.demo import DEMO_PATH

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

QUERY_36 = "A deficiency of vitamin B12 increases blood levels of homocysteine."
RELEVANT_TITLES = ("Folic acid improves endothelial function",
                   "Randomized trial of folic acid supplementation")
SUBSET_DOCS = 60
JOB_ROW = re.compile(r"all-MiniLM-L6-v2\s+subset/test\s+(done|failed|interrupted|cancelled)\b")


def demo_subset(out: Path, docs: int = SUBSET_DOCS) -> Path:
    """The demo cut to ``docs`` documents: every document judged for query 36 and the queries
    whose judged documents all made it, so the job stays short even at 3 documents a second."""
    corpus = [json.loads(line) for line in (DEMO_PATH / "corpus.jsonl").read_text().splitlines()]
    qrels = [line.split("\t") for line in (DEMO_PATH / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    keep = {d for q, d, _g in qrels if q == "36"}
    for doc in corpus:
        if len(keep) >= docs:
            break
        keep.add(doc["_id"])
    judged: dict[str, set[str]] = {}
    for q, d, _g in qrels:
        judged.setdefault(q, set()).add(d)
    queries = {q for q, ds in judged.items() if ds <= keep}
    assert "36" in queries
    (out / "qrels").mkdir(parents=True)
    (out / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus if d["_id"] in keep))
    (out / "queries.jsonl").write_text("".join(
        line + "\n" for line in (DEMO_PATH / "queries.jsonl").read_text().splitlines()
        if json.loads(line)["_id"] in queries))
    (out / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        "\t".join(row) + "\n" for row in qrels if row[0] in queries))
    return out


class Tmux:
    """A session on a tmux server of its own (-L), so no user's tmux is touched."""

    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.name, *args], check=True, capture_output=True,
                              text=True).stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        """One `send-keys`: tmux writes them to the app at once, as a fast typist's burst."""
        self.run("send-keys", "-t", self.name, *(["-l"] if literal else []), *keys)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.name)

    def wait_for(self, predicate, timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if predicate(text):
                return text
            if self.run("display-message", "-p", "-t", self.name, "#{pane_dead}").strip() == "1":
                raise AssertionError(f"embtui exited while waiting for {what}; screen:\n{text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; screen:\n{text}")
            time.sleep(0.25)


@pytest.fixture()
def tmux_app(tmp_path):
    ws = tmp_path / "ws"
    subset = demo_subset(tmp_path / "subset")
    subprocess.run([sys.executable, "-m", "embtui", "--workspace", str(ws), "import", "beir",
                    str(subset), "--project", "subset"], check=True, capture_output=True)
    name = f"embtui-e2e-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
    command = f"{sys.executable} -m embtui --workspace {ws}"
    subprocess.run(["tmux", "-L", name, "new-session", "-d", "-s", name, "-x", "160", "-y", "48",
                    command], check=True, env={**env, "TERM": "xterm-256color"})
    tmux = Tmux(name)
    tmux.run("set-option", "-s", "escape-time", "0")
    tmux.run("set-option", "-t", name, "remain-on-exit", "on")  # an exit leaves its last screen
    try:
        yield tmux, ws
    finally:
        subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True)


def test_evaluate_minilm_from_the_keyboard_then_search(tmux_app):
    tmux, ws = tmux_app
    t0 = time.monotonic()
    tmux.wait_for(lambda s: "embtui" in s, 30, "the first paint")
    tmux.wait_for(lambda s: "subset ▸ test" in s, 60, "the workspace to load")
    # Models & Devices: leave the query box, pane 5, `a`, the name and enter, all in one burst
    # (escape then 5 at once may read as alt+5: that switches panes too)
    tmux.keys("Escape", "5", "a", "all-MiniLM-L6-v2", "Enter")
    tmux.wait_for(lambda s: "[x] all-MiniLM-L6-v2" in s, 60, "the model to be saved and selected")
    tmux.keys("Escape", "4", "e")  # the add box keeps focus: leave it; Jobs: evaluate the selected model
    screen = tmux.wait_for(lambda s: JOB_ROW.search(s), 240, "the evaluation job to finish")
    assert JOB_ROW.search(screen).group(1) == "done", screen
    # Query: pane 1, `/` into the box, the dataset query's text; relevant documents come back marked
    tmux.keys("1", "/", QUERY_36)
    screen = tmux.wait_for(lambda s: any(t in s for t in RELEVANT_TITLES), 60, "ranked results")
    assert "dataset query 36" in screen
    assert "✓" in screen
    assert QUERY_36[:40] in screen and "/" + QUERY_36[:20] not in screen  # the slash not typed
    # Space: leave the box, pane 8: the model's documents in braille with the space statistics
    tmux.keys("Escape", "8")
    screen = tmux.wait_for(lambda s: "anisotropy" in s, 120, "the embedding space")
    assert any(0x2800 < ord(c) <= 0x28FF for c in screen) and "all-MiniLM-L6-v2 · PCA" in screen
    # Drift: pane 9 and ctrl+s at once: one half of the queries against the other
    tmux.keys("9", "C-s")
    screen = tmux.wait_for(lambda s: "no drift beyond the thresholds" in s or "DRIFTED" in s, 120,
                           "the drift result")
    assert "queries@half2" in screen and "centroid shift" in screen
    print(f"e2e took {time.monotonic() - t0:.1f} s")
