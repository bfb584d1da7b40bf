"""Cost of the integrity checks: warm SciFact eval before/after, cold encode ratio, checksum speeds.

Usage: python benchmarks/bench_integrity.py [BEFORE_REV] [ROUNDS] [COLD_DOCS] [COLD_ROUNDS]
       (ROUNDS 0 runs only the cold encode comparison: no full SciFact encode first)
       (defaults: the commit before the checksums, 3 rounds, 1,000 documents, 3 cold rounds)
       EMBTUI_BENCH_SEED_CACHE=DIR copies a workspace's cache/ folder in first (skips the cold
       encode of all 5,183 documents when one exists; vectors are checked as any other).

"Before" is the code of BEFORE_REV, extracted with `git archive` into a temporary folder and run
beside the current tree, in the same session, alternating rounds so drift in machine load hits both:
- warm eval: `embtui eval --project scifact --model all-MiniLM-L6-v2` with every vector cached, as a
  process (wall) and as the run's own total_s; both workspaces share one cache folder;
- the cache read alone (missing + gather of the 5,183 SciFact documents), in process;
- cold encode of COLD_DOCS SciFact documents through Encoder with the old and the new
  EmbeddingCache (same loaded model), and the time spent in EmbeddingCache.append;
- CRC-32 vs blake2b on the cached vectors' bytes; a cached model fingerprint.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, SCIFACT, machine, scifact_corpus_texts  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
MODEL = "all-MiniLM-L6-v2"
DEFAULT_BEFORE = "035a0b8~1"


def _old_tree(rev: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    tar = subprocess.run(["git", "-C", str(REPO), "archive", rev, "embtui"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=tar, check=True)
    return into


def _cli(old: Path | None, ws: Path, *args: str) -> float:
    """Run one embtui command (old code if ``old``), return its wall seconds; fail loudly."""
    prefix = f"import sys; sys.path.insert(0, {str(old)!r}); " if old else "import sys; "
    code = prefix + "from embtui.cli import main; sys.exit(main(sys.argv[1:]))"
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, "--workspace", str(ws), *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{'old' if old else 'new'} {' '.join(args)} failed: {out.stderr.strip()[-500:]}")
    return wall


def _last_total_s(ws: Path) -> float:
    import duckdb

    con = duckdb.connect(str(ws / "embtui.duckdb"), read_only=True)
    try:
        (timings,) = con.execute("SELECT timings FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    finally:
        con.close()
    import json

    return float(json.loads(timings)["total_s"])


def _load_old_cache_class(old: Path) -> type:
    spec = importlib.util.spec_from_file_location("old_embtui_cache", old / "embtui" / "engine" / "cache.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.EmbeddingCache


def _med(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    before = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_BEFORE
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    cold_docs = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    cold_rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}; before = {before}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-integrity-"))
    try:
        old = _old_tree(before, tmp / "old")
        new_ws, old_ws = tmp / "ws-new", tmp / "ws-old"
        ev = ["eval", "--project", "scifact", "--model", MODEL, "--split", "test", "--device", "cpu"]
        _cli(None, new_ws, "import", "beir", str(SCIFACT), "--project", "scifact")
        _cli(old, old_ws, "import", "beir", str(SCIFACT), "--project", "scifact")
        seed = os.environ.get("EMBTUI_BENCH_SEED_CACHE")
        if seed:
            shutil.copytree(seed, new_ws / "cache", dirs_exist_ok=True)
        if rounds:  # ROUNDS 0: only the cold encode comparison
            t = _cli(None, new_ws, *ev)
            print(f"cold eval (new code, encodes what is not cached): {t:.1f} s")
            shutil.rmtree(old_ws / "cache", ignore_errors=True)
            (old_ws / "cache").symlink_to(new_ws / "cache", target_is_directory=True)
            _cli(old, old_ws, *ev)  # untimed: the old code hashes the weights once into its own DB
            _cli(None, new_ws, *ev, "--force")
            walls: dict[str, list[float]] = {"old": [], "new": []}
            totals: dict[str, list[float]] = {"old": [], "new": []}
            for _ in range(rounds):
                walls["old"].append(_cli(old, old_ws, *ev, "--force"))
                totals["old"].append(_last_total_s(old_ws))
                walls["new"].append(_cli(None, new_ws, *ev, "--force"))
                totals["new"].append(_last_total_s(new_ws))
            print(f"warm eval, process wall (median of {rounds}): before {_med(walls['old']):.3f} s, "
                  f"after {_med(walls['new']):.3f} s")
            print(f"warm eval, run total_s (median of {rounds}): before {_med(totals['old']):.3f} s, "
                  f"after {_med(totals['new']):.3f} s")

        import numpy as np

        from embtui.engine.cache import EmbeddingCache, hash_texts
        from embtui.engine.encode import Encoder
        from embtui.engine.models import ModelSpec
        from embtui.store import Store

        OldCache = _load_old_cache_class(old)
        store = Store.open(new_ws)
        spec = ModelSpec(model=MODEL)
        enc = Encoder(spec, new_ws / "cache", store=store, device="cpu")
        key_dir = enc.cache("document").dir
        if rounds:
            hashes = hash_texts(scifact_corpus_texts())
            reads: dict[str, list[float]] = {"old": [], "new": []}
            for _ in range(max(5, rounds)):
                for name, cls in (("old", OldCache), ("new", EmbeddingCache)):
                    c = cls(key_dir.parent, key_dir.name)
                    t0 = time.perf_counter()
                    assert c.missing(hashes) == []
                    c.gather(hashes)
                    reads[name].append(time.perf_counter() - t0)
            print(f"cache read of {len(hashes)} documents (missing + gather, median): before "
                  f"{1000 * _med(reads['old']):.1f} ms, after {1000 * _med(reads['new']):.1f} ms")

            data = b"".join(p.read_bytes() for p in sorted(key_dir.glob("chunk-*.vectors.npy")))
            import hashlib
            import zlib

            for name, fn in (("crc32", lambda: zlib.crc32(data)),
                             ("blake2b", lambda: hashlib.blake2b(data, digest_size=16).digest())):
                fn()
                t0 = time.perf_counter()
                for _ in range(5):
                    fn()
                dt = (time.perf_counter() - t0) / 5
                print(f"{name} of the cached vectors ({len(data) / 1e6:.1f} MB): {1000 * dt:.1f} ms "
                      f"({len(data) / dt / 1e9:.2f} GB/s)")

            from embtui.engine.models import fingerprint

            fingerprint(spec, store)
            t0 = time.perf_counter()
            for _ in range(20):
                fingerprint(spec, store)
            print(f"model fingerprint, weights' hash cached (stat + DB lookup): "
                  f"{1000 * (time.perf_counter() - t0) / 20:.1f} ms")

        # cold encode: same model, old vs new cache class, alternating
        import embtui.engine.encode as encode_mod

        texts = scifact_corpus_texts(cold_docs)
        model = enc.model()
        model.encode(texts[:64], batch_size=32)  # warm-up
        cold: dict[str, list[float]] = {"old": [], "new": []}
        appends: dict[str, list[float]] = {"old": [], "new": []}
        for r in range(cold_rounds):
            for name, cls in (("old", OldCache), ("new", EmbeddingCache)):
                spent = [0.0]

                class Timed(cls):  # type: ignore[misc, valid-type]
                    warnings: list[str] = []  # the old class has none; the new sets its own

                    def append(self, *a, **kw):  # noqa: ANN
                        t0 = time.perf_counter()
                        try:
                            return super().append(*a, **kw)
                        finally:
                            spent[0] += time.perf_counter() - t0

                encode_mod.EmbeddingCache = Timed
                e = Encoder(spec, tmp / f"cold-{name}-{r}", store=store, device="cpu")
                e._model, e.device = model, "cpu"
                t0 = time.perf_counter()
                vecs, stats = e.encode(texts, "document")
                cold[name].append(time.perf_counter() - t0)
                appends[name].append(spent[0])
                assert stats.encoded == len(set(texts)) and vecs.shape[0] == len(texts)
        encode_mod.EmbeddingCache = EmbeddingCache
        ratios = [n / o for n, o in zip(cold["new"], cold["old"])]
        print(f"cold encode of {cold_docs} documents (median of {cold_rounds}): before {_med(cold['old']):.2f} s, "
              f"after {_med(cold['new']):.2f} s, ratio after/before {_med(ratios):.3f} "
              f"(per round: {', '.join(f'{x:.3f}' for x in ratios)})")
        print(f"  of which EmbeddingCache.append: before {_med(appends['old']):.3f} s, after "
              f"{_med(appends['new']):.3f} s ({100 * _med(appends['new']) / _med(cold['new']):.2f} % of "
              "the encode)")
        del np
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
