"""Where cache chunks are encoded: here (one device), one worker process per device of this
server (``--device cuda:0,cuda:1`` / ``gpus``), or tasks on a Ray cluster (``--executor ray``).

Every executor runs the very same batches of a chunk (:func:`encode_batches`), so a chunk's vectors
do not depend on where it ran, and hands the vectors back to the process that owns the embedding
cache, which commits each chunk as it arrives: a kill anywhere (the driver, a device worker, a Ray
worker or node) loses at most the chunks in flight, and the next run encodes only what is missing.
Ray is imported only by :class:`RayExecutor`.
"""

from __future__ import annotations

import os
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from embtui.errors import EmbtuiError

if TYPE_CHECKING:  # pragma: no cover
    from embtui.engine.models import ModelSpec
    from embtui.engine.progress import CancelToken

EXECUTORS = ("local", "ray")
_POLL_S = 0.2  # how often a waiting driver checks cancel and worker liveness


def is_oom(exc: BaseException) -> bool:
    """True for a CUDA/MPS out-of-memory error (matched by type name, so torch needn't be imported)."""
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


def free_device_memory(device: str | None) -> None:
    if device and device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


@dataclass
class BatchState:
    """The batch size in use; halved on out-of-memory and kept for the following chunks."""

    batch_size: int


def encode_batches(model: Any, spec: "ModelSpec", device: str | None, texts: Sequence[str], role: str,
                   state: BatchState, *, cancel: "CancelToken | None" = None,
                   on_batch: Callable[[int], None] | None = None) -> tuple[np.ndarray, float]:
    """Vectors (float32) of one chunk's ``texts``, in ``state.batch_size`` batches, and the seconds
    spent in the model. An out-of-memory error halves the batch size and retries the batch."""
    prompt, prompt_name = spec.prompt_for(role)
    parts: list[np.ndarray] = []
    seconds = 0.0
    pos = 0
    while pos < len(texts):
        if cancel is not None:
            cancel.check()
        batch = list(texts[pos:pos + state.batch_size])
        t0 = time.perf_counter()
        try:
            vecs = model.encode(batch, batch_size=len(batch), prompt=prompt, prompt_name=prompt_name,
                                convert_to_numpy=True, normalize_embeddings=spec.normalize,
                                show_progress_bar=False)
        except Exception as exc:  # noqa: BLE001 - only OOM is handled; the rest re-raised
            if not is_oom(exc):
                if isinstance(exc, ValueError) and "prompt" in str(exc).lower():
                    raise EmbtuiError(f"model '{spec.name}': {exc}") from exc
                raise
            free_device_memory(device)
            if state.batch_size == 1:
                raise EmbtuiError(
                    f"out of memory on {device} even with batch size 1 for model '{spec.name}'",
                    "use a smaller max_seq_length, lower precision or another device") from exc
            state.batch_size = max(1, state.batch_size // 2)
            if on_batch is not None:
                on_batch(0)
            continue
        seconds += time.perf_counter() - t0
        parts.append(np.asarray(vecs, dtype=np.float32))
        pos += len(batch)
        if on_batch is not None:
            on_batch(len(batch))
    if not parts:
        return np.empty((0, 0), dtype=np.float32), seconds
    return np.concatenate(parts), seconds


# --------------------------------------------------------------------------------------------------
# what a driver gets back per chunk


@dataclass(frozen=True)
class ChunkDone:
    index: int             # position of the chunk in the driver's list
    vectors: np.ndarray
    seconds: float         # model time
    where: str             # the device (or Ray node and device) that encoded it
    batch_size: int


@dataclass
class DeviceTally:
    """Texts and model seconds per device, for per-device throughput."""

    texts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, where: str, n: int, seconds: float) -> None:
        self.texts[where] = self.texts.get(where, 0) + n
        self.seconds[where] = self.seconds.get(where, 0.0) + seconds

    def line(self) -> str:
        return " · ".join(f"{w} {self.texts[w] / s:,.0f}/s" if (s := self.seconds[w]) > 0 else w
                          for w in sorted(self.texts))

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {w: {"texts": self.texts[w], "seconds": round(self.seconds[w], 4),
                    "items_per_s": round(self.texts[w] / self.seconds[w], 2) if self.seconds[w] else 0.0}
                for w in sorted(self.texts)}


# --------------------------------------------------------------------------------------------------
# the model inside a worker (a device process or a Ray worker): loaded once, reused by every chunk

_WORKER_MODEL: dict[str, Any] = {}


