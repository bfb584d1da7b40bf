"""`embtui doctor`: check that a workspace is whole, report leftovers, and optionally remove them.

Problems (exit 1): the DB does not open or a table does not read, an artifact row points at a missing
file, an embedding-cache chunk is damaged (checksum), truncated, has inconsistent shapes or lost its
vectors file, an index file fails its checksum or is truncated, a run is stuck in 'running' with
nothing running it; ``--fix`` removes damaged chunks and indexes (re-encoded / rebuilt on the next
run). Orphans (reported; removed with ``--fix``): half-written or uncommitted files under cache/ and
indexes/ (``.tmp``, a chunk's vectors without its hashes, ``.corrupt`` files moved aside by a
reader), index files no artifact row names, job folders without a job row. Orphans cost disk space
only: readers ignore them.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


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
    _check_indexes(ws, js, rep, removable, referenced, fix)
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
    """Every committed chunk against its checksum record (embtui/engine/cache.py), plus leftovers."""
    from embtui.engine.cache import EmbeddingCache, _Damaged

    root = ws.cache_dir
    n_dirs = n_chunks = n_bad = 0
    if root.exists():
        for d in sorted(root.iterdir()):
            if not d.is_dir():
                rep.orphans.append(ws.rel(d))
                removable.append(d)
                continue
            n_dirs += 1
            manifest: dict[str, Any] = {}
            if (d / "manifest.json").exists():
                from embtui.jobs.files import read_json

                manifest = read_json(d / "manifest.json") or {}
            cache = EmbeddingCache(root, d.name)
            committed = cache.chunk_ids()
            bad: dict[int, str] = {}
            dims: set[int] = set()
            for c in committed:
                n_chunks += 1
                try:
                    _, dim, record = cache.check_chunk(c, full=True)
                    dims.add(dim)
                    dtype = (record or {}).get("dtype")
                    if manifest.get("dtype") and dtype and dtype != manifest["dtype"]:
                        bad[c] = f"holds {dtype} vectors, its manifest says {manifest['dtype']}"
                except (_Damaged, OSError) as exc:
                    bad[c] = str(exc)
            # a chunk whose hashes (the commit) survive while its vectors file is gone
            for h in sorted(d.glob("chunk-*.hashes.npy")):
                m = _CHUNK_FILE.match(h.name)
                if m and int(m.group(1)) not in committed:
                    bad[int(m.group(1))] = "is missing (its hashes and record are there)"
            for c, why in sorted(bad.items()):
                vec_path = cache._paths(c)[0]
                if fix:
                    cache.remove_chunk(c)
                    rep.fixed.append(f"removed damaged chunk {ws.rel(vec_path)} (its texts are "
                                     "re-encoded on the next run)")
                else:
                    rep.problems.append(f"{ws.rel(vec_path)} {why}")
            if len(dims) > 1:
                rep.problems.append(f"{ws.rel(d)}: chunks disagree on dimension {sorted(dims)}")
            n_bad += len(bad)
            committed_now = set(cache.chunk_ids())
            for p in sorted(d.iterdir()):
                m = _CHUNK_FILE.match(p.name)
                if p.name.endswith(".tmp") or (m and int(m.group(1)) not in committed_now
                                               and int(m.group(1)) not in bad):
                    rep.orphans.append(ws.rel(p))
                    removable.append(p)
    rep.check("embedding cache", n_bad == 0 or fix,
              f"{n_dirs} caches, {n_chunks} committed chunks, {n_bad} damaged or missing")


def _check_indexes(ws: Workspace, js: JobStore, rep: DoctorReport, removable: list[Path],
                   referenced: set[Path], fix: bool) -> None:
    """Each index file against its checksum record; records and files no artifact row names."""
    from embtui.engine.integrity import read_json, sidecar_path, verify_file

    n = n_bad = 0
    if ws.index_dir.exists():
        for p in sorted(ws.index_dir.rglob("*")):
            if not p.is_file():
                continue
            if p.name.endswith(".check.json") and not p.name.endswith(".tmp"):
                base = p.with_name(p.name[: -len(".check.json")])
                if base.exists() and base.resolve() in referenced:
                    continue  # the record of a live index
            elif not p.name.endswith(".tmp") and p.resolve() in referenced:
                n += 1
                record = read_json(sidecar_path(p))
                why = verify_file(p, record) if record is not None else None
                if why:
                    n_bad += 1
                    if fix:
                        p.unlink(missing_ok=True)
                        sidecar_path(p).unlink(missing_ok=True)
                        js.delete_artifacts([ws.rel(p)])
                        rep.fixed.append(f"removed damaged index {ws.rel(p)} (the next HNSW run "
                                         "rebuilds it)")
                    else:
                        rep.problems.append(f"index file {ws.rel(p)} is {why}")
                continue
            rep.orphans.append(ws.rel(p))
            removable.append(p)
    rep.check("indexes", n_bad == 0 or fix, f"{n} files, {n_bad} damaged")


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
