"""Progress events and cancel tokens shared by every long engine step."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from embtui.errors import Cancelled


@dataclass(frozen=True)
class Progress:
    """One progress report from a long step (encode, index, search, score).

    ``done``/``total`` count items (texts, vectors, queries); ``rate`` is items per second over the
    step so far and ``eta_s`` the seconds left at that rate (None until known).
    """

    stage: str
    done: int
    total: int
    rate: float = 0.0
    eta_s: float | None = None
    message: str = ""
    batch_size: int | None = None   # encode stages: the batch size in use (after any OOM back-off)
    device: str | None = None       # encode stages: the device the model runs on

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else min(1.0, self.done / self.total)


ProgressCallback = Callable[[Progress], None]


def no_progress(_: Progress) -> None:
    """A progress callback that ignores every event."""


class CancelToken:
    """Cooperative cancellation: a step calls ``check()`` between batches and stops cleanly."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()


class Meter:
    """Turns (done, total) counts into rate-limited Progress events (about every ``interval`` s).

    ``already``: items of the step done before it started (texts found in the cache, e.g. after a
    resume). Events then count the whole step, ``already + done`` of ``already + total``, so
    progress never falls back when a step resumes; the rate and ETA count only the work done now.
    """

    def __init__(self, stage: str, total: int, callback: ProgressCallback | None, interval: float = 0.25,
                 message: str = "", already: int = 0) -> None:
        self.stage = stage
        self.total = total
        self.already = max(0, already)
        self.callback = callback or no_progress
        self.interval = interval
        self.message = message
        self.start = time.perf_counter()
        self._last = 0.0
        self.done = 0
        self.batch_size: int | None = None
        self.device: str | None = None

    def update(self, done: int, force: bool = False) -> None:
        self.done = done
        now = time.perf_counter()
        if not force and now - self._last < self.interval and done < self.total:
            return
        self._last = now
        elapsed = max(now - self.start, 1e-9)
        rate = done / elapsed if done else 0.0
        eta = (self.total - done) / rate if rate > 0 else None
        self.callback(Progress(self.stage, self.already + done, self.already + self.total, rate, eta,
                               self.message, self.batch_size, self.device))

    def finish(self) -> None:
        self.update(self.total, force=True)
