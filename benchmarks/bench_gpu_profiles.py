"""GPU profiles: all-MiniLM-L6-v2 and all-mpnet-base-v2 (from benchmarks/fetch_models.py, when
present) on one CUDA device at fp32, fp16 and bf16, measured with `embtui profile`'s engine on the
bundled demo's texts (400 SciFact abstracts): load time, resident and GPU memory, docs/s at batch
sizes 16/64/256, single-query p50/p99. Also runs on CPU (then bf16/fp16 are CPU figures).

Usage: python benchmarks/bench_gpu_profiles.py [DEVICE]   (default cuda:0)
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402
from fetch_models import DEFAULT_OUT  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from embtui.api.models import ModelSpec
    from embtui.api.profiles import run_profile
    from embtui.api.projects import DEMO_PATH, import_beir
    from embtui.api.workspace import Store

    device = sys.argv[1] if len(sys.argv) > 1 else "cuda:0"
    models = {"all-MiniLM-L6-v2": "all-MiniLM-L6-v2"}
    mpnet = DEFAULT_OUT / "all-mpnet-base-v2"
    if (mpnet / "modules.json").exists():
        models["all-mpnet-base-v2"] = str(mpnet)
    print(f"machine: {machine()}; device {device}")
    print(f"{'model':<20} {'prec':<5} {'load_s':>6} {'gpu_MB':>7} {'docs/s@16':>9} {'@64':>8} {'@256':>8} "
          f"{'p50_ms':>7} {'p99_ms':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "ws")
        import_beir(store, DEMO_PATH, "demo")
        for name, source in models.items():
            for prec in ("fp32", "fp16", "bf16"):
                spec_name = f"{name}-{prec}"
                store.save_model(spec_name, ModelSpec(source, name=spec_name, precision=prec).to_dict())
                p = run_profile(store, "demo", spec_name, device=device, batch_sizes=(16, 64, 256),
                                sample_docs=400, n_queries=200)
                e = p.encode["documents"]
                print(f"{name:<20} {prec:<5} {p.load_s:>6.2f} {p.gpu_mb or 0:>7.0f} {e['16']:>9.1f} "
                      f"{e['64']:>8.1f} {e['256']:>8.1f} {p.latency_ms['p50']:>7.2f} {p.latency_ms['p99']:>7.2f}")


if __name__ == "__main__":
    main()
