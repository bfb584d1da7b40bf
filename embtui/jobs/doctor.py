"""`embtui doctor`: check that a workspace is whole, report leftovers, and optionally remove them.

Problems (exit 1): the DB does not open or a table does not read, an artifact row points at a missing
file, an embedding-cache chunk does not load or has inconsistent shapes, a run is stuck in 'running'
with nothing running it. Orphans (reported; removed with ``--fix``): half-written or uncommitted
files under cache/ and indexes/ (``.tmp``, a chunk's vectors without its hashes), index files no
artifact row names, job folders without a job row. Orphans cost disk space only: readers ignore them.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embtui.store.db import Workspace
from embtui.store.jobs import JobStore

# While something may be writing, files younger than this are never treated as removable.
YOUNG_S = 120.0
_CHUNK_FILE = re.compile(r"chunk-(\d{6})\.")


@dataclass
class DoctorReport:
    root: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append({"check": name, "ok": ok, "detail": detail})

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **asdict(self)}


def _embtui_processes_using(ws: Workspace) -> list[int]:
    """Other embtui CLI/TUI processes on this host working in this workspace (job workers excluded)."""
    import psutil

    me = os.getpid()
    root = str(ws.root)
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = proc.info["cmdline"] or []
            if proc.info["pid"] == me or not cmd:
                continue
            is_embtui = any(Path(a).name == "embtui" for a in cmd[:2]) or (
                "-m" in cmd and cmd[cmd.index("-m") + 1:cmd.index("-m") + 2] == ["embtui"])
            if not is_embtui:
                continue
            if any(root in a for a in cmd):
                found.append(proc.info["pid"])
                continue
            env = proc.environ()
            target = env.get("EMBTUI_WORKSPACE") or os.path.join(proc.cwd(), "workspaces", "default")
            if "--workspace" not in cmd and Path(target).resolve() == ws.root:
                found.append(proc.info["pid"])
        except (psutil.Error, OSError, ValueError):
            continue
    return found


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def check_workspace(workspace: str | os.PathLike[str] | Workspace, *, fix: bool = False) -> DoctorReport:
    """Run every check (and with ``fix``, repair what is safe to repair); never raises for a finding."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    rep = DoctorReport(str(ws.root))
    if not ws.exists():
        rep.problems.append(f"no workspace database at {ws.db_path}")
        rep.check("database", False, "missing")
        return rep
    js = JobStore(ws)
    try:
        ws.init()
        counts = js.table_counts()
    except Exception as exc:  # noqa: BLE001 - a broken DB is the finding
        rep.problems.append(f"database does not open or read: {exc}")
        rep.check("database", False, str(exc))
        return rep
    rep.check("database", True, f"{len(counts)} tables read, {sum(counts.values())} rows")

    from embtui.jobs.api import list_jobs

    jobs = list_jobs(ws)  # also turns jobs with dead workers into 'interrupted'
    live = [j for j in jobs if j.state in ("queued", "running") and j.pid is not None]
    by_state: dict[str, int] = {}
    for j in jobs:
        by_state[j.state] = by_state.get(j.state, 0) + 1
    rep.check("jobs", True, ", ".join(f"{n} {s}" for s, n in sorted(by_state.items())) or "none")
    others = _embtui_processes_using(ws)
    busy = bool(live or others)

    _check_runs(ws, js, rep, others, fix)
    referenced = _check_artifacts(ws, js, rep, fix)
    removable: list[Path] = []
    _check_cache(ws, rep, removable, fix)
    _check_indexes(ws, rep, removable, referenced)
    _check_job_dirs(ws, js, rep, removable)
    if fix:
        for path in removable:
            if busy and _age(path) < YOUNG_S:
                rep.warnings.append(f"kept {ws.rel(path)}: recent, and a job or embtui session is active")
                continue
            if path.is_dir():
                import shutil

                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            rep.fixed.append(f"removed {ws.rel(path)}")
    return rep


def _check_runs(ws: Workspace, js: JobStore, rep: DoctorReport, others: list[int], fix: bool) -> None:
    stuck = []
    for run_id, job_id, _state in js.running_runs():
        if job_id is not None:
            continue  # its job is queued/running and list_jobs just found the worker alive
        if others:
            rep.warnings.append(f"run {run_id} is 'running' without a job; embtui process(es) "
                                f"{', '.join(map(str, others))} may be running it")
            continue
        stuck.append(run_id)
        if fix:
            js.end_run_if_running(run_id, "interrupted: found stuck in 'running' by embtui doctor")
            rep.fixed.append(f"marked run {run_id} failed (interrupted)")
        else:
            rep.problems.append(f"run {run_id} is stuck in 'running' with no live job or embtui session")
    rep.check("runs", not stuck or fix, f"{len(stuck)} stuck in 'running'" if stuck else "no stuck runs")


