"""Checksums and atomic writes for the workspace's artifact files (cache chunks, indexes, sidecars).

The checksum is CRC-32 (zlib, stdlib) of a file's bytes plus its exact size. It is there to catch
accidental damage (a disk, a copy, a stray write, a truncation), not tampering: on the 2-core VM
of BENCHMARKS.md it runs at ~2.9 GB/s against 0.55 GB/s for blake2b, so verifying the vectors of a
warm SciFact eval (8 MB) costs ~3 ms.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

_BLOCK = 4 << 20


def crc32_bytes(data: bytes | memoryview) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def crc32_file(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(size in bytes, CRC-32) of a file, read in 4 MiB blocks."""
    crc = 0
    size = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(_BLOCK)
            if not block:
                break
            crc = zlib.crc32(block, crc)
            size += len(block)
    return size, crc & 0xFFFFFFFF


def fsync_dir(path: Path) -> None:
    """Make renames in ``path`` durable (not possible on every platform; then a no-op)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def tmp_name(path: Path) -> Path:
    """A temp name beside ``path`` unique to this process and thread (ends in ``.tmp``)."""
    import threading

    return path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident() % 100000}.tmp")


def atomic_write_bytes(path: Path, data: bytes | memoryview, *, sync_dir: bool = True) -> None:
    """Write so readers see either the old file or the whole new one (temp, fsync, rename).

    On any failure (a full disk, an interrupt) the temp file is removed and the error re-raised.
    """
    tmp = tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def write_json_atomic(path: Path, obj: Any, *, sync_dir: bool = True) -> None:
    atomic_write_bytes(path, json.dumps(obj, sort_keys=True).encode(), sync_dir=sync_dir)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when missing or unreadable (a damaged sidecar is no record)."""
    try:
        obj = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Where the checksum record of an artifact file lives: ``<file>.check.json``."""
    p = Path(path)
    return p.with_name(p.name + ".check.json")


def write_file_record(path: str | os.PathLike[str], *, sync_dir: bool = True) -> dict[str, int]:
    """Checksum ``path`` and write its sidecar record atomically; returns the record."""
    size, crc = crc32_file(path)
    record = {"bytes": size, "crc32": crc}
    write_json_atomic(sidecar_path(path), record, sync_dir=sync_dir)
    return record


def verify_file(path: str | os.PathLike[str], record: dict[str, Any]) -> str | None:
    """None when ``path`` matches ``record`` (size, CRC-32), else why not (one short phrase)."""
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if "bytes" in record and size != int(record["bytes"]):
        what = "truncated" if size < int(record["bytes"]) else "longer than written"
        return f"{what}: {size} bytes, {int(record['bytes'])} written"
    try:
        _, crc = crc32_file(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if crc != int(record.get("crc32", -1)):
        return "damaged: its checksum does not match the one recorded when it was written"
    return None
