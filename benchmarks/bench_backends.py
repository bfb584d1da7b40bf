"""Encoding backends for all-MiniLM-L6-v2 on the CPU, measured in one run on the same texts: torch
fp32, torch bf16 and fp16, ONNX Runtime fp32 and ONNX Runtime with dynamic int8 weights
(engine/onnx.py) — documents/s of the corpus encode, the ratio to torch fp32, the largest cosine
distance of a document vector from the fp32 one, and NDCG@10 against fp32.

Data: the bundled demo (400 SciFact abstracts, 100 test queries), or a BEIR folder given as the
first argument (e.g. ../shared/datasets/scifact). Usage: python benchmarks/bench_backends.py [BEIR]

Paired mode, for a noisy shared machine: ``--docs N [--rounds R] [--backends onnx-int8,bf16]
[--workspace WS --project P]`` measures throughput on the first N documents of the BEIR folder with
torch fp32 and each backend loaded side by side in this process, interleaved in slices of 50
documents (the order flipping every slice) so both see the same load; each round gives a ratio of
wall-clock docs/s and of process CPU time, and the median is reported. With ``--workspace``, the
retention is NDCG@10 of the backend against fp32 on the full project there (runs reused when
identical ones exist; the first backend run encodes the whole corpus).
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


def _arg(name: str, default: str | None = None) -> str | None:
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def paired() -> None:
    import json
    import time

    import torch

    from embtui.engine.loading import load_model
    from embtui.engine.models import ModelSpec

    data = Path(sys.argv[1])
    n, rounds, step = int(_arg("--docs") or 1000), int(_arg("--rounds") or 3), 50
    backends = (_arg("--backends") or "onnx-int8").split(",")
    texts = []
    with open(data / "corpus.jsonl") as f:
        for line in f:
            d = json.loads(line)
            texts.append((d.get("title", "") + " " + d["text"]).strip())
            if len(texts) >= n:
                break
    ws, project = _arg("--workspace"), _arg("--project")
    onnx_dir = Path(ws) / "onnx" if ws else Path(tempfile.mkdtemp()) / "onnx"
    models = {p: load_model(ModelSpec("all-MiniLM-L6-v2", precision=p), "cpu", onnx_dir=onnx_dir)
              for p in ["fp32", *backends]}

    def enc(p: str, batch: list[str]) -> tuple[np.ndarray, float, float]:
        w, c = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            v = models[p].encode(batch, batch_size=32, normalize_embeddings=True)
        return np.asarray(v, dtype=np.float32), time.perf_counter() - w, time.process_time() - c

    for p in models:  # warm-up: first-call allocations are not the encode being measured
        enc(p, texts[:8])
    print(f"machine: {machine()}; torch threads {torch.get_num_threads()}; {len(texts)} documents of "
          f"{data.name}, {rounds} rounds interleaved in slices of {step}")
    results: dict[str, list[tuple[float, float]]] = {p: [] for p in backends}
    dist: dict[str, float] = {}
    for p in backends:
        for r in range(rounds):
            wall = {"fp32": 0.0, p: 0.0}
            cpu = {"fp32": 0.0, p: 0.0}
            ref, got = [], []
            load0 = os.getloadavg()[0]
            for i, start in enumerate(range(0, len(texts), step)):
                for q in (("fp32", p) if i % 2 == 0 else (p, "fp32")):
                    v, w, c = enc(q, texts[start:start + step])
                    wall[q] += w
                    cpu[q] += c
                    (ref if q == "fp32" else got).append(v)
            cos = np.sum(np.concatenate(ref) * np.concatenate(got), axis=1)
            dist[p] = float(1 - cos.min())
            results[p].append((wall["fp32"] / wall[p], cpu["fp32"] / cpu[p]))
            print(f"{p} round {r + 1}: fp32 {len(texts) / wall['fp32']:.1f} docs/s, {p} "
                  f"{len(texts) / wall[p]:.1f} docs/s, ratio {wall['fp32'] / wall[p]:.2f} (CPU time "
                  f"{cpu['fp32'] / cpu[p]:.2f}), max cos dist {dist[p]:.2e}, load "
                  f"{load0:.1f}->{os.getloadavg()[0]:.1f}", flush=True)
    ndcg: dict[str, float] = {}
    if ws and project:
        from embtui.api.evaluations import plan_evaluation, run_inline
        from embtui.api.workspace import Store

        store = Store.open(Path(ws))
        for p in ["fp32", *backends]:
            t = time.perf_counter()
            plan = plan_evaluation(store, project, ["all-MiniLM-L6-v2"], split="test",
                                   overrides={"precision": p}, device="cpu")
            [o] = run_inline(plan)
            ndcg[p] = o.run.metrics["ndcg@10"]
            print(f"{p}: NDCG@10 {ndcg[p]:.4f} on {project} (run {o.run.id}, "
                  f"{time.perf_counter() - t:.0f} s here)", flush=True)
    print(f"{'backend':<10} {'median x fp32 (wall)':>20} {'(CPU time)':>10} {'max cos dist':>12} "
          f"{'ndcg@10':>8} {'retention':>9}")
    for p in backends:
        wall_r = float(np.median([w for w, _ in results[p]]))
        cpu_r = float(np.median([c for _, c in results[p]]))
        ret = f"{ndcg[p]:>8.4f} {ndcg[p] / ndcg['fp32']:>9.4f}" if p in ndcg else ""
        print(f"{p:<10} {wall_r:>20.2f} {cpu_r:>10.2f} {dist[p]:>12.2e} {ret}")


if __name__ == "__main__":
    paired() if "--docs" in sys.argv else main()
