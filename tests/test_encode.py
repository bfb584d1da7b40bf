"""Encoding through the cache: hits, misses, keys, atomic chunks, progress, cancel, OOM back-off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embtui.engine.cache import EmbeddingCache, hash_texts
from embtui.engine.encode import Encoder
from embtui.engine.models import ModelSpec, cache_key, fingerprint
from embtui.engine.progress import CancelToken
from embtui.errors import Cancelled, EmbtuiError

TEXTS = [f"document number {i} about {'cells ' * (i % 7)}proteins" for i in range(50)]


def test_second_encode_reads_everything_from_cache(tiny_model: Path, tmp_path: Path) -> None:
    spec = ModelSpec(model=str(tiny_model), batch_size=8)
    first, s1 = Encoder(spec, tmp_path).encode(TEXTS, "document")
    enc2 = Encoder(spec, tmp_path)
    second, s2 = enc2.encode(TEXTS, "document")
    assert s1.encoded == 50 and s1.cached == 0
    assert s2.encoded == 0 and s2.cached == 50
    assert not enc2.loaded, "a fully cached encode must not load the model"
    np.testing.assert_array_equal(first, second)


def test_cached_vectors_equal_plain_sentence_transformers(tiny_model: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    ours, _ = Encoder(ModelSpec(model=str(tiny_model)), tmp_path).encode(TEXTS, "document")
    plain = SentenceTransformer(str(tiny_model), device="cpu").encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(ours, plain, atol=1e-5)


def test_partial_cache_encodes_only_new_and_duplicate_texts_once(tiny_model: Path, tmp_path: Path) -> None:
    spec = ModelSpec(model=str(tiny_model))
    Encoder(spec, tmp_path).encode(TEXTS[:20], "document")
    texts = TEXTS + TEXTS[:5] + ["brand new text", "brand new text"]
    vecs, stats = Encoder(spec, tmp_path).encode(texts, "document")
    assert stats.encoded == 31 and stats.cached == 20 and stats.unique == 51
    np.testing.assert_array_equal(vecs[50], vecs[0])
    np.testing.assert_array_equal(vecs[55], vecs[56])


def test_cache_key_changes_with_whatever_changes_vectors(tiny_model: Path) -> None:
    base = ModelSpec(model=str(tiny_model))
    fp = fingerprint(base)
    keys = {cache_key(base, fp, "document")}
    for change in ({"document_prompt": "passage: "}, {"max_seq_length": 16}, {"precision": "bf16"},
                   {"normalize": False}):
        keys.add(cache_key(base.with_overrides(**change), fp, "document"))
    keys.add(cache_key(base, "sha256:other-weights", "document"))
    assert len(keys) == 6
    # truncation and quantisation are cut from the cached full vectors: no cache of their own
    for cheaper in ({"truncate_dim": 8}, {"quantize": "int8"}, {"quantize": "binary", "rescore": 4}):
        assert cache_key(base.with_overrides(**cheaper), fp, "document") in keys
    # batch size and device do not change vectors, so they share the cache
    assert cache_key(base.with_overrides(batch_size=3, device="cpu"), fp, "document") in keys
    # query prompt only affects the query side
    assert cache_key(base.with_overrides(query_prompt="query: "), fp, "document") in keys
    assert cache_key(base.with_overrides(query_prompt="query: "), fp, "query") != cache_key(base, fp, "query")


def test_fingerprint_follows_weight_content(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    assert fingerprint(ModelSpec(model=str(copy))) == fingerprint(ModelSpec(model=str(tiny_model)))
    weights = next(copy.rglob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert fingerprint(ModelSpec(model=str(copy))) != fingerprint(ModelSpec(model=str(tiny_model)))


def test_prompt_changes_vectors_and_is_applied(tiny_model: Path, tmp_path: Path) -> None:
    plain, _ = Encoder(ModelSpec(model=str(tiny_model)), tmp_path).encode(TEXTS[:3], "query")
    prompted, _ = Encoder(ModelSpec(model=str(tiny_model), query_prompt="query: "), tmp_path).encode(
        TEXTS[:3], "query")
    same_as_prefixed, _ = Encoder(ModelSpec(model=str(tiny_model)), tmp_path).encode(
        ["query: " + t for t in TEXTS[:3]], "query")
    assert not np.allclose(plain, prompted)
    np.testing.assert_allclose(prompted, same_as_prefixed, atol=1e-5)


def test_progress_reports_done_total_rate(tiny_model: Path, tmp_path: Path) -> None:
    events = []
    Encoder(ModelSpec(model=str(tiny_model), batch_size=4), tmp_path).encode(
        TEXTS, "document", progress=events.append)
    assert events[-1].done == events[-1].total == 50
    assert events[-1].rate > 0
    assert [e.done for e in events] == sorted(e.done for e in events)


class TripAfter(CancelToken):
    """A cancel token that is set by its own n-th check (the encoder checks once per batch)."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.left = checks

    def check(self) -> None:
        self.left -= 1
        if self.left < 0:
            self.cancel()
        super().check()


