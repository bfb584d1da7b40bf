"""Encode overhead for a fast model: embtui's Encoder (hashing, length order, batches, checksummed
cache chunks) against what a user would otherwise call, model2vec's ``StaticModel.encode``, on the
same synthetic texts. Both sides include loading the model from its folder and normalising the
vectors; embtui's side also writes every vector to a fresh embedding cache. Rounds alternate
(plain, embtui, plain, ...) so the shared machine's load falls on both; the ratio is the median of
per-round ratios.

With ``--from-store`` embtui's side reads the texts the way an evaluation does: from a project in
a workspace (DuckDB), lazily, a window of documents at a time (the hash pass, then the missing
texts window by window), while the plain side encodes the list already in memory.

Usage: python benchmarks/bench_encode_overhead.py [--docs 10000,100000] [--rounds 5] [--from-store] [MODEL_DIR]
(default model: tokenlearn-static-model from benchmarks/fetch_models.py)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
DEFAULT_MODEL = Path(os.environ.get("EMBTUI_TEST_MODELS", Path.home() / ".cache" / "embtui" / "models")) \
    / "tokenlearn-static-model"


def synthetic_texts(n: int, seed: int = 0) -> list[str]:
    """Abstract-like texts: 20-200 words from a Zipf vocabulary, each text unique."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(30000)])
    ranks = np.minimum(rng.zipf(1.3, size=n * 200), 30000) - 1
    lengths = rng.integers(20, 200, size=n)
    out, pos = [], 0
    for i, ln in enumerate(lengths):
        out.append(" ".join(vocab[ranks[pos:pos + ln]]) + f" doc{i}")
        pos += ln
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=str(DEFAULT_MODEL))
    ap.add_argument("--docs", default="10000,100000")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--from-store", action="store_true",
                    help="embtui reads the texts from a workspace project, a window at a time")
    args = ap.parse_args()
    from model2vec import StaticModel

    from embtui.engine.encode import Encoder
    from embtui.engine.models import ModelSpec

    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    print(f"{'docs':>8} {'plain_s':>8} {'embtui_s':>9} {'ratio':>6}  rounds")
    for n in [int(x) for x in args.docs.split(",")]:
        texts = synthetic_texts(n)
        store = _project(texts) if args.from_store else None

        def plain() -> float:
            t = time.perf_counter()
            m = StaticModel.from_pretrained(args.model)
            v = m.encode(texts, max_length=m.max_length, use_multiprocessing=False)
            v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
            return time.perf_counter() - t

        def ours() -> float:
            d = Path(tempfile.mkdtemp(prefix="embtui-overhead-"))
            try:
                t = time.perf_counter()
                source = store.corpus("overhead", lazy=True) if store is not None else texts
                Encoder(ModelSpec(model=args.model), d).encode(source, "document")
                return time.perf_counter() - t
            finally:
                shutil.rmtree(d, ignore_errors=True)

        plain(), ours()  # warm the page cache and imports
        p, o = [], []
        for _ in range(args.rounds):
            p.append(plain())
            o.append(ours())
        ratios = [b / a for a, b in zip(p, o)]
        print(f"{n:>8} {np.median(p):>8.2f} {np.median(o):>9.2f} {np.median(ratios):>6.3f}  "
              f"{' '.join(f'{r:.2f}' for r in ratios)}")


def _project(texts: list[str]):
    """A workspace holding ``texts`` as the documents of project 'overhead' (empty titles, ids in
    the texts' order, so the corpus's encode texts are ``texts``)."""
    import pyarrow as pa

    from embtui.store import Store

    store = Store.open(Path(tempfile.mkdtemp(prefix="embtui-overhead-ws-")))
    ids = [f"d{i:09d}" for i in range(len(texts))]
    store.save_project("overhead", documents=pa.table({"doc_id": ids, "title": [""] * len(texts), "text": texts}),
                       queries=pa.table({"query_id": ["q"], "text": ["q"], "metadata": pa.array([None], pa.string())}),
                       qrels=pa.table({"split": ["test"], "query_id": ["q"], "doc_id": [ids[0]],
                                       "grade": pa.array([1], pa.int32())}))
    assert store.corpus("overhead", lazy=True).encode_texts(0, 3) == texts[:3]
    return store


if __name__ == "__main__":
    main()
