"""Encode throughput: embtui's cached, chunked Encoder vs plain SentenceTransformer.encode, same texts.

Usage: python benchmarks/bench_encode.py [N_DOCS] [ROUNDS]   (default: all 5,183 documents, 1 round)

Rounds alternate plain and embtui on the same loaded model, so drift in machine load hits both;
the ratio reported is the median of the per-round ratios.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, scifact_corpus_texts  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from embtui.engine.encode import Encoder
    from embtui.engine.models import ModelSpec, bundled_minilm_path

    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "all" else None
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    texts = scifact_corpus_texts(n)
    path = str(bundled_minilm_path())
    model = SentenceTransformer(path, device="cpu")
    model.encode(texts[:64], batch_size=32)  # warm-up: first-call allocations out of the timings

    plain_s, ours_s, diffs = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        plain = model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
        plain_s.append(time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as cache:
            enc = Encoder(ModelSpec(model="all-MiniLM-L6-v2", batch_size=32), Path(cache), device="cpu")
            enc._model = model  # the same loaded model: compare the encode paths, not two loads
            enc.device = "cpu"
            t0 = time.perf_counter()
            ours, _ = enc.encode(texts, "document")
            ours_s.append(time.perf_counter() - t0)
            diffs.append(float(np.abs(plain - ours).max()))
            t0 = time.perf_counter()
            Encoder(ModelSpec(model="all-MiniLM-L6-v2"), Path(cache)).encode(texts, "document")
            t_warm = time.perf_counter() - t0

    ratios = sorted(o / p for o, p in zip(ours_s, plain_s))
    ratio = ratios[len(ratios) // 2]
    print(f"machine: {machine()}\ntexts: {len(texts)} SciFact documents (title + text), batch 32, "
          f"CPU, {rounds} alternating round(s)\n")
    print("| path | wall s (per round) | docs/s (best) | ratio vs plain |")
    print("|---|---|---|---|")
    print(f"| plain SentenceTransformer.encode | {', '.join(f'{t:.1f}' for t in plain_s)} | "
          f"{len(texts) / min(plain_s):.1f} | 1.000 |")
    print(f"| embtui Encoder (cold cache, chunked, checkpointed) | {', '.join(f'{t:.1f}' for t in ours_s)} | "
          f"{len(texts) / min(ours_s):.1f} | {ratio:.3f} (median; rounds {', '.join(f'{r:.3f}' for r in ratios)}) |")
    print(f"| embtui Encoder (warm cache, model never loaded) | {t_warm:.2f} | {len(texts) / t_warm:.0f} | "
          f"{t_warm / min(plain_s):.4f} |")
    print(f"\nmax |plain - embtui| over rounds = {max(diffs):.2e}")


if __name__ == "__main__":
    main()
