"""Encoding backends for all-MiniLM-L6-v2 on the CPU, measured in one run on the same texts: torch
fp32, torch bf16 and fp16, ONNX Runtime fp32 and ONNX Runtime with dynamic int8 weights
(engine/onnx.py) — documents/s of the corpus encode, the ratio to torch fp32, the largest cosine
distance of a document vector from the fp32 one, and NDCG@10 against fp32.

Data: the bundled demo (400 SciFact abstracts, 100 test queries), or a BEIR folder given as the
first argument (e.g. ../shared/datasets/scifact). Usage: python benchmarks/bench_backends.py [BEIR]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
PRECISIONS = ("fp32", "bf16", "fp16", "onnx", "onnx-int8")


def main() -> None:
    from embtui.api.evaluations import plan_evaluation, run_inline
    from embtui.api.models import ModelSpec
    from embtui.api.projects import DEMO_PATH, import_beir
    from embtui.api.workspace import Store
    from embtui.engine.encode import Encoder

    data = Path(sys.argv[1]) if len(sys.argv) > 1 else DEMO_PATH
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "ws")
        import_beir(store, data, "p")
        texts = store.corpus("p").encode_texts()
        rows, vecs = [], {}
        for prec in PRECISIONS:
            spec = ModelSpec("all-MiniLM-L6-v2", name=f"minilm-{prec}", precision=prec, device="cpu")
            store.save_model(spec.name, spec.to_dict())
            if prec.startswith("onnx"):  # the one-off export is not the encode being measured
                Encoder(spec, store.ws.cache_dir, store=store, device="cpu").model()
            [o] = run_inline(plan_evaluation(store, "p", [spec.name], split="test", device="cpu"))
            enc = o.run.info["encode"]["documents"]
            rows.append((prec, enc["items_per_s"], o.run.metrics["ndcg@10"]))
            vecs[prec] = Encoder(spec, store.ws.cache_dir, store=store, device="cpu").encode(texts, "document")[0]
    base_rate, base_ndcg = rows[0][1], rows[0][2]
    print(f"machine: {machine()}; {len(texts)} documents of {data.name}")
    print(f"{'backend':<10} {'docs/s':>8} {'x fp32':>7} {'max cos dist':>12} {'ndcg@10':>8} {'retention':>9}")
    for prec, rate, ndcg in rows:
        dist = float(1 - np.min(np.sum(vecs[prec] * vecs["fp32"], axis=1)))
        print(f"{prec:<10} {rate:>8.1f} {rate / base_rate:>7.2f} {dist:>12.2e} {ndcg:>8.4f} {ndcg / base_ndcg:>9.4f}")


if __name__ == "__main__":
    main()
