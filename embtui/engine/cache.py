"""On-disk embedding cache: text-hash-keyed vectors in checksummed, atomically committed, memory-mappable chunks."""

from __future__ import annotations

import hashlib
import io
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from embtui.engine.integrity import (atomic_write_bytes, crc32_bytes, crc32_file, fsync_dir, read_json,
                                     verify_file, write_json_atomic)
from embtui.errors import EmbtuiError

HASH_BYTES = 16
_CHUNK_RE = re.compile(r"chunk-(\d{6})\.hashes\.npy$")
_ANY_CHUNK_FILE = re.compile(r"chunk-(\d{6})\.")
LOCK_NAME = ".lock"
LOCK_TIMEOUT_S = 600.0  # a writer holds the key's lock only while it writes one chunk


def text_hash(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=HASH_BYTES).digest()


def hash_texts(texts: Iterable[str]) -> list[bytes]:
    return [text_hash(t) for t in texts]


def _as_keys(hashes: "Sequence[bytes] | np.ndarray") -> np.ndarray:
    """16-byte text hashes as one numpy ``S16`` array (byte order = memcmp order; a key is never
    read back as Python bytes, which would drop trailing NULs)."""
    if isinstance(hashes, np.ndarray):
        return np.ascontiguousarray(hashes).view(f"S{HASH_BYTES}").reshape(-1)
    if not hashes:
        return np.empty(0, dtype=f"S{HASH_BYTES}")
    return np.frombuffer(b"".join(hashes), dtype=f"S{HASH_BYTES}")


class HashIndex:
    """text hash -> (chunk, row) of a cache key, as sorted numpy arrays: 24 bytes per text (a dict
    of bytes to tuples took about 200, 2 GB at 10 M texts). The first chunk to hold a hash wins,
    as before; chunks added later are merged on the next lookup."""

    def __init__(self) -> None:
        self._keys = np.empty(0, dtype=f"S{HASH_BYTES}")
        self._chunk = np.empty(0, dtype=np.int32)
        self._row = np.empty(0, dtype=np.int32)
        self._pending: list[tuple[np.ndarray, int]] = []

    def add_chunk(self, keys: np.ndarray, chunk: int) -> None:
        """Add one chunk's hashes (``S16`` keys, or a uint8 [rows, 16] array), row i at row i."""
        self._pending.append((_as_keys(keys).copy(), int(chunk)))

    def _merge(self) -> None:
        if not self._pending:
            return
        parts = self._pending
        self._pending = []
        keys = np.concatenate([self._keys, *(k for k, _ in parts)])
        chunk = np.concatenate([self._chunk, *(np.full(len(k), c, dtype=np.int32) for k, c in parts)])
        row = np.concatenate([self._row, *(np.arange(len(k), dtype=np.int32) for k, _ in parts)])
        order = np.argsort(keys, kind="stable")  # stable: what was there first stays first
        keys, chunk, row = keys[order], chunk[order], row[order]
        first = np.ones(len(keys), dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        self._keys, self._chunk, self._row = keys[first], chunk[first], row[first]

    def locate(self, hashes: "Sequence[bytes] | np.ndarray") -> tuple[np.ndarray, np.ndarray]:
        """(chunk, row) of each hash, -1 where it is not in the cache."""
        self._merge()
        q = _as_keys(hashes)
        if not len(self._keys) or not len(q):
            return np.full(len(q), -1, dtype=np.int64), np.full(len(q), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._keys, q), len(self._keys) - 1)
        hit = self._keys[pos] == q
        return (np.where(hit, self._chunk[pos], -1).astype(np.int64),
                np.where(hit, self._row[pos], -1).astype(np.int64))

    def get(self, h: bytes) -> tuple[int, int] | None:
        c, r = self.locate([h])
        return None if c[0] < 0 else (int(c[0]), int(r[0]))

    def __contains__(self, h: object) -> bool:
        return isinstance(h, bytes) and len(h) == HASH_BYTES and self.get(h) is not None

    def __len__(self) -> int:
        self._merge()
        return len(self._keys)


def _fsync_dir(path: Path) -> None:  # kept for callers of the old name
    fsync_dir(path)


def _npy_bytes(array: np.ndarray) -> memoryview:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getbuffer()


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    """Write an .npy file so that readers see either nothing or the whole file (write, fsync, rename)."""
    atomic_write_bytes(path, _npy_bytes(array))


