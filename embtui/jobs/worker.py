"""The worker process of one job: ``python -m embtui.jobs.worker JOB_ID --workspace DIR``.

It waits for a free slot of its device (an ``flock`` the OS releases if the worker dies), runs the
evaluation with the job's chunk size and remembered batch size, writes progress and a heartbeat to
``jobs/<id>/progress.json`` (atomically replaced), watches ``jobs/<id>/cancel``, and records the
outcome in the ``jobs`` table. Killed at any moment, the job resumes from its last committed chunk.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from embtui.engine.progress import CancelToken, Progress
from embtui.errors import Cancelled, EmbtuiError
from embtui.jobs.files import (JobPaths, append_log, hostname, job_devices, read_json, wait_for_slot,
                               write_json_atomic)
from embtui.store.db import Workspace
from embtui.store.jobs import JobStore

HEARTBEAT_S = 1.0
NOTE_EVERY_S = 30.0  # a stage message that keeps changing is logged at most this often
# Set by SIGTERM (shutdown, `kill`): the job stops after its current batch and ends 'interrupted',
# ready to resume.
TERMINATE = threading.Event()
# Share of the whole job each evaluation stage covers (the progress bar spans all of them).
STAGE_SPANS: dict[str, tuple[float, float]] = {
    "load data": (0.0, 0.02),
    "index bm25": (0.02, 0.85),
    "encode documents": (0.02, 0.82),
    "encode queries": (0.82, 0.9),
    "build index": (0.9, 0.95),
    "search": (0.95, 0.98),
    "score": (0.98, 1.0),
    # fine-tuning jobs (each phase gets its own window of the bar, see Reporter.window)
    "prepare data": (0.0, 0.1),
    "evaluate base on dev": (0.1, 1.0),
    "train": (0.0, 1.0),
}
# Windows of a fine-tuning job's bar: data and negatives, training, the test evaluation.
FINETUNE_WINDOWS = {"prepare": (0.0, 0.05), "train": (0.05, 0.85), "evaluate": (0.85, 1.0)}


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 1024 if sys.platform != "darwin" else kb / 2**20, 1)


def _peak_gpu_mb(device: str | None) -> float | None:
    if not device or not device.startswith("cuda") or "torch" not in sys.modules:
        return None
    try:
        import torch

        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    except Exception:  # noqa: BLE001 - a report, never a reason to fail
        return None


def model_key(spec: Any, fingerprint: str | None) -> str:
    """What an OOM-safe batch size depends on besides the device: weights, precision, length."""
    return "|".join(str(x) for x in (fingerprint or spec.model, spec.precision, spec.max_seq_length,
                                     spec.truncate_dim))


class Reporter:
    """The job's live state: progress events in, progress.json + heartbeat + cancel flag out.

    ``resumed``: a later attempt of the job. Its progress starts where the previous attempt's
    progress file left it (the bar never falls back; the work cached since counts as done), and
    an encode stage's message says what it found cached ("resumed: 1,936 already cached")."""

    def __init__(self, paths: JobPaths, job_id: str, token: CancelToken, resumed: bool = False) -> None:
        self.paths = paths
        self.token = token
        self.lock = threading.Lock()
        self.state: dict[str, Any] = {"job_id": job_id, "pid": os.getpid(), "host": hostname(),
                                      "state": "queued", "stage": "starting", "progress": 0.0,
                                      "done": 0, "total": 0, "items_per_s": 0.0, "eta_s": None,
                                      "message": "", "device": None, "batch_size": None,
                                      "peak_rss_mb": None, "peak_gpu_mb": None}
        self.min_batch_size: int | None = None  # smallest batch size an encode stage reported
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)
        self._last_write = 0.0
        self._last_stage = ""
        self._last_note = ("", "")
        self._last_note_t = 0.0
        self.resumed = resumed
        self.window = (0.0, 1.0)  # the share of the bar the current phase maps onto
        if resumed:
            before = read_json(paths.progress)
            if before.get("job_id") == job_id:
                try:
                    self.state["progress"] = min(1.0, max(0.0, float(before.get("progress") or 0.0)))
                except (TypeError, ValueError):
                    pass

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self.write(force=True)
        self._thread.start()

    def stop(self, **final: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.set(**final)
        if final.get("state") == "done":
            self.set(done=self.state.get("total", 0))
        self.write(force=True)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self.poll_cancel()
            self.write(force=True)

    # -- state --------------------------------------------------------------------------------
    def poll_cancel(self) -> bool:
        if not self.token.cancelled and (TERMINATE.is_set() or self.paths.cancel_requested()):
            self.token.cancel()
        return self.token.cancelled

    def set(self, **fields: Any) -> None:
        with self.lock:
            self.state.update(fields)

    def log(self, line: str) -> None:
        append_log(self.paths.log, line)

    def progress(self, p: Progress) -> None:
        """The engine's progress callback (also where a cancel request becomes the CancelToken)."""
        lo, hi = STAGE_SPANS.get(p.stage, (None, None))
        with self.lock:
            if lo is not None and hi is not None:
                w0, w1 = self.window
                overall = w0 + (w1 - w0) * (lo + (hi - lo) * p.fraction)
                self.state["progress"] = round(max(self.state.get("progress", 0.0), overall), 4)
            eta = None if p.eta_s is None else round(p.eta_s, 1)  # of the current stage
            message = p.message
            if self.resumed and message and p.stage.startswith("encode"):
                message = f"resumed: {message}"
            self.state.update(stage=p.stage, done=p.done, total=p.total, items_per_s=round(p.rate, 2),
                              eta_s=eta, message=message)
            if p.batch_size is not None:
                self.state["batch_size"] = p.batch_size
                self.min_batch_size = min(self.min_batch_size or p.batch_size, p.batch_size)
            if p.device:
                self.state["device"] = p.device
        if p.stage != self._last_stage:
            self._last_stage = p.stage
            self.log(f"stage: {p.stage}" + (f" ({p.total:,} items)" if p.total else ""))
        # a stage's first message is logged; one that keeps changing (each device's throughput
        # during a multi-device or Ray encode) at most every NOTE_EVERY_S seconds
        if message and (p.stage, message) != self._last_note and (
                p.stage != self._last_note[0] or time.monotonic() - self._last_note_t >= NOTE_EVERY_S):
            self._last_note = (p.stage, message)
            self._last_note_t = time.monotonic()
            self.log(f"{p.stage}: {message}")
        self.poll_cancel()
        self.write()

    def write(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last_write < 0.1:
            return
        with self.lock:
            self._last_write = now
            self.state["heartbeat"] = now
            self.state["updated_at"] = now
            self.state["peak_rss_mb"] = _peak_rss_mb()
            gpu = _peak_gpu_mb(self.state.get("device"))
            if gpu is not None:
                self.state["peak_gpu_mb"] = gpu
            snapshot = dict(self.state)
        try:
            write_json_atomic(self.paths.progress, snapshot)
        except OSError:  # pragma: no cover - a full disk must not kill the job itself
            pass


def device_key(device: str) -> str:
    """A device as remembered batch sizes are keyed: GPUs with their model name (``cuda:0/NVIDIA H100``)."""
    if device.startswith("cuda") and "torch" in sys.modules:
        try:
            import torch

            return f"{device}/{torch.cuda.get_device_name(device)}"
        except Exception:  # noqa: BLE001
            return device
    return device


def _job_device(req: Any) -> str:
    from embtui.engine.devices import resolve_device
    from embtui.engine.executors import expand_devices, is_multi_device
    from embtui.engine.retrievers import retriever_for

    if not retriever_for(req.model).uses_model_device:
        return "cpu"
    if getattr(req, "executor", "local") == "ray":  # the cluster's own devices: Ray jobs queue for
        return "ray"                                  # it (jobs_per_device at once), not for one here
    device = req.device or req.model.device
    if is_multi_device(device):
        # an encode over several devices of this server holds a slot of each of them
        return ",".join(expand_devices(device))  # e.g. cuda:0,cuda:1 (cpu,cpu: one device, two workers)
    return resolve_device(device)


def run_job(workspace: str | os.PathLike[str], job_id: str) -> str:
    """Run one job to its end in this process; returns the final state."""
    ws = Workspace(workspace)
    js = JobStore(ws)
    row = js.require(job_id)
    job_id = row.id
    paths = JobPaths.of(ws.jobs_dir, job_id)
    pid = os.getpid()
    token = CancelToken()
    rep = Reporter(paths, job_id, token, resumed=row.attempts > 0)
    if row.state != "queued":
        rep.log(f"worker {pid}: job is {row.state}, nothing to do")
        return row.state
    if not js.set_worker(job_id, pid, hostname()):
        rep.log(f"worker {pid}: job is no longer queued, nothing to do")
        return (js.get(job_id) or row).state
    rep.start()
    rep.log(f"worker {pid} on {hostname()}: starting (attempt {row.attempts + 1})")
    state, error, lock = "failed", None, None
    run_id = row.run_id
    store = None
    try:
        from embtui.store import Store

        store = Store(ws)
        if row.kind.startswith("finetune"):
            from embtui.engine.devices import resolve_device
            from embtui.engine.models import resolve_spec
            from embtui.engine.training.reranker import RerankerRequest
            from embtui.engine.training.run import FinetuneRequest

            cls = RerankerRequest if row.kind == "finetune-reranker" else FinetuneRequest
            req = cls.from_dict(row.request["finetune"])
            device = resolve_device(req.device or resolve_spec(req.base, store, check=False).device)
        else:
            from embtui.engine.evaluate import EvalRequest

            req = EvalRequest.from_dict(row.request)
            device = _job_device(req)
        js.set_device(job_id, pid, device)
        rep.set(device=device)
        from embtui.jobs.api import jobs_per_device

        slots = jobs_per_device(ws)
        rep.set(stage=f"waiting for {device}")
        rep.write(force=True)
        lock = wait_for_slot(ws.jobs_dir / "locks", device, slots, stop=rep.poll_cancel,
                             my_turn=lambda: _first_in_line(js, row, device))
        if lock is None:
            raise Cancelled()
        rep.log(f"got {lock.describe(slots)}")
        if not js.claim(job_id, pid):
            now = js.get(job_id)
            rep.log(f"job was {now.state if now else 'deleted'} before it could start")
            state = now.state if now else "cancelled"
            return state
        rep.set(state="running", stage="starting")
        rep.write(force=True)
        if row.kind.startswith("finetune"):
            result = _finetune(store, req, device, rep, token, resumed=row.attempts > 0)
            run_id = (result.get("run") or {}).get("id")
            state = "done"
            js.finish(job_id, pid, "done")
            return state
        run_id = _prepare_run(js, store, job_id, row.run_id, req, rep)
        if run_id is None:  # the run finished before a previous worker could record it
            state = "done"
            js.finish(job_id, pid, "done")
            return state
        result = _evaluate(ws, js, store, req, run_id, row.chunk_texts, device, rep, token)
        state = "done"
        for warning in result.run.info.get("warnings") or []:  # healed artifacts, low HNSW recall
            rep.log(f"warning: {warning}")
        rep.log(f"done: run {run_id}: {result.run.info.get('summary', '')}")
        js.finish(job_id, pid, "done")
    except Cancelled:
        if TERMINATE.is_set():
            state, error = "interrupted", "interrupted: the worker was asked to stop (SIGTERM)"
        else:
            state, error = "cancelled", "cancelled"
        rep.log(f"{error}; finished chunks stay in the cache")
        if run_id is not None:
            if state == "cancelled":
                js.end_run_if_running(run_id, error, status="cancelled")
            else:  # interrupted: the run is unfinished, not given up (resume finishes it)
                js.end_run_if_running(run_id, error, "failed", from_states=("running", "cancelled"))
        js.finish(job_id, pid, state, error)
    except BaseException as exc:  # noqa: BLE001 - every failure ends up in the job row and log
        state = "failed"
        error = str(exc) if isinstance(exc, EmbtuiError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, EmbtuiError):
            rep.log("failed:\n" + traceback.format_exc())
        rep.log(f"failed: {error}")
        if run_id is not None:
            js.end_run_if_running(run_id, error)
        js.finish(job_id, pid, "failed", error)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
    finally:
        if lock is not None:
            lock.release()
        rep.stop(state=state, error=error, eta_s=None,
                 **({"progress": 1.0, "stage": "done"} if state == "done" else {}))
    return state


def _finetune(store: Any, req: Any, device: str, rep: Reporter, token: CancelToken, *,
              resumed: bool) -> dict[str, Any]:
    """A fine-tuning job: data and negatives, training, the test evaluation (engine/training/run.py);
    the result JSON goes to ``jobs/<id>/result.json`` and the live curves stay in the work folder."""
    from dataclasses import replace as _replace

    from embtui.engine.training.reranker import run_reranker
    from embtui.engine.training.run import run_finetune, work_dir

    if req.device is None:
        req = _replace(req, device=device)
    phase = {"name": "prepare"}

    def progress(p: Progress) -> None:
        name = ("train" if p.stage == "train" else
                "evaluate" if phase["name"] in ("train", "evaluate") and p.stage != "train" else "prepare")
        if name != phase["name"]:
            phase["name"] = name
        rep.window = FINETUNE_WINDOWS[phase["name"]]
        rep.progress(p)

    rep.set(curves=str(work_dir(store, req.name) / "curves.json"), model=req.name)
    run = run_reranker if hasattr(req, "first_stage") else run_finetune
    result = run(store, req, progress=progress, cancel=token, log=rep.log, resuming=resumed)
    write_json_atomic(rep.paths.dir / "result.json", result)
    vs = result.get("vs_base") or {}
    rep.log(f"done: model '{result['model']}' (best step {result.get('best_step')})"
            + (f", test run {result['run']['id']}: {vs.get('metric')} {vs.get('delta', 0):+.4f} vs base "
               f"(p = {vs.get('p_permutation')})" if result.get("run") else ""))
    return result


def _first_in_line(js: JobStore, me: Any, device: str) -> bool:
    """Jobs start in the order they were submitted: no older job with a live worker waits for any
    of this job's devices."""
    from embtui.jobs.api import pid_runs_job

    mine = set(job_devices(device))
    for other in js.list(states=["queued"]):
        if (other.id != me.id and other.device and mine & set(job_devices(other.device)) and other.pid
                and (other.created_at, other.id) < (me.created_at, me.id)
                and pid_runs_job(other.pid, other.id)):
            return False
    return True


def _prepare_run(js: JobStore, store: Any, job_id: str, run_id: int | None, req: Any,
                 rep: Reporter) -> int | None:
    """The run this attempt finishes: the job's earlier run (reopened) or a new one."""
    from embtui.engine.evaluate import open_run

    if run_id is not None:
        status = js.run_status(run_id)
        if status == "done":
            rep.log(f"run {run_id} is already complete")
            return None
        if status is not None and js.reopen_run(run_id):
            rep.log(f"resuming run {run_id}")
            return run_id
    run_id = open_run(store, req, job_id=job_id)
    rep.log(f"created run {run_id}")
    return run_id


def _evaluate(ws: Workspace, js: JobStore, store: Any, req: Any, run_id: int, chunk_texts: int | None,
              device: str, rep: Reporter, token: CancelToken) -> Any:
    from dataclasses import replace

    from embtui.engine.evaluate import run_evaluation
    from embtui.engine.models import fingerprint
    from embtui.engine.retrievers import retriever_for

    key = None
    asked = req.model.batch_size
    if retriever_for(req.model).uses_model_device:
        key = model_key(req.model, fingerprint(req.model, store))
        remembered = js.remembered_batch_size(key, device_key(device))
        if remembered is not None and remembered < asked:
            rep.log(f"starting at batch size {remembered} (remembered after an out-of-memory "
                    f"back-off on {device}; asked for {asked})")
            req = replace(req, model=req.model.with_overrides(batch_size=remembered))
        rep.set(batch_size=req.model.batch_size)
    req = replace(req, chunk_texts=chunk_texts or req.chunk_texts)
    try:
        return run_evaluation(store, req, progress=rep.progress, cancel=token, run_id=run_id)
    finally:
        _remember_batch(js, key, device, rep, req.model.batch_size)


def _remember_batch(js: JobStore, key: str | None, device: str, rep: Reporter, started: int) -> None:
    """Store the batch size an OOM back-off settled on, for this model and device."""
    final = rep.min_batch_size
    if key is None or final is None:
        return
    rep.set(batch_size=final)
    if final < started:
        try:
            js.remember_batch_size(key, device_key(device), final)
            rep.log(f"out of memory at batch size {started}: remembered batch size {final} on {device}")
        except Exception as exc:  # noqa: BLE001 - a hint for next time, never a failure
            rep.log(f"could not remember the batch size: {exc}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m embtui.jobs.worker",
                                     description="Run one embtui background job (started by embtui).")
    parser.add_argument("job_id")
    parser.add_argument("--workspace", required=True)
    args = parser.parse_args(argv)
    # a detached worker outlives its terminal: ignore hang-ups, stop cleanly on SIGTERM
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: TERMINATE.set())
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        state = run_job(Path(args.workspace), args.job_id)
    except EmbtuiError as exc:
        print(f"embtui worker: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0 if state == "done" else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
