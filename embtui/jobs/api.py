"""Background jobs: submit, list, follow, cancel and resume detached evaluation workers.

The durable record of a job is a row of the workspace's ``jobs`` table; what changes many times a
second (stage, done/total, speed, batch size, memory, heartbeat) lives in ``jobs/<id>/progress.json``,
replaced atomically by the worker, so watching a job never waits on the database lock. A worker is
``python -m embtui.jobs.worker ID --workspace DIR`` in its own session: it outlives the terminal,
the SSH connection and the process that started it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from embtui.errors import EmbtuiError, NotFound, env_number
from embtui.jobs.files import JobPaths, append_log, hostname, read_json, tail, write_json_atomic
from embtui.store.db import Workspace
from embtui.store.jobs import TERMINAL_STATES, JobRow, JobStore

if TYPE_CHECKING:  # pragma: no cover
    from embtui.engine.evaluate import EvalRequest

# A running worker rewrites its heartbeat about every second; this much silence means it is gone.
HEARTBEAT_TIMEOUT_S = 30.0  # $EMBTUI_JOBS_HEARTBEAT_TIMEOUT overrides it (read when used)


def heartbeat_timeout_s() -> float:
    return env_number("EMBTUI_JOBS_HEARTBEAT_TIMEOUT", HEARTBEAT_TIMEOUT_S, minimum=1)
# A freshly spawned worker may need a while (imports, model load) before its first heartbeat.
STARTUP_GRACE_S = 90.0
LOG_TAIL_LINES = 20

_CHILDREN: list[subprocess.Popen[bytes]] = []   # workers this process spawned, reaped on each look
_READY: set[Path] = set()                        # workspaces already migrated by this process


@dataclass(frozen=True)
class JobInfo:
    """A job as the UI shows it: the durable record merged with the worker's live progress."""

    id: str
    kind: str
    state: str                 # queued, running, done, failed, cancelled, interrupted
    progress: float            # 0..1 over the whole job
    stage: str
    done: int
    total: int
    items_per_s: float
    eta_s: float | None
    device: str | None
    batch_size: int | None
    pid: int | None
    run_id: int | None
    project: str
    model: str
    split: str
    created_at: str
    updated_at: str
    error: str | None
    peak_rss_mb: float | None
    peak_gpu_mb: float | None
    log_tail: str
    message: str = ""          # about the current stage, e.g. "resumed: 1,936 already cached"

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- helpers ---------------------------------------------------------------------------------------
def _workspace(workspace: str | os.PathLike[str] | Workspace, create: bool = False) -> Workspace:
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    if ws.root not in _READY:
        if not create and not ws.exists():
            raise NotFound(f"no embtui workspace at {ws.root}", "pass --workspace DIR")
        ws.init()  # applies pending migrations (the jobs table) once per process
        _READY.add(ws.root)
    return ws


def _paths(ws: Workspace, job_id: str) -> JobPaths:
    return JobPaths.of(ws.jobs_dir, job_id)


def new_job_id() -> str:
    """Sortable and short enough to type: ``YYMMDD-HHMMSS-xxxx``."""
    return f"{datetime.now().strftime('%y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


def _reap() -> None:
    """Collect workers this process started that have exited, so they leave no zombies."""
    _CHILDREN[:] = [p for p in _CHILDREN if p.poll() is None]


def pid_runs_job(pid: int, job_id: str) -> bool:
    """True if process ``pid`` on this host is alive and is the worker of ``job_id``."""
    if pid == os.getpid():
        return True  # a worker run in-process (tests, or a caller running it in a thread)
    _reap()
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = proc.cmdline()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # pragma: no cover - another user's process with our pid
        return True
    return not cmdline or any(job_id in arg for arg in cmdline)


def _dead_reason(row: JobRow, prog: dict[str, Any]) -> str | None:
    """Why the worker of a queued/running job is gone, or None while it looks alive."""
    if row.pid is None:
        return None  # not started (start=False) or being spawned right now
    if (row.host or hostname()) == hostname() and not pid_runs_job(row.pid, row.id):
        return f"interrupted: worker process {row.pid} is gone"
    now = time.time()
    if prog.get("pid") == row.pid and prog.get("heartbeat"):
        silent = now - float(prog["heartbeat"])
        if silent > heartbeat_timeout_s():
            return f"interrupted: no heartbeat from worker {row.pid} for {silent:.0f} s"
    elif row.updated_at is not None:
        silent = now - row.updated_at.timestamp()
        if silent > max(heartbeat_timeout_s(), STARTUP_GRACE_S):
            return f"interrupted: worker {row.pid} never reported after {silent:.0f} s"
    return None