class _Damaged(Exception):
    """A committed chunk that fails a check; the message says why."""


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) of an .npy file, read from its header only."""
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = reader(f)
        except (ValueError, OSError, SyntaxError, EOFError) as exc:
            raise _Damaged(f"has no readable .npy header ({exc})") from None
        if fortran:
            raise _Damaged("is stored in Fortran order")
        return tuple(shape), np.dtype(dtype), f.tell()


class EmbeddingCache:
    """Vectors of one (model fingerprint, prompt, length, precision, dim) key, addressed by text hash.

    A chunk is three files, renamed into place in this order: ``chunk-NNNNNN.vectors.npy``, its
    record ``chunk-NNNNNN.check.json`` (rows, dim, dtype, size and CRC-32 of both .npy files), then
    ``chunk-NNNNNN.hashes.npy``, the commit: a chunk exists exactly when its hashes file does, and
    every chunk written since checksums exist has its record. A writer killed at any moment leaves
    at most orphans (``.tmp``, vectors or a record without hashes) that readers ignore.

    Writers hold a per-key file lock (``.lock``, via ``filelock``) while they number and write a
    chunk, so any number of processes can append to one key without losing or mixing vectors.

    Readers check each chunk's structure (header, shape, rows, exact size, the hashes' checksum)
    when the index is built, and the vectors' checksum the first time a chunk is used. A chunk that
    fails is treated as missing: its texts are re-encoded, ``warnings`` gets one line naming the
    file, and the damaged vectors file is renamed ``….corrupt`` (kept for inspection, reported by
    ``embtui doctor``, removed by ``--fix``). A chunk written before checksums existed (no record)
    is checked for structure (shape, rows, exact file size); if whole, its checksum is recorded on
    that first read, so it is guarded from then on (damage that happened before cannot be seen).
    """

    def __init__(self, root: Path, key: str, *, dtype: str = "float32", meta: dict | None = None) -> None:
        if dtype not in ("float32", "float16"):
            raise ValueError(f"cache dtype must be float32 or float16, not {dtype}")
        self.dir = Path(root) / key
        self.key = key
        self.dtype = np.dtype(dtype)
        self.meta = meta or {}
        self.warnings: list[str] = []
        self._index: HashIndex | None = None
        self._records: dict[int, dict[str, Any]] = {}
        self._dims: dict[int, int] = {}
        self._verified: set[int] = set()
        self._bad: set[int] = set()

    # -- paths and locking ------------------------------------------------------------------
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

    def record_path(self, chunk: int) -> Path:
        return self.dir / f"chunk-{chunk:06d}.check.json"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the key's file lock (one writer at a time, across processes)."""
        from filelock import FileLock, Timeout

        try:
            with FileLock(str(self.dir / LOCK_NAME), timeout=LOCK_TIMEOUT_S):
                yield
        except Timeout as exc:
            raise EmbtuiError(f"embedding cache {self.dir} stayed locked for {LOCK_TIMEOUT_S:.0f} s",
                              f"another process is writing it; if none is, remove {self.dir / LOCK_NAME}"
                              ) from exc

    # -- checking ---------------------------------------------------------------------------
    def check_chunk(self, chunk: int, *, full: bool = True) -> tuple[np.ndarray, int, dict | None]:
        """(hashes, dim, record or None) of a committed chunk; raises _Damaged with the reason.

        Always checks the structure and the hashes file's checksum; ``full`` also reads the
        vectors and checks their checksum.
        """
        vec_path, hash_path = self._paths(chunk)
        record = read_json(self.record_path(chunk))
        try:
            hb = hash_path.read_bytes()
        except OSError as exc:
            raise _Damaged(f"hashes cannot be read ({exc.strerror or exc})") from None
        if record is not None:
            want = record.get("hashes") or {}
            if len(hb) != int(want.get("bytes", -1)) or crc32_bytes(hb) != int(want.get("crc32", -1)):
                raise _Damaged(f"its hashes file {hash_path.name} is damaged or truncated")
        try:
            hashes = np.load(io.BytesIO(hb), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise _Damaged(f"its hashes file {hash_path.name} does not load ({exc})") from None
        if hashes.ndim != 2 or hashes.shape[1] != HASH_BYTES or hashes.dtype != np.uint8:
            raise _Damaged(f"its hashes have shape {hashes.shape} and dtype {hashes.dtype}")
        shape, dtype, offset = _npy_header(vec_path)
        if len(shape) != 2 or dtype.name not in ("float32", "float16"):
            raise _Damaged(f"holds {dtype.name} vectors of shape {shape}")
        if shape[0] != len(hashes):
            raise _Damaged(f"holds {shape[0]} vectors for {len(hashes)} hashes")
        size = vec_path.stat().st_size
        expected = offset + shape[0] * shape[1] * dtype.itemsize
        if size != expected:
            what = "truncated" if size < expected else "longer than its header says"
            raise _Damaged(f"is {what}: {size} bytes, {expected} expected")
        if record is not None:
            if (record.get("rows"), record.get("dim"), record.get("dtype")) != (shape[0], shape[1], dtype.name):
                raise _Damaged(f"holds {dtype.name} {shape}, its record says "
                               f"{record.get('dtype')} ({record.get('rows')}, {record.get('dim')})")
            if full:
                why = verify_file(vec_path, record.get("vectors") or {})
                if why:
                    raise _Damaged(f"is {why}")
        return hashes, int(shape[1]), record

    def _discard(self, chunk: int, why: str) -> None:
        """Treat a damaged chunk as missing: warn once, and move its vectors aside (under the lock)."""
        vec_path, hash_path = self._paths(chunk)
        self._bad.add(chunk)
        self.warnings.append(f"embedding cache chunk {vec_path} {why}; its texts are re-encoded")
        try:
            with self._locked():
                if not hash_path.exists():
                    return
                try:
                    self.check_chunk(chunk)
                    return  # another process replaced it meanwhile and it is whole now
                except _Damaged:
                    pass
                hash_path.unlink(missing_ok=True)  # uncommit first
                self.record_path(chunk).unlink(missing_ok=True)
                if vec_path.exists():
                    os.replace(vec_path, vec_path.with_name(vec_path.name + ".corrupt"))
        except (OSError, EmbtuiError):
            pass  # a read-only workspace: it stays excluded in this process

    def _adopt(self, chunk: int) -> None:
        """Record the checksum of a chunk written before checksums existed (its structure is whole)."""
        vec_path, hash_path = self._paths(chunk)
        try:
            with self._locked():
                if self.record_path(chunk).exists() or not hash_path.exists():
                    return
                shape, dtype, _ = _npy_header(vec_path)
                vsize, vcrc = crc32_file(vec_path)
                hsize, hcrc = crc32_file(hash_path)
                record = {"rows": shape[0], "dim": shape[1], "dtype": dtype.name, "legacy": True,
                          "vectors": {"bytes": vsize, "crc32": vcrc}, "hashes": {"bytes": hsize, "crc32": hcrc}}
                write_json_atomic(self.record_path(chunk), record)
                self._records[chunk] = record
        except (OSError, EmbtuiError, _Damaged):
            pass  # read-only: trusted for this process only

    # -- reading ----------------------------------------------------------------------------
    def index(self) -> HashIndex:
        """text hash -> (chunk, row), built from the committed chunks on disk that pass the checks."""
        if self._index is None:
            idx = HashIndex()
            for c in self.chunk_ids():
                if c in self._bad:
                    continue
                try:
                    hashes, dim, record = self.check_chunk(c, full=False)
                except (_Damaged, OSError) as exc:
                    self._discard(c, str(exc))
                    continue
                self._dims[c] = dim
                if record is None:
                    self._adopt(c)
                    self._verified.add(c)
                else:
                    self._records[c] = record
                idx.add_chunk(hashes, c)
            self._index = idx
        return self._index

    def _verify_for(self, hashes: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """(chunk, row) of each hash (-1: not cached), after checking the vectors' checksum of every
        chunk these hashes live in."""
        idx = self.index()
        chunks, rows = idx.locate(hashes)
        todo = {int(c) for c in np.unique(chunks[chunks >= 0])} - self._verified
        damaged = False
        for c in sorted(todo):
            why = verify_file(self._paths(c)[0], self._records.get(c, {}).get("vectors") or {})
            if why:
                self._discard(c, f"is {why}")
                damaged = True
            else:
                self._verified.add(c)
        if damaged:
            self._index = None
            chunks, rows = self.index().locate(hashes)
        return chunks, rows

    def missing(self, hashes: Sequence[bytes]) -> list[int]:
        """Positions of hashes not in the cache (first occurrence of each distinct hash)."""
        chunks, _ = self._verify_for(hashes)
        absent = np.nonzero(chunks < 0)[0]
        if not len(absent):
            return []
        _, first = np.unique(_as_keys(hashes)[absent], return_index=True)
        return absent[np.sort(first)].tolist()

    @property
    def dim(self) -> int | None:
        self.index()
        return next(iter(self._dims.values()), None) if self._dims else None

    def gather(self, hashes: Sequence[bytes], out: np.ndarray | None = None) -> np.ndarray:
        """The vectors for these hashes, in order, as float32 (into ``out`` if given, e.g. a memmap)."""
        chunk_of, row_of = self._verify_for(hashes)
        if (chunk_of < 0).any():
            raise KeyError(f"{int((chunk_of < 0).sum())} text(s) are not in the cache {self.key}")
        if out is None:
            out = np.empty((len(hashes), self.dim or 0), dtype=np.float32)
        if not len(hashes):
            return out
        for c in np.unique(chunk_of):
            sel = np.nonzero(chunk_of == c)[0]
            vectors = np.load(self._paths(int(c))[0], mmap_mode="r")
            out[sel] = vectors[row_of[sel]]
        return out

    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self.dir.glob("chunk-*.npy")) if self.dir.exists() else 0

    # -- writing ----------------------------------------------------------------------------
    def append(self, hashes: Sequence[bytes], vectors: np.ndarray) -> int:
        """Commit one chunk atomically under the key's lock; returns its number.

        Safe against kills at any point and against other writers; a failed write (a full disk)
        removes what it wrote of this chunk and re-raises.
        """
        if len(hashes) != len(vectors):
            raise ValueError("hashes and vectors differ in length")
        arr = np.ascontiguousarray(vectors, dtype=self.dtype)
        if arr.ndim != 2:
            raise ValueError(f"vectors must be 2-D, got shape {arr.shape}")
        hash_arr = np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(len(hashes), HASH_BYTES)
        vec_bytes, hash_bytes = _npy_bytes(arr), _npy_bytes(hash_arr)
        record = {"rows": int(arr.shape[0]), "dim": int(arr.shape[1]), "dtype": self.dtype.name,
                  "vectors": {"bytes": len(vec_bytes), "crc32": crc32_bytes(vec_bytes)},
                  "hashes": {"bytes": len(hash_bytes), "crc32": crc32_bytes(hash_bytes)}}
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            manifest = self.dir / "manifest.json"
            if not manifest.exists():
                write_json_atomic(manifest, {"key": self.key, "dtype": self.dtype.name, **self.meta})
            # a number past every file of the key (orphans and .corrupt too): numbers are never reused
            chunk = max((int(m.group(1)) for p in self.dir.iterdir()
                         if (m := _ANY_CHUNK_FILE.match(p.name))), default=0) + 1
            vec_path, hash_path = self._paths(chunk)
            written: list[Path] = []
            try:
                atomic_write_bytes(vec_path, vec_bytes, sync_dir=False)
                written.append(vec_path)
                write_json_atomic(self.record_path(chunk), record)  # syncs the directory
                written.append(self.record_path(chunk))
                atomic_write_bytes(hash_path, hash_bytes)  # the commit
            except BaseException:
                for p in written:
                    p.unlink(missing_ok=True)
                raise
        self._records[chunk] = record
        self._dims[chunk] = int(arr.shape[1])
        self._verified.add(chunk)
        if self._index is not None:
            self._index.add_chunk(hash_arr, chunk)
        return chunk

    def remove_chunk(self, chunk: int) -> None:
        """Delete one chunk (the commit first), under the key's lock; its texts become missing."""
        with self._locked():
            vec_path, hash_path = self._paths(chunk)
            for p in (hash_path, self.record_path(chunk), vec_path):
                p.unlink(missing_ok=True)
        self._index = None

    def clean_orphans(self) -> list[Path]:
        """Remove files of chunks that never committed (a killed writer's) and moved-aside damaged ones."""
        removed: list[Path] = []
        if not self.dir.exists():
            return removed
        with self._locked():
            committed = set(self.chunk_ids())
            for p in self.dir.iterdir():
                m = _ANY_CHUNK_FILE.match(p.name)
                if p.name.endswith(".tmp") or (m and int(m.group(1)) not in committed):
                    p.unlink(missing_ok=True)
                    removed.append(p)
        return removed
