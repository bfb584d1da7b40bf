"""Encoding texts through the embedding cache: batching, progress, cancel, OOM back-off, checkpoints."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from embtui.engine.cache import EmbeddingCache, hash_texts, text_hash
from embtui.engine.devices import resolve_device
from embtui.engine.executors import (EXECUTORS, BatchState, ChunkDone, DevicePool, DeviceTally,
                                     RayExecutor, encode_batches, expand_devices, free_device_memory,
                                     is_multi_device, is_oom)

__all__ = ["DEFAULT_CHUNK_TEXTS", "EncodeStats", "Encoder", "corpus_text_hashes", "is_oom", "truncate"]
from embtui.engine.loading import load_model
from embtui.engine.models import ModelSpec, cache_key, fingerprint
from embtui.engine.progress import CancelToken, Meter, ProgressCallback
from embtui.errors import EmbtuiError
from embtui.store.api import Corpus

if TYPE_CHECKING:  # pragma: no cover
    from embtui.store import Store

DEFAULT_CHUNK_TEXTS = 512


def corpus_text_hashes(corpus: Corpus) -> list[bytes]:
    """The cache's hash of each document's encode text, computed once per corpus (a lazy corpus
    is read a window at a time for it) and kept with it: the evaluation's corpus hash and the
    document encode share the one pass."""
    hashes = corpus.memo.get("text_hashes")
    if hashes is None:
        hashes = []
        for _start, window in corpus.windows():
            hashes.extend(map(text_hash, window))
        corpus.memo["text_hashes"] = hashes
    return hashes


def _ram_budget() -> int:
    import psutil

    return psutil.virtual_memory().available // 4


@dataclass(frozen=True)
class EncodeStats:
    role: str
    texts: int          # texts asked for
    unique: int         # distinct texts among them
    encoded: int        # texts actually run through the model now
    cached: int         # distinct texts found in the cache
    seconds: float      # time spent in the model
    batch_size: int     # batch size that worked in the end (after any OOM back-off)
    warnings: tuple[str, ...] = ()  # damaged cache chunks found (and re-encoded), one line each

    @property
    def items_per_s(self) -> float:
        return self.encoded / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"texts": self.texts, "unique": self.unique, "encoded": self.encoded,
                "cached": self.cached, "seconds": round(self.seconds, 4),
                "items_per_s": round(self.items_per_s, 2), "batch_size": self.batch_size,
                **({"warnings": list(self.warnings)} if self.warnings else {})}


class Encoder:
    """Encodes texts for one model spec, reusing and filling the workspace embedding cache.

    The model (and torch) load only when some text is missing from the cache. Missing texts are
    ordered by length (longest first, as sentence-transformers does), cut into fixed batches, and
    committed to the cache every ``chunk_texts`` texts; the order depends only on the texts, so a
    resumed encode runs the very same batches as an uninterrupted one.
    """

    def __init__(self, spec: ModelSpec, cache_root: Path, *, store: "Store | None" = None,
                 device: str | None = None, cache_dtype: str = "float32",
                 chunk_texts: int = DEFAULT_CHUNK_TEXTS, executor: str = "local",
                 ray_address: str | None = None) -> None:
        if spec.is_bm25:
            raise EmbtuiError("bm25 is lexical and has no embeddings", "use a dense model here")
        if executor not in EXECUTORS:
            raise EmbtuiError(f"unknown executor '{executor}'", f"use one of {', '.join(EXECUTORS)}")
        self.spec = spec
        self.store = store
        self.cache_root = Path(cache_root)
        self.requested_device = device or spec.device
        self.device: str | None = None
        self.cache_dtype = cache_dtype
        self.chunk_texts = max(1, chunk_texts)
        self.batch_size = spec.batch_size
        self._fingerprint = fingerprint(spec, store)
        self._model: Any = None
        self.load_warnings: list[str] = []  # a damaged ONNX export made again; a device worker lost
        self.executor_kind = executor
        self.ray_address = ray_address
        self._exec: Any = None
        self.devices = DeviceTally()  # texts and model seconds per device (distributed encodes)

    @property
    def fingerprint(self) -> str | None:
        return self._fingerprint

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def model(self) -> Any:
        if self._model is None:
            self.device = resolve_device(self.requested_device)
            if self.spec.precision.startswith("onnx"):  # its export lives beside the cache folder
                self._model = load_model(self.spec, self.device, onnx_dir=self.cache_root.parent / "onnx",
                                         warnings=self.load_warnings)
            else:
                self._model = load_model(self.spec, self.device)
            if self._fingerprint is None:  # a hub model just downloaded: now its commit is known
                self._fingerprint = fingerprint(self.spec, self.store) or f"hf:{self.spec.model}@unknown"
        return self._model

    def cache(self, role: str) -> EmbeddingCache:
        if self._fingerprint is None:
            self.model()
        assert self._fingerprint is not None
        key = cache_key(self.spec, self._fingerprint, role)
        prompt, prompt_name = self.spec.prompt_for(role)
        meta = {"model": self.spec.model, "fingerprint": self._fingerprint, "role": role,
                "prompt": prompt, "prompt_name": prompt_name, "precision": self.spec.precision,
                "max_seq_length": self.spec.max_seq_length,
                "normalize": self.spec.normalize}
        return EmbeddingCache(self.cache_root, key, dtype=self.cache_dtype, meta=meta)

    def encode(self, texts: "Sequence[str] | Corpus", role: str, *, progress: ProgressCallback | None = None,
               cancel: CancelToken | None = None, out: np.ndarray | None = None,
               spill_path: Path | None = None, max_in_memory_bytes: int | None = None,
               ) -> tuple[np.ndarray, EncodeStats]:
        """Vectors for ``texts`` (float32, in order) and what it took; fills the cache on the way.

        ``texts`` may be a ``Corpus`` (its encode texts): a lazy one is then read from the store a
        window at a time, hashed once per corpus, and never held whole.

        With ``spill_path``, a result larger than ``max_in_memory_bytes`` (default: a quarter of
        the available RAM) is gathered into a memory-mapped .npy file there instead of memory, so
        a corpus larger than RAM can be searched; the caller deletes the file when done.
        """
        if role not in ("query", "document"):
            raise ValueError(f"role must be 'query' or 'document', not {role!r}")
        cancel = cancel or CancelToken()
        corpus = texts if isinstance(texts, Corpus) else None
        hashes = corpus_text_hashes(corpus) if corpus is not None else hash_texts(texts)
        cache = self.cache(role)
        todo = cache.missing(hashes)
        unique = len(set(hashes))
        stage = "encode queries" if role == "query" else "encode documents"
        cached = unique - len(todo)  # progress counts them as done: a resume never goes backwards
        meter = Meter(stage, len(todo), progress, already=cached,
                      message=f"{cached:,} already cached" if cached else "")
        seconds = 0.0
        if todo:
            seconds = self._encode_todo(texts if corpus is None else corpus, hashes, todo, role,
                                        cache, meter, cancel)
        meter.finish()
        if out is None and spill_path is not None and cache.dim:
            budget = max_in_memory_bytes if max_in_memory_bytes is not None else _ram_budget()
            if len(texts) * cache.dim * 4 > budget:
                spill_path.parent.mkdir(parents=True, exist_ok=True)
                out = np.lib.format.open_memmap(spill_path, mode="w+", dtype=np.float32,
                                                shape=(len(texts), cache.dim))
        vectors = truncate(cache.gather(hashes, out=out), self.spec)
        return vectors, EncodeStats(role, len(texts), unique, len(todo), unique - len(todo),
                                    seconds, self.batch_size, tuple(cache.warnings))

    def _encode_todo(self, texts: "Sequence[str] | Corpus", hashes: list[bytes], todo: list[int],
                     role: str, cache: EmbeddingCache, meter: Meter, cancel: CancelToken) -> float:
        """Encode the ``todo`` positions, longest first. A corpus larger than one window is read
        from the store a window at a time (``corpus.window`` documents) and each window's missing
        texts are ordered by length within it, so memory holds one window of texts, never the
        corpus; the order still depends only on the texts, so a resume runs the same batches."""
        if not isinstance(texts, Corpus) or len(texts) <= texts.window:
            src = texts.encode_texts() if isinstance(texts, Corpus) else texts
            order = sorted(todo, key=lambda i: (-len(src[i]), hashes[i]))
            return self._encode_missing([src[i] for i in order], [hashes[i] for i in order],
                                        role, cache, meter, cancel)
        by_window: dict[int, list[int]] = {}
        for i in todo:
            by_window.setdefault(i // texts.window, []).append(i)
        seconds, done = 0.0, 0
        for start, window in texts.windows(starts=[w * texts.window for w in sorted(by_window)]):
            cancel.check()
            order = sorted(by_window[start // texts.window],
                           key=lambda i: (-len(window[i - start]), hashes[i]))
            if any(text_hash(window[i - start]) != hashes[i] for i in order):  # vectors never go
                raise EmbtuiError("the corpus's texts changed while it was being encoded",  # under another text's key
                                  "run it again once the import or replace has finished")
            seconds += self._encode_missing([window[i - start] for i in order], [hashes[i] for i in order],
                                            role, cache, meter, cancel, done_before=done)
            done += len(order)
            del window
        return seconds

    def _encode_missing(self, texts: list[str], hashes: list[bytes], role: str,
                        cache: EmbeddingCache, meter: Meter, cancel: CancelToken,
                        done_before: int = 0) -> float:
        if self.distributed:
            return self._encode_distributed(texts, hashes, role, cache, meter, cancel, done_before)
        model = self.model()
        chunk_texts = self.chunk_texts
        fast = getattr(model, "fast_batch", None)  # a static model: big batches, big chunks
        if fast:
            self.batch_size = max(self.batch_size, fast)
            if chunk_texts == DEFAULT_CHUNK_TEXTS:
                chunk_texts = 8 * fast
        meter.device = self.device
        meter.batch_size = self.batch_size
        state = BatchState(self.batch_size)
        seconds = 0.0
        done = done_before

        def on_batch(n: int) -> None:
            nonlocal done
            done += n
            self.batch_size = meter.batch_size = state.batch_size
            meter.update(done, force=n == 0)  # n == 0: the batch was halved after an OOM

        for start in range(0, len(texts), chunk_texts):
            cancel.check()
            chunk = texts[start:start + chunk_texts]
            vectors, took = encode_batches(model, self.spec, self.device, chunk, role, state,
                                           cancel=cancel, on_batch=on_batch)
            seconds += took
            cache.append(hashes[start:start + len(chunk)], vectors)
        self.batch_size = state.batch_size
        return seconds

    # ---------------------------------------------------------------------------------------------
    # several devices of this server, or a Ray cluster (engine/executors.py)

    @property
    def distributed(self) -> bool:
        return self.executor_kind == "ray" or is_multi_device(self.requested_device)

    def _executor(self) -> Any:
        if self._exec is None:
            onnx_dir = self.cache_root.parent / "onnx" if self.spec.precision.startswith("onnx") else None
            if self.executor_kind == "ray":
                self._exec = RayExecutor(self.spec, self.requested_device or "cpu", self.ray_address,
                                         onnx_dir=onnx_dir)
            else:
                self._exec = DevicePool(expand_devices(self.requested_device or "cpu"), self.spec,
                                        onnx_dir=onnx_dir)
        return self._exec

    def _encode_distributed(self, texts: list[str], hashes: list[bytes], role: str,
                            cache: EmbeddingCache, meter: Meter, cancel: CancelToken,
                            done_before: int = 0) -> float:
        """The missing texts in the same chunks as a local encode, each chunk encoded wherever the
        executor sends it and committed to the cache here, in this process, as it comes back. The
        seconds returned are wall time, so items/s is the throughput of all devices together;
        ``self.devices`` holds each device's own."""
        if self._fingerprint is None:  # a hub model: load it here once, so its commit is known
            self.model()
        executor = self._executor()
        starts = list(range(0, len(texts), self.chunk_texts))
        chunks = [texts[s:s + self.chunk_texts] for s in starts]
        meter.device = ", ".join(executor.names) if executor.names else self.executor_kind
        meter.batch_size = self.batch_size
        done = done_before
        t0 = time.perf_counter()

        def on_done(res: ChunkDone) -> None:
            nonlocal done
            s = starts[res.index]
            cache.append(hashes[s:s + len(chunks[res.index])], res.vectors)
            self.devices.add(res.where, len(chunks[res.index]), res.seconds)
            self.batch_size = meter.batch_size = min(self.batch_size, res.batch_size)
            done += len(chunks[res.index])
            meter.message = self.devices.line()
            meter.update(done)

        executor.run(chunks, role, self.batch_size, on_done, cancel)
        for w in executor.warnings:
            if w not in self.load_warnings:
                self.load_warnings.append(w)
        self.device = meter.device = ", ".join(sorted(self.devices.texts)) or meter.device
        return time.perf_counter() - t0

    def unload(self) -> None:
        """Drop the model (and stop any device workers) and give the device's memory back."""
        self._model = None
        if self._exec is not None:
            self._exec.close()
            self._exec = None
        free_device_memory(self.device)


def truncate(vectors: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """The first ``spec.truncate_dim`` dimensions of full vectors, normalised again when the spec
    normalises: what sentence-transformers' ``truncate_dim`` returns (it cuts, then normalises),
    made from the cached full vectors so no truncation needs its own encoding."""
    dim = spec.truncate_dim
    if dim is None or dim >= vectors.shape[1]:
        return vectors
    cut = np.array(vectors[:, :dim], dtype=np.float32)
    if spec.normalize:
        cut /= np.maximum(np.linalg.norm(cut, axis=1, keepdims=True), 1e-12)
    return cut