def _worker_model(spec_dict: dict[str, Any], device: str, onnx_dir: str | None) -> tuple[Any, "ModelSpec"]:
    import json

    from embtui.engine.loading import load_model
    from embtui.engine.models import ModelSpec

    key = json.dumps([spec_dict, device], sort_keys=True)
    if key not in _WORKER_MODEL:
        _WORKER_MODEL.clear()  # one model per worker process
        spec = ModelSpec.from_dict(spec_dict)
        model = load_model(spec, device, onnx_dir=Path(onnx_dir) if onnx_dir else None)
        _WORKER_MODEL[key] = (model, spec)
    return _WORKER_MODEL[key]


def _set_cpu_threads(device: str, threads: int | None) -> None:
    if device == "cpu" and threads:
        import torch

        torch.set_num_threads(max(1, threads))


# --------------------------------------------------------------------------------------------------
# every device of this server: one process per device, fed chunk by chunk by the driver


def _device_worker(device: str, spec_dict: dict[str, Any], onnx_dir: str | None, threads: int | None,
                   tasks: Any, results: Any) -> None:
    """A device process: encode each (index, role, texts, batch_size) task until a None arrives."""
    try:
        _set_cpu_threads(device, threads)
        model, spec = _worker_model(spec_dict, device, onnx_dir)
        results.put(("ready", device))
        while True:
            task = tasks.get()
            if task is None:
                return
            index, role, texts, batch_size = task
            state = BatchState(batch_size)
            vectors, seconds = encode_batches(model, spec, device, texts, role, state)
            results.put(("done", device, index, vectors, seconds, state.batch_size))
    except BaseException as exc:  # noqa: BLE001 - every failure is reported to the driver, one line
        from embtui.errors import EmbtuiError as _E

        msg = exc.message if isinstance(exc, _E) else f"{type(exc).__name__}: {exc}"
        try:
            results.put(("error", device, msg))
        except Exception:  # noqa: BLE001
            pass