def _check_alive(js: JobStore, row: JobRow, prog: dict[str, Any]) -> JobRow:
    """Persist 'interrupted' for a queued/running job whose worker died; returns the current row."""
    if row.state not in ("queued", "running"):
        return row
    reason = _dead_reason(row, prog)
    if reason is None:
        return row
    if js.mark_interrupted(row.id, row.state, row.pid, reason):
        append_log(_paths(js.ws, row.id).log, reason)
        return replace(row, state="interrupted", error=reason)
    return js.get(row.id) or row


def _info(ws: Workspace, row: JobRow, prog: dict[str, Any], log_lines: int = LOG_TAIL_LINES) -> JobInfo:
    req = row.request
    model = req.get("model") or {}
    state = row.state
    own = prog.get("pid") == row.pid or state in TERMINAL_STATES
    # a resumed job's new worker has not written yet: keep the share already done, nothing else
    prog = prog if own else {"progress": prog.get("progress", 0.0)}
    done, total = int(prog.get("done", 0)), int(prog.get("total", 0))
    if state == "done":
        progress = 1.0
    else:
        progress = float(prog.get("progress", 0.0))
    stage = prog.get("stage") or state
    if state == "queued" and not prog.get("stage"):
        stage = "queued"
    live = state == "running"
    updated = row.updated_at
    if prog.get("heartbeat"):
        hb = datetime.fromtimestamp(float(prog["heartbeat"]))
        updated = max(updated, hb) if updated else hb
    return JobInfo(
        id=row.id, kind=row.kind, state=state, progress=round(min(max(progress, 0.0), 1.0), 4),
        stage=stage, done=done, total=total,
        items_per_s=float(prog.get("items_per_s") or 0.0),
        eta_s=prog.get("eta_s") if live else None,
        device=prog.get("device") or row.device, batch_size=prog.get("batch_size"),
        pid=row.pid, run_id=row.run_id, project=str(req.get("project", "")),
        model=str(model.get("name") or model.get("model") or ""), split=str(req.get("split", "")),
        created_at=_iso(row.created_at), updated_at=_iso(updated), error=row.error,
        peak_rss_mb=prog.get("peak_rss_mb"), peak_gpu_mb=prog.get("peak_gpu_mb"),
        log_tail=tail(_paths(ws, row.id).log, log_lines) if log_lines else "",
        message=str(prog.get("message") or ""),
    )


def _spawn(ws: Workspace, job_id: str) -> int:
    """Start the worker in a new session, detached from our terminal, stdin and stdout."""
    paths = _paths(ws, job_id)
    paths.dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    pkg_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(paths.log, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "embtui.jobs.worker", job_id, "--workspace", str(ws.root)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, close_fds=True,
            start_new_session=True, cwd=str(ws.root), env=env)
    _CHILDREN.append(proc)
    return proc.pid


def _start(ws: Workspace, job_id: str) -> int:
    pid = _spawn(ws, job_id)
    JobStore(ws).set_worker(job_id, pid, hostname())
    append_log(_paths(ws, job_id).log, f"worker started (pid {pid})")
    return pid


# -- the API the CLI and the TUI call ----------------------------------------------------------------
def submit_eval(workspace: str | os.PathLike[str] | Workspace, request: "EvalRequest", *,
                start: bool = True, chunk_texts: int | None = None) -> str:
    """Queue an evaluation as a background job and (by default) start its worker; returns its id now.

    ``chunk_texts``: texts per committed cache chunk (a kill loses at most one chunk of work);
    default ``$EMBTUI_CHUNK_TEXTS`` or the encoder's default.
    """
    from embtui.engine.encode import DEFAULT_CHUNK_TEXTS
    from embtui.store import Store

    ws = _workspace(workspace, create=True)
    store = Store(ws)
    store.get_project(request.project)      # fail now, with a hint, not in the background
    store.qrels(request.project, request.split)
    from embtui.engine.models import resolve_source

    resolve_source(request.model)           # a model folder that does not exist fails here too
    if chunk_texts is None:
        chunk_texts = int(env_number("EMBTUI_CHUNK_TEXTS", DEFAULT_CHUNK_TEXTS, integer=True, minimum=1))
    if chunk_texts < 1:
        raise EmbtuiError(f"chunk size must be at least 1 text, got {chunk_texts}")
    request = _absolute_model_path(request)
    job_id = new_job_id()
    js = JobStore(ws)
    js.create(job_id, "eval", request.to_dict(), chunk_texts=chunk_texts,
              device=request.device or request.model.device)
    paths = _paths(ws, job_id)
    write_json_atomic(paths.progress, {"job_id": job_id, "stage": "queued", "state": "queued",
                                       "progress": 0.0, "done": 0, "total": 0})
    append_log(paths.log, f"submitted: eval of '{request.model.name}' on {request.project}/"
                          f"{request.split} (chunks of {chunk_texts} texts)")
    if start:
        _start(ws, job_id)
    return job_id


