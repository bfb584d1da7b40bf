"""On-disk embedding cache: text-hash-keyed vectors in atomically committed, memory-mappable chunks."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

HASH_BYTES = 16
_CHUNK_RE = re.compile(r"chunk-(\d{6})\.hashes\.npy$")


def text_hash(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=HASH_BYTES).digest()


def hash_texts(texts: Iterable[str]) -> list[bytes]:
    return [text_hash(t) for t in texts]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    """Write an .npy file so that readers see either nothing or the whole file (write, fsync, rename)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class EmbeddingCache:
    """Vectors of one (model fingerprint, prompt, length, precision, dim) key, addressed by text hash.

    A chunk is two files: ``chunk-NNNNNN.vectors.npy`` then ``chunk-NNNNNN.hashes.npy``; the hashes
    file is renamed into place last, so a chunk exists exactly when its hashes file does. A writer
    killed at any moment leaves at most an orphan ``.vectors.npy`` or ``.tmp`` that readers ignore.
    """

    def __init__(self, root: Path, key: str, *, dtype: str = "float32", meta: dict | None = None) -> None:
        if dtype not in ("float32", "float16"):
            raise ValueError(f"cache dtype must be float32 or float16, not {dtype}")
        self.dir = Path(root) / key
        self.key = key
        self.dtype = np.dtype(dtype)
        self.meta = meta or {}
        self._index: dict[bytes, tuple[int, int]] | None = None

    # -- reading ----------------------------------------------------------------------------
    def chunk_ids(self) -> list[int]:
        if not self.dir.exists():
            return []
        ids = []
        for p in self.dir.iterdir():
            m = _CHUNK_RE.match(p.name)
            if m and (self.dir / f"chunk-{m.group(1)}.vectors.npy").exists():
                ids.append(int(m.group(1)))
        return sorted(ids)

    def _paths(self, chunk: int) -> tuple[Path, Path]:
        return (self.dir / f"chunk-{chunk:06d}.vectors.npy", self.dir / f"chunk-{chunk:06d}.hashes.npy")

    def index(self) -> dict[bytes, tuple[int, int]]:
        """text hash -> (chunk, row), built from the committed chunks on disk."""
        if self._index is None:
            idx: dict[bytes, tuple[int, int]] = {}
            for c in self.chunk_ids():
                hashes = np.load(self._paths(c)[1])
                for row, h in enumerate(hashes):
                    idx.setdefault(h.tobytes(), (c, row))
            self._index = idx
        return self._index

    def missing(self, hashes: Sequence[bytes]) -> list[int]:
        """Positions of hashes not in the cache (first occurrence of each distinct hash)."""
        idx = self.index()
        seen: set[bytes] = set()
        out = []
        for i, h in enumerate(hashes):
            if h not in idx and h not in seen:
                seen.add(h)
                out.append(i)
        return out

    @property
    def dim(self) -> int | None:
        ids = self.chunk_ids()
        if not ids:
            return None
        return int(np.load(self._paths(ids[0])[0], mmap_mode="r").shape[1])

    def gather(self, hashes: Sequence[bytes], out: np.ndarray | None = None) -> np.ndarray:
        """The vectors for these hashes, in order, as float32 (into ``out`` if given, e.g. a memmap)."""
        idx = self.index()
        locs = [idx.get(h) for h in hashes]
        if any(loc is None for loc in locs):
            raise KeyError(f"{sum(loc is None for loc in locs)} text(s) are not in the cache {self.key}")
        if out is None:
            out = np.empty((len(hashes), self.dim or 0), dtype=np.float32)
        if not hashes:
            return out
        chunk_of = np.fromiter((loc[0] for loc in locs), dtype=np.int64, count=len(locs))  # type: ignore[index]
        row_of = np.fromiter((loc[1] for loc in locs), dtype=np.int64, count=len(locs))  # type: ignore[index]
        for c in np.unique(chunk_of):
            sel = np.nonzero(chunk_of == c)[0]
            vectors = np.load(self._paths(int(c))[0], mmap_mode="r")
            out[sel] = vectors[row_of[sel]]
        return out

    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self.dir.glob("chunk-*.npy")) if self.dir.exists() else 0

    # -- writing ----------------------------------------------------------------------------
    def append(self, hashes: Sequence[bytes], vectors: np.ndarray) -> int:
        """Commit one chunk atomically; returns its number. Safe against kills at any point."""
        if len(hashes) != len(vectors):
            raise ValueError("hashes and vectors differ in length")
        self.dir.mkdir(parents=True, exist_ok=True)
        manifest = self.dir / "manifest.json"
        if not manifest.exists():
            tmp = manifest.with_suffix(".json.tmp")
            tmp.write_text(json.dumps({"key": self.key, "dtype": self.dtype.name, **self.meta},
                                      indent=1, sort_keys=True))
            os.replace(tmp, manifest)
        ids = self.chunk_ids()
        # a number past any orphan too, so a half-written chunk is never mistaken for this one
        orphans = [int(m.group(1)) for p in self.dir.glob("chunk-*.npy*")
                   if (m := re.match(r"chunk-(\d{6})", p.name))]
        chunk = max(ids + orphans, default=0) + 1
        vec_path, hash_path = self._paths(chunk)
        atomic_save_npy(vec_path, np.ascontiguousarray(vectors, dtype=self.dtype))
        hash_arr = np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(len(hashes), HASH_BYTES)
        atomic_save_npy(hash_path, hash_arr)
        if self._index is not None:
            for row, h in enumerate(hashes):
                self._index.setdefault(h, (chunk, row))
        return chunk

    def clean_orphans(self) -> list[Path]:
        """Remove files of chunks that never committed (left by a killed writer)."""
        removed = []
        if not self.dir.exists():
            return removed
        committed = set(self.chunk_ids())
        for p in self.dir.iterdir():
            m = re.match(r"chunk-(\d{6})\.", p.name)
            if p.name.endswith(".tmp") or (m and int(m.group(1)) not in committed):
                p.unlink(missing_ok=True)
                removed.append(p)
        return removed
