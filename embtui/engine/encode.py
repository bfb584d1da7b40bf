"""Encoding texts through the embedding cache: batching, progress, cancel, OOM back-off, checkpoints."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from embtui.engine.cache import EmbeddingCache, hash_texts
from embtui.engine.devices import resolve_device
from embtui.engine.loading import load_model
from embtui.engine.models import ModelSpec, cache_key, fingerprint
from embtui.engine.progress import CancelToken, Meter, ProgressCallback
from embtui.errors import EmbtuiError

if TYPE_CHECKING:  # pragma: no cover
    from embtui.store import Store

DEFAULT_CHUNK_TEXTS = 512


def _ram_budget() -> int:
    import psutil

    return psutil.virtual_memory().available // 4


def is_oom(exc: BaseException) -> bool:
    """True for a CUDA/MPS out-of-memory error (matched by type name, so torch needn't be imported)."""
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


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
                 chunk_texts: int = DEFAULT_CHUNK_TEXTS) -> None:
        if spec.is_bm25:
            raise EmbtuiError("bm25 is lexical and has no embeddings", "use a dense model here")
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
        self.load_warnings: list[str] = []  # a damaged ONNX export made again

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

    def encode(self, texts: Sequence[str], role: str, *, progress: ProgressCallback | None = None,
               cancel: CancelToken | None = None, out: np.ndarray | None = None,
               spill_path: Path | None = None, max_in_memory_bytes: int | None = None,
               ) -> tuple[np.ndarray, EncodeStats]:
        """Vectors for ``texts`` (float32, in order) and what it took; fills the cache on the way.

        With ``spill_path``, a result larger than ``max_in_memory_bytes`` (default: a quarter of
        the available RAM) is gathered into a memory-mapped .npy file there instead of memory, so
        a corpus larger than RAM can be searched; the caller deletes the file when done.
        """
        if role not in ("query", "document"):
            raise ValueError(f"role must be 'query' or 'document', not {role!r}")
        cancel = cancel or CancelToken()
        hashes = hash_texts(texts)
        cache = self.cache(role)
        todo = cache.missing(hashes)
        unique = len(set(hashes))
        stage = "encode queries" if role == "query" else "encode documents"
        cached = unique - len(todo)  # progress counts them as done: a resume never goes backwards
        meter = Meter(stage, len(todo), progress, already=cached,
                      message=f"{cached:,} already cached" if cached else "")
        seconds = 0.0
        if todo:
            order = sorted(todo, key=lambda i: (-len(texts[i]), hashes[i]))
            seconds = self._encode_missing([texts[i] for i in order], [hashes[i] for i in order],
                                           role, cache, meter, cancel)
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

    def _encode_missing(self, texts: list[str], hashes: list[bytes], role: str,
                        cache: EmbeddingCache, meter: Meter, cancel: CancelToken) -> float:
        model = self.model()
        meter.device = self.device
        meter.batch_size = self.batch_size
        prompt, prompt_name = self.spec.prompt_for(role)
        seconds = 0.0
        done = 0
        for start in range(0, len(texts), self.chunk_texts):
            cancel.check()
            chunk = texts[start:start + self.chunk_texts]
            parts = []
            pos = 0
            while pos < len(chunk):
                cancel.check()
                batch = chunk[pos:pos + self.batch_size]
                t0 = time.perf_counter()
                try:
                    vecs = model.encode(batch, batch_size=len(batch), prompt=prompt,
                                        prompt_name=prompt_name, convert_to_numpy=True,
                                        normalize_embeddings=self.spec.normalize,
                                        show_progress_bar=False)
                except Exception as exc:  # noqa: BLE001 - only OOM is handled; the rest re-raised
                    if not is_oom(exc):
                        if isinstance(exc, ValueError) and "prompt" in str(exc).lower():
                            raise EmbtuiError(f"model '{self.spec.name}': {exc}") from exc
                        raise
                    self._free_device_memory()
                    if self.batch_size == 1:
                        raise EmbtuiError(
                            f"out of memory on {self.device} even with batch size 1 for model "
                            f"'{self.spec.name}'",
                            "use a smaller max_seq_length, lower precision or another device",
                        ) from exc
                    self.batch_size = max(1, self.batch_size // 2)
                    meter.batch_size = self.batch_size
                    meter.update(done, force=True)
                    continue
                seconds += time.perf_counter() - t0
                parts.append(np.asarray(vecs, dtype=np.float32))
                pos += len(batch)
                done += len(batch)
                meter.update(done)
            cache.append(hashes[start:start + len(chunk)], np.concatenate(parts))
        return seconds

    def _free_device_memory(self) -> None:
        if self.device and self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def unload(self) -> None:
        """Drop the model and give the device's memory back."""
        self._model = None
        self._free_device_memory()


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