def test_cancel_keeps_finished_chunks(tiny_model: Path, tmp_path: Path) -> None:
    spec = ModelSpec(model=str(tiny_model), batch_size=5)
    enc = Encoder(spec, tmp_path, chunk_texts=10)
    # per chunk of 10 texts: one check before the chunk and one per batch of 5 -> 3 checks
    with pytest.raises(Cancelled):
        enc.encode(TEXTS, "document", cancel=TripAfter(3 * 2 + 2))
    cache = enc.cache("document")
    assert len(cache.index()) == 20
    _, stats = Encoder(spec, tmp_path, chunk_texts=10).encode(TEXTS, "document")
    assert stats.cached == len(cache.index()) and stats.encoded == 50 - stats.cached


def test_resumed_encode_equals_uninterrupted(tiny_model: Path, tmp_path: Path) -> None:
    spec = ModelSpec(model=str(tiny_model), batch_size=4)
    full, _ = Encoder(spec, tmp_path / "a", chunk_texts=8).encode(TEXTS, "document")
    with pytest.raises(Cancelled):
        Encoder(spec, tmp_path / "b", chunk_texts=8).encode(TEXTS, "document", cancel=TripAfter(7))
    resumed, stats = Encoder(spec, tmp_path / "b", chunk_texts=8).encode(TEXTS, "document")
    assert stats.cached > 0
    np.testing.assert_array_equal(full, resumed)


class _FakeOOM(RuntimeError):
    pass


_FakeOOM.__name__ = "OutOfMemoryError"


def test_oom_halves_batch_and_retries(tiny_model: Path, tmp_path: Path) -> None:
    enc = Encoder(ModelSpec(model=str(tiny_model), batch_size=16), tmp_path)
    model = enc.model()
    real = model.encode
    sizes = []

    def flaky(texts, **kw):
        sizes.append(len(texts))
        if len(texts) > 4:
            raise _FakeOOM("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(texts, **kw)

    model.encode = flaky
    vecs, stats = enc.encode(TEXTS, "document")
    assert stats.batch_size == 4 and sizes[:3] == [16, 8, 4]
    assert vecs.shape[0] == 50


def test_oom_at_batch_one_fails_with_clear_message(tiny_model: Path, tmp_path: Path) -> None:
    enc = Encoder(ModelSpec(model=str(tiny_model), batch_size=2), tmp_path)
    model = enc.model()

    def always(texts, **kw):
        raise _FakeOOM("CUDA out of memory")

    model.encode = always
    with pytest.raises(EmbtuiError, match="even with batch size 1"):
        enc.encode(TEXTS, "document")


def test_half_written_chunk_is_ignored(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "k")
    hashes = hash_texts(["a", "b"])
    cache.append(hashes, np.ones((2, 3), dtype=np.float32))
    # a writer killed between the vectors and the hashes file leaves an orphan vectors file
    np.save(cache.dir / "chunk-000002.vectors.npy", np.zeros((1, 3), dtype=np.float32))
    (cache.dir / "chunk-000003.hashes.npy.tmp").write_bytes(b"partial")
    fresh = EmbeddingCache(tmp_path, "k")
    assert fresh.chunk_ids() == [1]
    assert fresh.missing(hash_texts(["a", "c"])) == [1]
    assert fresh.append(hash_texts(["c"]), np.zeros((1, 3), dtype=np.float32)) == 4
    assert len(fresh.clean_orphans()) == 2
    np.testing.assert_array_equal(EmbeddingCache(tmp_path, "k").gather(hash_texts(["c", "a"])),
                                  [[0, 0, 0], [1, 1, 1]])


def test_float16_cache_storage(tiny_model: Path, tmp_path: Path) -> None:
    spec = ModelSpec(model=str(tiny_model))
    v32, _ = Encoder(spec, tmp_path / "32").encode(TEXTS, "document")
    enc = Encoder(spec, tmp_path / "16", cache_dtype="float16")
    v16, _ = enc.encode(TEXTS, "document")
    assert v16.dtype == np.float32
    np.testing.assert_allclose(v16, v32, atol=2e-3)
    assert enc.cache("document").nbytes() < Encoder(spec, tmp_path / "32").cache("document").nbytes()


def test_unknown_prompt_name_is_a_user_error(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(EmbtuiError, match="prompt"):
        Encoder(ModelSpec(model=str(tiny_model), query_prompt_name="nope"), tmp_path).encode(
            ["x"], "query")
