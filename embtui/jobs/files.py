"""A job's folder: live progress (atomically replaced JSON), cancel flag, log file, device-slot locks."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

PROGRESS = "progress.json"
CANCEL = "cancel"
LOG = "log.txt"
LOCKS = "locks"


def hostname() -> str:
    return socket.gethostname()


@dataclass(frozen=True)
class JobPaths:
    dir: Path

    @classmethod
    def of(cls, jobs_dir: Path, job_id: str) -> "JobPaths":
        return cls(Path(jobs_dir) / job_id)

    @property
    def progress(self) -> Path:
        return self.dir / PROGRESS

    @property
    def cancel(self) -> Path:
        return self.dir / CANCEL

    @property
    def log(self) -> Path:
        return self.dir / LOG

    def cancel_requested(self) -> bool:
        return self.cancel.exists()

    def request_cancel(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cancel.touch()

    def clear_cancel(self) -> None:
        self.cancel.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Readers see the old file or the new one, never a mix (write a private tmp, then os.replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True, default=str))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def append_log(path: Path, line: str) -> None:
    """One timestamped line, appended and flushed (a worker's stdout/stderr go to the same file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{stamp} {line.rstrip()}\n")


def tail(path: Path, lines: int = 200, max_bytes: int = 1 << 20) -> str:
    """The last ``lines`` lines of a text file ("" if it does not exist)."""
    if lines <= 0:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            block = 8192
            data = b""
            while size > 0 and data.count(b"\n") <= lines and len(data) < max_bytes:
                step = min(block, size)
                size -= step
                f.seek(size)
                data = f.read(step) + data
                block *= 2
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    # a progress bar redrawn with \r leaves only its last state
    out = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
    return "\n".join(out[-lines:])


# -- device slots ------------------------------------------------------------------------------
def slot_lock_path(locks_dir: Path, device: str, slot: int) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in device)
    return Path(locks_dir) / f"{safe}.{slot}.lock"


class SlotLock:
    """An exclusive ``flock`` on one slot of one device; the OS drops it when the holder dies."""

    def __init__(self, path: Path, fd: int, slot: int) -> None:
        self.path = path
        self.fd = fd
        self.slot = slot

    def release(self) -> None:
        if self.fd >= 0:
            import fcntl

            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = -1


def try_slot(locks_dir: Path, device: str, slots: int) -> SlotLock | None:
    """Take a free slot of ``device`` without waiting, or None when all ``slots`` are busy."""
    import fcntl

    Path(locks_dir).mkdir(parents=True, exist_ok=True)
    for slot in range(max(1, slots)):
        path = slot_lock_path(locks_dir, device, slot)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return SlotLock(path, fd, slot)
    return None


def job_devices(device: str) -> list[str]:
    """The devices a job's device string names, each once, in a fixed order: ``cuda:0,cuda:1``
    (a multi-device encode) holds a slot of each; ``cpu,cpu`` is one device."""
    return sorted({d.strip() for d in device.split(",") if d.strip()})


class SlotLocks:
    """One slot of each device of a multi-device job, taken together; released together."""

    def __init__(self, locks: list[SlotLock], devices: list[str]) -> None:
        self.locks = locks
        self.devices = devices

    @property
    def slot(self) -> int:  # the first device's slot: what a one-device job reports
        return self.locks[0].slot

    def describe(self, slots: int) -> str:
        return ", ".join(f"{d} slot {lock.slot} of {slots}" for d, lock in zip(self.devices, self.locks))

    def release(self) -> None:
        for lock in self.locks:
            lock.release()


def try_slots(locks_dir: Path, device: str, slots: int) -> SlotLocks | None:
    """A slot of every device ``device`` names, all or none (the ones taken are let go again
    when one is busy, so two jobs over overlapping devices never hold each other up)."""
    devices = job_devices(device)
    taken: list[SlotLock] = []
    for d in devices:
        lock = try_slot(locks_dir, d, slots)
        if lock is None:
            for held in taken:
                held.release()
            return None
        taken.append(lock)
    return SlotLocks(taken, devices)


def wait_for_slot(locks_dir: Path, device: str, slots: int, *, stop: Callable[[], bool],
                  my_turn: Callable[[], bool] = lambda: True,
                  poll_s: float = 0.25) -> SlotLocks | None:
    """Block until a slot of each device is free and ``my_turn()`` (returns the slots) or
    ``stop()`` (returns None)."""
    while True:
        lock = try_slots(locks_dir, device, slots) if my_turn() else None
        if lock is not None:
            return lock
        if stop():
            return None
        time.sleep(poll_s)
