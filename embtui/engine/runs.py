"""Managing stored runs: find a finished run identical to a request (to reuse it), delete runs with their files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from embtui.store import RunInfo, Store

if TYPE_CHECKING:  # pragma: no cover
    from embtui.engine.evaluate import EvalRequest

# Spec fields that change neither the vectors nor the rankings.
_RUNTIME_FIELDS = ("batch_size", "device")


def _spec_key(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k not in _RUNTIME_FIELDS}


def find_identical_run(store: Store, req: "EvalRequest") -> RunInfo | None:
    """The latest finished run with the same model (spec and weights fingerprint), data (the
    project as imported now), split, index config, cutoffs and software versions; else None.

    Imports nothing heavy (the fingerprint of a local folder is a cached file hash).
    """
    from embtui.engine.evaluate import versions
    from embtui.engine.models import fingerprint
    from embtui.engine.hnsw import HnswConfig
    from embtui.engine.search import choose_index

    if req.cache_dtype != "float32" or req.chunk_texts or req.max_in_memory_bytes:
        return None  # vectors stored differently (or a test knob): not "the same" run
    runs = store.list_runs(project=req.project, split=req.split, status="done")
    candidates = [r for r in runs if r.model_name == req.model.name
                  and _spec_key(r.model_spec) == _spec_key(req.model.to_dict())]
    if not candidates:
        return None
    project = store.get_project(req.project)
    spec = req.model
    now = versions()
    if spec.is_bm25:
        fp = f"bm25s-{now.get('bm25s')}"
        kind = "bm25"
    elif spec.is_pipeline:
        fp = fingerprint(spec, store)
        if fp is None:
            return None
        kind = "pipeline"
    else:
        fp = fingerprint(spec, store)
        if fp is None:
            return None
        kind = req.index if req.index != "auto" else choose_index(project.documents)
    for run in reversed(candidates):
        cfg = run.index_config
        if run.model_fingerprint != fp or cfg.get("kind") != kind:
            continue
        if cfg.get("depth") != req.result_depth or \
                bool(cfg.get("ignore_identical_ids")) != req.ignore_identical_ids:
            continue
        from embtui.engine.compare import skips_unanswerable  # older runs: the old convention

        if skips_unanswerable(run) != req.skip_unanswerable:
            continue
        if kind == "hnsw":
            want = HnswConfig.from_dict({**req.hnsw.to_dict(), "metric": cfg.get("metric", "ip")})
            if cfg.get("hnsw") != want.to_dict():
                continue
        if project.created_at and run.created_at and run.created_at < project.created_at:
            continue  # made on an earlier import of the project
        if run.versions != now:
            continue
        if bool(run.info.get("skip_unanswerable", False)) != bool(getattr(req, "skip_unanswerable", False)):
            continue  # the means are taken over other queries
        if not all(f"ndcg@{k}" in run.metrics for k in req.ks):
            continue
        return run
    return None


def identical_note(run: RunInfo, how: str = "pass --force") -> str:
    return (f"run #{run.id} is identical (same model, data, split, index); reused — "
            f"{how} to make a new run")


def delete_runs(store: Store, run_ids: Sequence[int]) -> list[str]:
    """Delete runs (rows, metrics, rankings; annotation links cleared) and their files: spilled
    matrices and HNSW indexes no other run uses. Returns the files removed (relative paths)."""
    orphans = store.delete_runs(run_ids)
    removed = []
    for rid in run_ids:
        for path in store.ws.runs_dir.glob(f"run-{int(rid)}-*"):
            path.unlink(missing_ok=True)
            removed.append(store.ws.rel(path))
    for stored in orphans:
        path = store.ws.abs(stored)
        if path.exists():
            path.unlink()
            removed.append(stored)
    return removed