class DevicePool:
    """One spawned worker process per device; the driver sends each worker at most ``depth``
    chunks at a time (the least busy first), so fast devices take more chunks. A worker that dies
    has its chunks handed to the others; when none is left the encode fails with one line."""

    def __init__(self, devices: Sequence[str], spec: "ModelSpec", onnx_dir: Path | None = None,
                 depth: int = 2) -> None:
        if len(devices) < 1:
            raise ValueError("a device pool needs at least one device")
        self.devices = list(devices)
        self.spec = spec
        self.onnx_dir = str(onnx_dir) if onnx_dir else None
        self.depth = max(1, depth)
        self._procs: dict[str, Any] = {}
        self._tasks: dict[str, Any] = {}
        self._results: Any = None
        self.warnings: list[str] = []

    def _start(self) -> None:
        if self._procs:
            return
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # CUDA cannot be forked; spawn everywhere for one code path
        self._results = ctx.Queue()
        cpu_workers = sum(d == "cpu" for d in self.devices)
        threads = max(1, (os.cpu_count() or 1) // cpu_workers) if cpu_workers else None
        for i, dev in enumerate(self.devices):
            name = dev if self.devices.count(dev) == 1 else f"{dev}#{i}"
            self._tasks[name] = ctx.Queue()
            p = ctx.Process(target=_device_worker, name=f"embtui-encode-{name}", daemon=True,
                            args=(dev, self.spec.to_dict(), self.onnx_dir, threads, self._tasks[name],
                                  self._results))
            p.start()
            self._procs[name] = p

    @property
    def names(self) -> list[str]:
        return list(self._procs)

    def run(self, chunks: Sequence[Sequence[str]], role: str, batch_size: int,
            on_done: Callable[[ChunkDone], None], cancel: "CancelToken") -> None:
        """Encode ``chunks`` across the devices; ``on_done`` is called in this process per chunk."""
        self._start()
        pending = list(range(len(chunks)))[::-1]  # a stack: the first chunk goes out first
        inflight: dict[str, set[int]] = {n: set() for n in self._procs}
        dead: set[str] = set()
        done = 0
        try:
            while done < len(chunks):
                cancel.check()
                for name in sorted(inflight, key=lambda n: len(inflight[n])):
                    while name not in dead and pending and len(inflight[name]) < self.depth:
                        i = pending.pop()
                        self._tasks[name].put((i, role, list(chunks[i]), batch_size))
                        inflight[name].add(i)
                try:
                    msg = self._results.get(timeout=_POLL_S)
                except queue.Empty:
                    msg = None
                if msg is None:
                    for name, p in self._procs.items():
                        if name not in dead and not p.is_alive():
                            self._lost(name, f"exited with code {p.exitcode}", inflight, pending, dead)
                    continue
                kind = msg[0]
                if kind == "ready":
                    continue
                name = self._name_of(msg[1], inflight, msg[2] if kind == "done" else None)
                if kind == "error":
                    self._lost(name, msg[2], inflight, pending, dead)
                    continue
                _, _, i, vectors, seconds, bs = msg
                inflight[name].discard(i)
                on_done(ChunkDone(i, vectors, seconds, name, bs))
                done += 1
        except BaseException:
            self.close(force=True)
            raise

    def _name_of(self, device: str, inflight: dict[str, set[int]], index: int | None) -> str:
        for name in inflight:
            if (name == device or name.startswith(device + "#")) and (index is None or index in inflight[name]):
                return name
        return device

    def _lost(self, name: str, why: str, inflight: dict[str, set[int]], pending: list[int],
              dead: set[str]) -> None:
        dead.add(name)
        pending.extend(sorted(inflight[name], reverse=True))
        inflight[name].clear()
        self.warnings.append(f"encode worker on {name} stopped ({why}); its chunks went to the other devices")
        if len(dead) == len(self._procs):
            self.close(force=True)
            raise EmbtuiError(f"every encode worker stopped; the last on {name}: {why}",
                              "committed chunks are kept: run it again to encode only what is missing")

    def close(self, force: bool = False) -> None:
        for name, p in self._procs.items():
            if not force and p.is_alive():
                try:
                    self._tasks[name].put(None)
                except Exception:  # noqa: BLE001
                    pass
        for p in self._procs.values():
            if not force:
                p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        self._procs.clear()
        self._tasks.clear()


def expand_devices(device: str) -> list[str]:
    """The devices named by ``cuda:0,cuda:1`` / ``cpu,cpu`` (each checked) or ``gpus`` (every
    CUDA device); a single name gives a one-element list."""
    from embtui.engine.devices import check_device_name, resolve_device

    if device == "gpus":
        import torch

        if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
            raise EmbtuiError("--device gpus asks for every CUDA device, and there is none here",
                              "use --device cpu, or name devices: cuda:0,cuda:1")
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    names = [d.strip() for d in device.split(",") if d.strip()]
    for d in names:
        check_device_name(d)
    return [resolve_device(d) for d in names]


def is_multi_device(device: str | None) -> bool:
    return bool(device) and (device == "gpus" or "," in str(device))


# --------------------------------------------------------------------------------------------------
# a Ray cluster: one task per chunk, vectors back through the object store


def _ray_encode_chunk(spec_dict: dict[str, Any], device: str, onnx_dir: str | None, role: str,
                      texts: list[str], batch_size: int) -> tuple[np.ndarray, float, str, int]:
    """A Ray task: the chunk's vectors, model seconds, where it ran, the batch size that worked."""
    import ray

    ctx = ray.get_runtime_context()
    if device.startswith("cuda"):
        ids = ray.get_gpu_ids()
        where_dev = f"gpu{ids[0]}" if ids else "gpu"
        device = "cuda:0"  # Ray sets CUDA_VISIBLE_DEVICES to the task's GPU
    else:
        where_dev = "cpu"
        cpus = ctx.get_assigned_resources().get("CPU")
        _set_cpu_threads("cpu", int(cpus) if cpus else 1)
    model, spec = _worker_model(spec_dict, device, onnx_dir)
    state = BatchState(batch_size)
    vectors, seconds = encode_batches(model, spec, device, texts, role, state)
    node = ctx.get_node_id()[:8]
    return vectors, seconds, f"ray:{node}/{where_dev}", state.batch_size


def _cluster_messages_to_stderr() -> None:
    """Ray's driver prints the cluster's error messages ("A worker died ...") on stdout, where
    ``embtui eval --json`` writes its JSON; send them to stderr. Ray looks the printer up by name
    on each message, so wrapping the module's function is enough; a Ray without it is left as is."""
    try:
        from ray._private import worker as ray_worker
    except ImportError:  # pragma: no cover - a Ray with another layout
        return
    original = getattr(ray_worker, "print_to_stdstream", None)
    if original is None or getattr(original, "_embtui_stderr", False):
        return

    def to_stderr(data: dict[str, Any], ignore_prefix: bool) -> None:
        original({**data, "is_err": True}, ignore_prefix=ignore_prefix)

    to_stderr._embtui_stderr = True  # type: ignore[attr-defined]
    ray_worker.print_to_stdstream = to_stderr


def _probe(address: str | None, timeout: float = 5.0) -> None:
    """A HOST:PORT that nothing answers on fails now, in one line: Ray's own client waits minutes
    for a head node that is not there, then exits the process."""
    if not address or address in ("auto", "local") or address.startswith("ray://"):
        return
    import socket

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise EmbtuiError(f"Ray address '{address}' is not HOST:PORT", "e.g. --ray-address 10.0.0.5:6379 or auto")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise EmbtuiError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}",
                          "start one with `ray start --head`, or pass --ray-address HOST:PORT") from None


