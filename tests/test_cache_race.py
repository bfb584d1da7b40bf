"""Several writer processes on one embedding-cache key: no vector lost, none mixed, none half-written."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from embtui.engine.cache import EmbeddingCache, hash_texts
from embtui.engine.encode import Encoder
from embtui.engine.models import ModelSpec

WRITERS = 4
TIMEOUT = 600.0
DIM = 24

# Each writer appends every text, in its own random order, in small chunks, all starting together.
CACHE_WRITER = r"""
import sys, time
from pathlib import Path
import numpy as np
from embtui.engine.cache import EmbeddingCache, hash_texts

root, key, seed, n, chunk, go = sys.argv[1:]
import os, pathlib
# The filesystem, simulated at its boundary: a fast disk (fsync a no-op) with slow directory
# listings (3 ms, as on NFS), so that writers overlap as much as they can and any number picked
# from a listing without a lock is picked by two of them.
os.fsync = lambda fd: None
_iterdir, _glob = pathlib.Path.iterdir, pathlib.Path.glob
def _slow(listing):
    def wrapper(self, *a, **kw):
        out = list(listing(self, *a, **kw))
        time.sleep(0.003)
        return iter(out)
    return wrapper
pathlib.Path.iterdir, pathlib.Path.glob = _slow(_iterdir), _slow(_glob)
n, chunk = int(n), int(chunk)
texts = [f"text number {i}" for i in range(n)]
order = np.random.default_rng(int(seed)).permutation(n)
cache = EmbeddingCache(Path(root), key)
Path(go + f".ready-{seed}").touch()
while not Path(go).exists():
    time.sleep(0.001)
for s in range(0, n, chunk):
    sel = order[s:s + chunk]
    vecs = np.stack([np.random.default_rng(int(i)).standard_normal(%d).astype(np.float32) for i in sel])
    cache.append(hash_texts([texts[i] for i in sel]), vecs)
print("ok")
""" % DIM

ENCODER_WRITER = r"""
import json, sys, time
from pathlib import Path
from embtui.engine.encode import Encoder
from embtui.engine.models import ModelSpec

model, root, texts_file, go, me = sys.argv[1:]
texts = json.loads(Path(texts_file).read_text())
enc = Encoder(ModelSpec(model=model, batch_size=8), Path(root), device="cpu", chunk_texts=16)
enc.model()  # load before the start signal, so the writers really overlap
Path(go + f".ready-{me}").touch()
while not Path(go).exists():
    time.sleep(0.001)
vecs, stats = enc.encode(texts, "document")
print(json.dumps({"encoded": stats.encoded, "rows": len(vecs)}))
"""


def _race(args_per_writer: list[list[str]], go: Path) -> list[str]:
    """Start the writers, wait until each is ready (imports done), then let them all go at once."""
    procs = [subprocess.Popen([sys.executable, "-c", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for args in args_per_writer]
    deadline = time.monotonic() + TIMEOUT
    while len(list(go.parent.glob(go.name + ".ready-*"))) < len(procs):
        for p in procs:
            if p.poll() not in (None, 0):
                raise AssertionError(p.communicate()[1])
        assert time.monotonic() < deadline, "writers did not get ready"
        time.sleep(0.01)
    go.touch()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        assert p.returncode == 0, err
        outs.append(out)
    return outs


def _every_committed_row(cache: EmbeddingCache) -> list[tuple[bytes, np.ndarray]]:
    rows = []
    for c in cache.chunk_ids():
        hashes, _, record = cache.check_chunk(c, full=True)  # every chunk whole and checksummed
        assert record is not None
        vecs = np.load(cache._paths(c)[0])
        rows += [(h.tobytes(), v) for h, v in zip(hashes, vecs)]
    return rows


def test_writer_processes_racing_on_one_key_lose_and_mix_nothing(tmp_path: Path) -> None:
    n, chunk = 1200, 15
    root = tmp_path / "cache"
    go = tmp_path / "go"
    _race([[CACHE_WRITER, str(root), "k", str(seed), str(n), str(chunk), str(go)] for seed in range(WRITERS)], go)

    texts = [f"text number {i}" for i in range(n)]
    expected = {h: np.random.default_rng(i).standard_normal(DIM).astype(np.float32)
                for i, h in enumerate(hash_texts(texts))}
    cache = EmbeddingCache(root, "k")
    assert len(cache.chunk_ids()) == WRITERS * (n // chunk)  # no chunk overwritten or lost
    rows = _every_committed_row(cache)
    assert len(rows) == WRITERS * n
    for h, v in rows:  # no vector under another text's hash, in any copy
        np.testing.assert_array_equal(v, expected[h])
    hashes = hash_texts(texts)
    assert cache.missing(hashes) == []
    np.testing.assert_array_equal(cache.gather(hashes), np.stack([expected[h] for h in hashes]))
    assert not cache.warnings
    assert not list(root.rglob("*.tmp")) and not list(root.rglob("*.corrupt"))


def test_encoder_processes_racing_on_one_key_equal_a_single_writer(tiny_model: Path, demo_store,
                                                                   tmp_path: Path) -> None:
    texts = demo_store.corpus("demo").encode_texts()[:240]
    texts_file = tmp_path / "texts.json"
    texts_file.write_text(json.dumps(texts))
    root = tmp_path / "raced"
    go = tmp_path / "go"
    outs = _race([[ENCODER_WRITER, str(tiny_model), str(root), str(texts_file), str(go), str(i)]
                  for i in range(3)], go)
    assert all(json.loads(o)["rows"] == len(texts) for o in outs)

    spec = ModelSpec(model=str(tiny_model), batch_size=8)
    single, _ = Encoder(spec, tmp_path / "single", device="cpu", chunk_texts=16).encode(texts, "document")
    raced_enc = Encoder(spec, root, device="cpu")
    cache = raced_enc.cache("document")
    hashes = hash_texts(texts)
    assert cache.missing(hashes) == []  # every text present
    reference = dict(zip(hashes, single))
    rows = _every_committed_row(cache)
    assert {h for h, _ in rows} == set(hashes)
    for h, v in rows:  # every copy of every vector equals the single writer's
        np.testing.assert_allclose(v, reference[h], rtol=1e-5, atol=1e-6)
    raced, stats = raced_enc.encode(texts, "document")
    assert stats.encoded == 0 and not raced_enc.loaded
    np.testing.assert_allclose(raced, single, rtol=1e-5, atol=1e-6)