def submit_finetune(workspace: str | os.PathLike[str] | Workspace, request: Any, *,
                    start: bool = True) -> str:
    """Queue a fine-tuning (engine/training/run.py ``FinetuneRequest``, or a reranker's
    ``RerankerRequest``, engine/training/reranker.py) as a background job.

    Everything that can be refused without a model is checked now: the project, the splits, the
    new model's name, the base model's name, and the leakage check (test or dev queries among the
    training queries)."""
    from embtui.engine.models import resolve_spec
    from embtui.engine.training.data import build_training_data
    from embtui.engine.training.run import check_new_model
    from embtui.store import Store

    ws = _workspace(workspace, create=True)
    store = Store(ws)
    store.get_project(request.project)
    check_new_model(store, request.name)
    base = resolve_spec(request.base, store)
    if base.is_bm25 or base.is_pipeline:
        raise EmbtuiError(f"'{request.base}' is not a dense model to fine-tune",
                          "pick a sentence-transformers model")
    build_training_data(store, request.project, train_split=request.train_split,
                        dev_split=request.dev_split, dev_fraction=request.dev_fraction,
                        seed=request.config.seed, test_split=request.test_split,
                        drop_leaked=request.drop_leaked)
    kind = "finetune-reranker" if hasattr(request, "first_stage") else "finetune"
    if kind == "finetune-reranker":
        resolve_spec(request.first_stage, store)
    if any(j.kind.startswith("finetune") and j.model == request.name and not j.finished
           for j in list_jobs(ws)):
        raise EmbtuiError(f"a fine-tuning job for '{request.name}' is already queued or running",
                          "follow it with `embtui jobs`, or choose another --name")
    job_id = new_job_id()
    stored = {"finetune": request.to_dict(), "project": request.project,
              "model": {"name": request.name, "base": request.base}, "split": request.train_split}
    JobStore(ws).create(job_id, kind, stored, chunk_texts=None, device=request.device or base.device)
    paths = _paths(ws, job_id)
    write_json_atomic(paths.progress, {"job_id": job_id, "stage": "queued", "state": "queued",
                                       "progress": 0.0, "done": 0, "total": 0})
    append_log(paths.log, f"submitted: fine-tune '{request.base}' into '{request.name}' on "
                          f"{request.project}/{request.train_split} ({request.config.loss})")
    if start:
        _start(ws, job_id)
    return job_id


def job_result(workspace: str | os.PathLike[str] | Workspace, job_id: str) -> dict[str, Any] | None:
    """What a finished job left in ``jobs/<id>/result.json`` (fine-tuning), else None."""
    ws = _workspace(workspace)
    row = JobStore(ws).require(job_id)
    data = read_json(_paths(ws, row.id).dir / "result.json")
    return data or None


def job_curves(workspace: str | os.PathLike[str] | Workspace, job_id: str) -> dict[str, Any]:
    """A fine-tuning job's live curves (loss and dev metric by step, warnings), {} before any."""
    ws = _workspace(workspace)
    row = JobStore(ws).require(job_id)
    if not row.kind.startswith("finetune"):
        return {}
    name = (row.request.get("model") or {}).get("name", "")
    return read_json(ws.root / "models" / f".{name}.training" / "curves.json") or {}


def _absolute_model_path(request: "EvalRequest") -> "EvalRequest":
    """A local model folder given relative to the caller's directory, made absolute for the worker."""
    spec = request.model
    path = Path(spec.model).expanduser()
    if spec.is_bm25 or path.is_absolute() or not path.is_dir():
        return request
    return replace(request, model=replace(spec, model=str(path.resolve())))


def start_job(workspace: str | os.PathLike[str] | Workspace, job_id: str) -> None:
    """Start the worker of a job submitted with ``start=False`` (same as resume_job)."""
    resume_job(workspace, job_id)


