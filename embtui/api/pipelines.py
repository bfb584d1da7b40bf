"""Making and listing retrieval pipelines (first stages, fusion, rerankers; see
engine/pipelines.py). A pipeline is saved under a name like a model, so `eval --model NAME`, the
Models pane and every table, comparison and report take it as they take a model. Each stage is
resolved when the pipeline is made — a saved model name, a hub id, a local folder or bm25 — and an
unknown one fails then, before anything is saved."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from embtui.engine.models import ModelSpec, check_model_name, resolve_spec
from embtui.engine.pipelines import (DEFAULT_RERANK_DEPTH, Pipeline, RerankStage, parse_fuse,
                                     pipeline_spec_dict)
from embtui.errors import EmbtuiError

if TYPE_CHECKING:
    from embtui.store import Store

__all__ = ["Pipeline", "list_pipelines", "make_pipeline"]


def _stage(store: "Store", name: str) -> dict[str, Any]:
    spec = resolve_spec(name, store)
    if spec.is_pipeline:
        raise EmbtuiError(f"'{name}' is a pipeline; a stage must be a model", "name a model, bm25 or a path")
    path = Path(spec.model).expanduser()
    if not spec.is_bm25 and path.is_dir():  # the worker runs elsewhere: keep the folder absolute
        spec = ModelSpec.from_dict({**spec.to_dict(), "model": str(path.resolve())})
    return spec.to_dict()


def make_pipeline(store: "Store", name: str, retrieve: Sequence[str], *, fuse: str | None = None,
                  depth: int | None = None, rerank: Sequence[str] = (), rerank_depth: Sequence[int] = (),
                  cross_encoder: Sequence[str] = (), replace: bool = False) -> ModelSpec:
    """Validate, then save the pipeline ``name``; returns its spec. ``rerank`` are bi-encoder
    rerankers and ``cross_encoder`` cross-encoders, applied in that order; ``rerank_depth`` gives
    each reranker's depth in the same order (missing ones: 100)."""
    if not name or not name.strip():
        raise EmbtuiError("a pipeline needs a NAME", "e.g. `embtui pipelines add hybrid --retrieve bm25 "
                          "--retrieve all-MiniLM-L6-v2 --fuse rrf`")
    existing = store.get_model(name)
    if existing is not None and not replace:
        raise EmbtuiError(f"a model or pipeline named '{name}' is already saved",
                          "pass --replace to overwrite it, or choose another NAME")
    method, k, weights = parse_fuse(fuse)
    rerankers = [(m, "bi-encoder") for m in rerank] + [(m, "cross-encoder") for m in cross_encoder]
    depths = list(rerank_depth) + [DEFAULT_RERANK_DEPTH] * (len(rerankers) - len(rerank_depth))
    if len(depths) > len(rerankers):
        raise EmbtuiError(f"{len(rerank_depth)} --rerank-depth for {len(rerankers)} reranker(s)")
    pipeline = Pipeline(retrieve=tuple(_stage(store, m) for m in retrieve), fuse=method, rrf_k=k,
                        weights=weights, depth=depth,
                        rerank=tuple(RerankStage(_stage(store, m), d, kind)
                                     for (m, kind), d in zip(rerankers, depths)))
    spec = ModelSpec.from_dict(pipeline_spec_dict(name, pipeline))
    check_model_name(spec, store)
    store.save_model(name, spec.to_dict())
    return spec


def list_pipelines(store: "Store") -> dict[str, Pipeline]:
    """Saved pipelines by name."""
    return {n: Pipeline.from_dict(s["pipeline"]) for n, s in store.list_models().items()
            if s.get("pipeline") is not None}
