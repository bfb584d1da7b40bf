"""Encode throughput: embtui's cached, chunked Encoder vs plain SentenceTransformer.encode, same texts.

Usage: python benchmarks/bench_encode.py [N_DOCS]   (default: all 5,183 SciFact documents)
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

    n = int(sys.argv[1]) if len(sys.argv) > 1 else None
    texts = scifact_corpus_texts(n)
    path = str(bundled_minilm_path())
    model = SentenceTransformer(path, device="cpu")
    model.encode(texts[:64], batch_size=32)  # warm-up: first-call allocations out of the timings

    t0 = time.perf_counter()
    plain = model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    t_plain = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as cache:
        enc = Encoder(ModelSpec(model="all-MiniLM-L6-v2", batch_size=32), Path(cache), device="cpu")
        enc._model = model  # same loaded model: compare the encode paths, not two loads
        enc.device = "cpu"
        t0 = time.perf_counter()
        ours, stats = enc.encode(texts, "document")
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        Encoder(ModelSpec(model="all-MiniLM-L6-v2"), Path(cache)).encode(texts, "document")
        t_warm = time.perf_counter() - t0

    diff = float(np.abs(plain - ours).max())
    print(f"machine: {machine()}\ntexts: {len(texts)} SciFact documents (title + text), batch 32, CPU\n")
    print("| path | wall s | docs/s | ratio vs plain |")
    print("|---|---|---|---|")
    print(f"| plain SentenceTransformer.encode | {t_plain:.1f} | {len(texts) / t_plain:.1f} | 1.000 |")
    print(f"| embtui Encoder (cold cache, chunked, checkpointed) | {t_ours:.1f} | {len(texts) / t_ours:.1f} | {t_ours / t_plain:.3f} |")
    print(f"| embtui Encoder (warm cache, no model) | {t_warm:.2f} | {len(texts) / t_warm:.0f} | {t_warm / t_plain:.4f} |")
    print(f"\nmax |plain - embtui| = {diff:.2e}")


if __name__ == "__main__":
    main()