def list_jobs(workspace: str | os.PathLike[str] | Workspace) -> list[JobInfo]:
    """Every job, newest first; workers found dead are reported (and stored) as 'interrupted'."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    if not ws.exists():
        return []
    ws = _workspace(ws)
    js = JobStore(ws)
    out = []
    for row in js.list():
        prog = read_json(_paths(ws, row.id).progress)
        row = _check_alive(js, row, prog)
        out.append(_info(ws, row, prog))
    return out


def get_job(workspace: str | os.PathLike[str] | Workspace, job_id: str, *,
            log_lines: int = LOG_TAIL_LINES) -> JobInfo:
    """One job by id (or unique id prefix); NotFound for unknown ids."""
    ws = _workspace(workspace)
    js = JobStore(ws)
    row = js.require(job_id)
    prog = read_json(_paths(ws, row.id).progress)
    row = _check_alive(js, row, prog)
    return _info(ws, row, prog, log_lines)


def cancel_job(workspace: str | os.PathLike[str] | Workspace, job_id: str) -> None:
    """Ask a job to stop. A running worker stops cleanly after its current batch (finished chunks
    stay in the cache); a queued or interrupted job becomes 'cancelled' at once. Finished jobs are
    left as they are."""
    ws = _workspace(workspace)
    js = JobStore(ws)
    row = js.require(job_id)
    if row.state in ("done", "failed", "cancelled"):
        return
    paths = _paths(ws, row.id)
    paths.request_cancel()  # the worker polls this flag (also while waiting for a device)
    append_log(paths.log, "cancel requested")
    row = _check_alive(js, row, read_json(paths.progress))
    if row.state in ("queued", "interrupted"):
        # a waiting worker then fails to claim the job and exits; a running one sees the flag
        js.cancel_now(row.id, [row.state])


def resume_job(workspace: str | os.PathLike[str] | Workspace, job_id: str) -> None:
    """Restart an interrupted, failed or cancelled job (or start a queued one with no worker).

    The new worker re-uses every embedding chunk already committed and finishes the same run id.
    """
    ws = _workspace(workspace)
    js = JobStore(ws)
    row = js.require(job_id)
    paths = _paths(ws, row.id)
    row = _check_alive(js, row, read_json(paths.progress))
    if row.state == "done":
        raise EmbtuiError(f"job {row.id} is already done", f"its results are run {row.run_id}")
    if row.state == "running" or (row.state == "queued" and row.pid is not None):
        raise EmbtuiError(f"job {row.id} is {row.state} (worker pid {row.pid})",
                          "follow it with `embtui jobs follow ID`, or cancel it first")
    if (row.state == "interrupted" and row.pid is not None and (row.host or hostname()) == hostname()
            and row.pid != os.getpid() and pid_runs_job(row.pid, row.id)):
        raise EmbtuiError(f"job {row.id}'s worker (pid {row.pid}) stopped reporting but is still alive",
                          f"stop it first (kill {row.pid}), then resume")
    paths.clear_cancel()
    if not js.requeue(row.id, ["interrupted", "failed", "cancelled", "queued"]):
        raise EmbtuiError(f"job {row.id} changed state meanwhile", "look again with `embtui jobs`")
    append_log(paths.log, f"resume requested (was {row.state})")
    _start(ws, row.id)


def job_log(workspace: str | os.PathLike[str] | Workspace, job_id: str, lines: int = 200) -> str:
    ws = _workspace(workspace)
    row = JobStore(ws).require(job_id)
    return tail(_paths(ws, row.id).log, lines)


def _change_key(info: JobInfo) -> tuple[Any, ...]:
    return (info.state, info.stage, info.done, info.total, info.batch_size, info.device,
            info.run_id, info.error, info.pid)


def follow_job(workspace: str | os.PathLike[str] | Workspace, job_id: str,
               callback: Callable[[JobInfo], None], poll_s: float = 0.2,
               timeout_s: float | None = None) -> JobInfo:
    """Call ``callback(info)`` whenever the job changes, until it ends; returns its final info.

    Progress comes from the job's progress file; the database is read about once a second (state,
    dead-worker check), so following never holds the workspace lock for long.
    """
    ws = _workspace(workspace)
    js = JobStore(ws)
    info = get_job(ws, job_id, log_lines=0)
    row = js.require(info.id)
    paths = _paths(ws, info.id)
    last_key: tuple[Any, ...] | None = None
    last_db = time.monotonic()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        key = _change_key(info)
        if key != last_key:
            last_key = key
            callback(info)
        if info.finished:
            return get_job(ws, info.id)
        if deadline is not None and time.monotonic() > deadline:
            return info
        time.sleep(poll_s)
        prog = read_json(paths.progress)
        if time.monotonic() - last_db >= 1.0 or prog.get("state") in TERMINAL_STATES:
            row = _check_alive(js, js.require(info.id), prog)
            last_db = time.monotonic()
        info = _info(ws, row, prog, log_lines=0)


def set_jobs_per_device(workspace: str | os.PathLike[str] | Workspace, slots: int) -> None:
    """How many jobs may run at once on one device in this workspace (default 1)."""
    if slots < 1:
        raise EmbtuiError(f"jobs per device must be at least 1, got {slots}")
    JobStore(_workspace(workspace, create=True)).set_setting("jobs_per_device", str(slots))


def jobs_per_device(ws: Workspace) -> int:
    """``$EMBTUI_JOBS_PER_DEVICE``, else the workspace setting, else 1."""
    env = env_number("EMBTUI_JOBS_PER_DEVICE", 0, integer=True, minimum=1, example="2")
    value = env or JobStore(ws).setting("jobs_per_device")
    try:
        return max(1, int(value)) if value else 1
    except ValueError:
        return 1
