"""Profiles of bm25, the tokenlearn static model, all-MiniLM-L6-v2 and all-mpnet-base-v2 on SciFact's own texts (the first
MAX_DOCS abstracts, so the 438 MB mpnet profiles in minutes on 2 cores), with the cost model at 10 M
documents. mpnet comes from benchmarks/fetch_models.py (EMBTUI_TEST_MODELS or the default folder).

Usage: python benchmarks/bench_profiles.py [WORKSPACE] [MAX_DOCS]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SCIFACT, machine  # noqa: E402
from fetch_models import DEFAULT_OUT  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from embtui.api.models import ModelSpec
    from embtui.api.profiles import run_profile
    from embtui.api.projects import import_beir
    from embtui.api.workspace import Store

    ws = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="embtui-prof-"))
    max_docs = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    store = Store.open(ws)
    if "scifact" not in [p.name for p in store.list_projects()]:
        import_beir(store, SCIFACT, "scifact")
    mpnet = DEFAULT_OUT / "all-mpnet-base-v2"
    static = DEFAULT_OUT / "tokenlearn-static-model"
    models = ["bm25"]
    if (static / "model.safetensors").exists():
        store.save_model("tokenlearn-static", ModelSpec(str(static), name="tokenlearn-static").to_dict())
        models.append("tokenlearn-static")
    models.append("all-MiniLM-L6-v2")
    if (mpnet / "modules.json").exists():
        store.save_model("all-mpnet-base-v2", ModelSpec(str(mpnet), name="all-mpnet-base-v2").to_dict())
        models.append("all-mpnet-base-v2")
    else:
        print(f"all-mpnet-base-v2 not found in {DEFAULT_OUT}: run benchmarks/fetch_models.py first")
    print(f"machine: {machine()}; {max_docs} SciFact documents, 200 single queries after 10 warm-up")
    print(f"{'model':<20} {'load_s':>7} {'load_MB':>8} {'p50_ms':>7} {'p99_ms':>7} {'docs/s@16':>9} "
          f"{'docs/s@64':>9} {'B/doc f32':>9} {'10M: encode_h':>13} {'10M: f32 GB':>11} {'10M: exact_ms':>13} "
          f"{'10M: hnsw_ms':>12}")
    for name in models:
        p = run_profile(store, "scifact", name, device="cpu", max_docs=max_docs)
        c = p.cost(10_000_000)
        enc = p.encode.get("documents", {})
        size = p.bytes_per_doc.get("float32", p.bytes_per_doc.get("index"))
        gb = c["memory_gb"].get("float32", c["memory_gb"].get("index"))
        print(f"{name:<20} {p.load_s:>7.2f} {p.load_rss_mb:>8.0f} {p.latency_ms['p50']:>7.2f} "
              f"{p.latency_ms['p99']:>7.2f} {enc.get('16', '-'):>9} {enc.get('64', '-'):>9} {size:>9g} "
              f"{c.get('encode_hours', '-'):>13} {gb:>11} {c.get('exact_ms', '-'):>13} {c.get('hnsw_ms', '-'):>12}")


if __name__ == "__main__":
    main()