class RayExecutor:
    """Chunks as Ray tasks on an existing cluster (``address``; ``auto`` finds a local
    ``ray start --head``) or, without an address and without RAY_ADDRESS, a cluster started in this
    process. A task whose worker dies is retried by Ray (``max_retries``); at most ``depth`` tasks
    per cluster slot are in flight, so the driver's memory stays bounded."""

    def __init__(self, spec: "ModelSpec", device: str, address: str | None = None,
                 onnx_dir: Path | None = None, max_retries: int = 3, depth: int = 2) -> None:
        try:
            import ray
        except ImportError as exc:
            raise EmbtuiError("--executor ray needs Ray, which is not installed",
                              "pip install 'embtui[ray]' (here and on every node of the cluster)") from exc
        self.ray = ray
        self.spec = spec
        self.gpu = device.startswith("cuda") or device == "gpus"
        self.device = "cuda" if self.gpu else "cpu"
        self.onnx_dir = str(onnx_dir) if onnx_dir else None
        self.max_retries = max_retries
        self.depth = max(1, depth)
        self.warnings: list[str] = []
        self._connected_here = not ray.is_initialized()
        if self._connected_here:
            _probe(address or os.environ.get("RAY_ADDRESS"))
            _cluster_messages_to_stderr()
            try:
                ray.init(address=address, log_to_driver=False, logging_level="ERROR",
                         include_dashboard=False, configure_logging=True)
            except (ConnectionError, RuntimeError, ValueError, SystemExit) as exc:
                raise EmbtuiError(f"cannot reach the Ray cluster at {address or 'RAY_ADDRESS/local'}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                                  "start one with `ray start --head`, or pass --ray-address HOST:PORT"
                                  ) from exc
        res = ray.cluster_resources()
        self.slots = max(1, int(res.get("GPU" if self.gpu else "CPU", 0)))
        if self.gpu and not res.get("GPU"):
            raise EmbtuiError("the Ray cluster has no GPU", "pass --device cpu, or add GPU nodes")
        self._task = ray.remote(_ray_encode_chunk).options(
            num_gpus=1 if self.gpu else 0, num_cpus=1, max_retries=max_retries, retry_exceptions=False)
        self.names: list[str] = [f"ray ({self.slots} {'GPU' if self.gpu else 'CPU'} slots)"]

    def run(self, chunks: Sequence[Sequence[str]], role: str, batch_size: int,
            on_done: Callable[[ChunkDone], None], cancel: "CancelToken") -> None:
        ray = self.ray
        spec_ref = ray.put(self.spec.to_dict())
        todo: Iterable[int] = iter(range(len(chunks)))
        inflight: dict[Any, int] = {}
        limit = self.slots * self.depth
        try:
            while True:
                cancel.check()
                while len(inflight) < limit and (i := next(todo, None)) is not None:
                    ref = self._task.remote(spec_ref, self.device, self.onnx_dir, role, list(chunks[i]),
                                            batch_size)
                    inflight[ref] = i
                if not inflight:
                    return
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=_POLL_S)
                for ref in ready:
                    i = inflight.pop(ref)
                    try:
                        vectors, seconds, where, bs = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        cause = getattr(exc, "cause", None)
                        if isinstance(cause, EmbtuiError):
                            raise cause from None
                        first = (str(cause or exc).strip().splitlines() or [type(exc).__name__])[-1]
                        raise EmbtuiError(f"a Ray task encoding chunk {i + 1} of {len(chunks)} failed "
                                          f"after {self.max_retries} retries: {first}",
                                          "committed chunks are kept: run it again to encode only "
                                          "what is missing") from None
                    on_done(ChunkDone(i, vectors, seconds, where, bs))
        except BaseException:
            for ref in inflight:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001
                    pass
            raise

    def close(self, force: bool = False) -> None:
        """Leave the cluster running (it is the user's); a cluster this process started stops with it."""
        if self._connected_here and self.ray.is_initialized():
            self.ray.shutdown()
            self._connected_here = False