def _check_artifacts(ws: Workspace, js: JobStore, rep: DoctorReport, fix: bool) -> set[Path]:
    paths = js.artifact_paths()
    missing = [p for p in paths if not ws.abs(p).exists()]
    for p in missing:
        if fix:
            rep.fixed.append(f"dropped artifact row for missing file {p}")
        else:
            rep.problems.append(f"artifact file is missing: {p}")
    if fix and missing:
        js.delete_artifacts(missing)
    rep.check("artifacts", not missing or fix, f"{len(paths)} rows, {len(missing)} missing files")
    return {ws.abs(p).resolve() for p in paths if p not in missing}


def _check_cache(ws: Workspace, rep: DoctorReport, removable: list[Path], fix: bool) -> None:
    from embtui.engine.cache import HASH_BYTES, EmbeddingCache

    root = ws.cache_dir
    n_dirs = n_chunks = n_bad = 0
    if root.exists():
        for d in sorted(root.iterdir()):
            if not d.is_dir():
                rep.orphans.append(ws.rel(d))
                removable.append(d)
                continue
            n_dirs += 1
            cache = EmbeddingCache(root, d.name)
            manifest: dict[str, Any] = {}
            if (d / "manifest.json").exists():
                from embtui.jobs.files import read_json

                manifest = read_json(d / "manifest.json")
            committed = cache.chunk_ids()
            bad: set[int] = set()
            dims: set[int] = set()
            for c in committed:
                n_chunks += 1
                vec_path, hash_path = cache._paths(c)
                try:
                    v = np.load(vec_path, mmap_mode="r")
                    h = np.load(hash_path, mmap_mode="r")
                    why = None
                    if v.ndim != 2 or h.ndim != 2 or h.shape[1] != HASH_BYTES or h.dtype != np.uint8:
                        why = f"shapes {v.shape} / {h.shape}"
                    elif len(v) != len(h):
                        why = f"{len(v)} vectors but {len(h)} hashes"
                    elif v.dtype.name not in ("float32", "float16") or (
                            manifest.get("dtype") and v.dtype.name != manifest["dtype"]):
                        why = f"dtype {v.dtype.name}, manifest says {manifest.get('dtype')}"
                    else:
                        dims.add(int(v.shape[1]))
                        if len(v):
                            np.asarray(v[-1])  # touch the last row: the file really is that long
                except Exception as exc:  # noqa: BLE001 - unreadable is the finding
                    why = f"does not load ({type(exc).__name__}: {exc})"
                if why:
                    bad.add(c)
                    rep.problems.append(f"{ws.rel(vec_path)}: {why}")
            if len(dims) > 1:
                rep.problems.append(f"{ws.rel(d)}: chunks disagree on dimension {sorted(dims)}")
            n_bad += len(bad)
            if fix and bad:
                for c in bad:
                    for p in cache._paths(c):
                        p.unlink(missing_ok=True)
                    rep.fixed.append(f"removed corrupt chunk {c} of {ws.rel(d)} (it is re-encoded on "
                                     "the next run)")
                rep.problems[:] = [p for p in rep.problems if not p.startswith(ws.rel(d) + "/")]
            for p in sorted(d.iterdir()):
                m = _CHUNK_FILE.match(p.name)
                if p.name.endswith(".tmp") or (m and int(m.group(1)) not in committed):
                    rep.orphans.append(ws.rel(p))
                    removable.append(p)
    rep.check("embedding cache", n_bad == 0 or fix,
              f"{n_dirs} caches, {n_chunks} committed chunks, {n_bad} corrupt")


def _check_indexes(ws: Workspace, rep: DoctorReport, removable: list[Path], referenced: set[Path]) -> None:
    n = 0
    if ws.index_dir.exists():
        for p in sorted(ws.index_dir.rglob("*")):
            if not p.is_file():
                continue
            n += 1
            if p.name.endswith(".tmp") or p.resolve() not in referenced:
                rep.orphans.append(ws.rel(p))
                removable.append(p)
    rep.check("indexes", True, f"{n} files")


def _check_job_dirs(ws: Workspace, js: JobStore, rep: DoctorReport, removable: list[Path]) -> None:
    if not ws.jobs_dir.exists():
        rep.check("job folders", True, "none")
        return
    ids = js.ids()
    n = 0
    for d in sorted(ws.jobs_dir.iterdir()):
        if d.name == "locks":
            continue
        n += 1
        if not d.is_dir() or d.name not in ids:
            rep.orphans.append(ws.rel(d))
            removable.append(d)
            continue
        for p in d.iterdir():
            if p.name.endswith(".tmp"):
                rep.orphans.append(ws.rel(p))
                removable.append(p)
    rep.check("job folders", True, f"{n} folders, {len(ids)} job rows")
