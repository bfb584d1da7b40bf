"""The embedding cache's index as sorted numpy arrays: the same answers as the dict it replaced
(first chunk holding a hash wins), at a tenth of the memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embtui.engine.cache import HASH_BYTES, EmbeddingCache, HashIndex, hash_texts


def _random_hashes(rng: np.random.Generator, n: int) -> list[bytes]:
    raw = rng.integers(0, 256, size=(n, HASH_BYTES), dtype=np.uint8)
    raw[: n // 10, -3:] = 0  # trailing NULs: numpy's S dtype would drop them if read back as bytes
    raw[n // 10: n // 5, :2] = 0  # leading ones
    return [r.tobytes() for r in raw]


def test_hash_index_answers_as_a_first_wins_dict() -> None:
    rng = np.random.default_rng(0)
    pool = _random_hashes(rng, 3_000)
    index, reference = HashIndex(), {}
    for chunk in range(1, 8):  # chunks overlap: the first to hold a hash keeps it
        hashes = [pool[i] for i in rng.choice(len(pool), 600, replace=False)]
        index.add_chunk(np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(-1, HASH_BYTES), chunk)
        for row, h in enumerate(hashes):
            reference.setdefault(h, (chunk, row))
        if chunk % 3 == 0:  # lookups between additions merge what was added so far
            assert len(index) == len(reference)
    queries = pool + [h[:-1] + bytes([h[-1] ^ 1]) for h in pool[:50]] + [pool[0][:-1] + b"\x01"]
    chunks, rows = index.locate(queries)
    for h, c, r in zip(queries, chunks.tolist(), rows.tolist()):
        want = reference.get(h)
        assert (want is None and c == r == -1) or (c, r) == want
    assert len(index) == len(reference)
    assert all(h in index for h in list(reference)[:100]) and b"short" not in index
    assert index.get(pool[0]) == reference.get(pool[0])


def test_cache_missing_and_gather_through_the_numpy_index(tmp_path: Path) -> None:
    texts = [f"text {i}" for i in range(300)]
    hashes = hash_texts(texts)
    cache = EmbeddingCache(tmp_path, "key")
    vectors = np.arange(300 * 4, dtype=np.float32).reshape(300, 4)
    cache.append(hashes[:100], vectors[:100])
    cache.append(hashes[50:200], vectors[50:200] + 0.5)  # overlapping: the first chunk's rows win
    asked = hashes[250:] + hashes[:10] + hashes[260:270] + hashes[150:160]
    assert cache.missing(asked) == list(range(50))  # first occurrence of each uncached text, in order
    np.testing.assert_array_equal(cache.gather(hashes[40:60]), vectors[40:60])
    np.testing.assert_array_equal(cache.gather(hashes[150:160]), vectors[150:160] + 0.5)
    fresh = EmbeddingCache(tmp_path, "key")  # rebuilt from the chunks on disk
    assert len(fresh.index()) == 200 and fresh.missing(hashes) == list(range(200, 300))
    np.testing.assert_array_equal(fresh.gather(hashes[:200]), cache.gather(hashes[:200]))
