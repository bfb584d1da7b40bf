"""Retrieval pipelines as specs: one or more first-stage retrievers (dense, bm25, a static model),
an optional fusion of several (reciprocal rank fusion with its k, or a weighted sum of min-max
normalised scores), and optional rerank stages that rescore only the candidates of the stage before
(a bi-encoder: candidate documents encoded through the embedding cache; or a sentence-transformers
``CrossEncoder``), each with its depth.

A pipeline is saved like a model (one namespace: ``embtui eval --model NAME`` takes either) as a
:class:`~embtui.engine.models.ModelSpec` whose ``model`` is ``pipeline`` and whose ``pipeline``
field holds this spec as a dict. Each stage's full model spec is copied in when the pipeline is
made, so a later change to a saved model never changes what a pipeline measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from embtui.analysis.fusion import RRF_K
from embtui.errors import EmbtuiError

FUSIONS = ("rrf", "weighted")
RERANK_KINDS = ("bi-encoder", "cross-encoder")
DEFAULT_FUSE_DEPTH = 1000  # candidates each first-stage retriever hands to the fusion
DEFAULT_RERANK_DEPTH = 100


@dataclass(frozen=True)
class RerankStage:
    """Rescore the top ``depth`` candidates of the stage before with ``model`` (a spec dict)."""

    model: dict[str, Any]
    depth: int = DEFAULT_RERANK_DEPTH
    kind: str = "bi-encoder"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "depth": self.depth, "kind": self.kind}


@dataclass(frozen=True)
class Pipeline:
    """``retrieve``: first-stage model spec dicts; ``fuse`` (with two or more): ``rrf`` or
    ``weighted``; ``depth``: candidates per first-stage retriever (default: 1000 with fusion, else
    the first reranker's depth, else the run's depth)."""

    retrieve: tuple[dict[str, Any], ...]
    fuse: str | None = None
    rrf_k: int = RRF_K
    weights: tuple[float, ...] = ()
    depth: int | None = None
    rerank: tuple[RerankStage, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.retrieve:
            raise EmbtuiError("a pipeline needs at least one --retrieve model")
        if len(self.retrieve) > 1 and self.fuse is None:
            raise EmbtuiError(f"{len(self.retrieve)} first-stage models need a fusion",
                              "pass --fuse rrf (or rrf:K, or weighted:W1,W2)")
        if self.fuse is not None and len(self.retrieve) < 2:
            raise EmbtuiError("fusion needs two or more first-stage models", "repeat --retrieve")
        if self.fuse is not None and self.fuse not in FUSIONS:
            raise EmbtuiError(f"unknown fusion '{self.fuse}'", "use rrf, rrf:K or weighted:W1,W2")
        if self.fuse == "weighted" and len(self.weights) != len(self.retrieve):
            raise EmbtuiError(f"{len(self.weights)} weight(s) for {len(self.retrieve)} first-stage models",
                              "give one weight per --retrieve, e.g. --fuse weighted:0.3,0.7")
        if isinstance(self.rrf_k, bool) or not isinstance(self.rrf_k, int) or self.rrf_k < 0:
            raise EmbtuiError(f"RRF k {self.rrf_k!r} must be a whole number >= 0")
        if self.depth is not None and self.depth < 1:
            raise EmbtuiError(f"pipeline depth must be at least 1, got {self.depth}")
        for stage in self.rerank:
            if stage.kind not in RERANK_KINDS:
                raise EmbtuiError(f"unknown rerank kind '{stage.kind}'", f"use one of {', '.join(RERANK_KINDS)}")
            if stage.depth < 1:
                raise EmbtuiError(f"rerank depth must be at least 1, got {stage.depth}")
            if str(stage.model.get("model", "")).lower() == "bm25":
                raise EmbtuiError("bm25 cannot rerank (it scores the whole corpus)",
                                  "rerank with a dense model or a cross-encoder")

    def first_depth(self, run_depth: int) -> int:
        """Candidates each first-stage retriever returns for a run that keeps ``run_depth``."""
        if self.depth is not None:
            return self.depth
        if self.fuse is not None:
            return max(DEFAULT_FUSE_DEPTH, run_depth)
        if self.rerank:
            return self.rerank[0].depth
        return run_depth

    def describe(self) -> str:
        """One line: ``rrf(k=60)[bm25, minilm]@1000 → rerank minilm@100``."""
        names = [str(m.get("name") or m.get("model")) for m in self.retrieve]
        if self.fuse == "rrf":
            head = f"rrf(k={self.rrf_k})[{', '.join(names)}]"
        elif self.fuse == "weighted":
            head = "weighted[" + ", ".join(f"{w:g}·{n}" for w, n in zip(self.weights, names)) + "]"
        else:
            head = names[0]
        if self.depth is not None:
            head += f"@{self.depth}"
        for s in self.rerank:
            kind = "" if s.kind == "bi-encoder" else " (cross-encoder)"
            head += f" → rerank {s.model.get('name') or s.model.get('model')}{kind}@{s.depth}"
        return head

    def to_dict(self) -> dict[str, Any]:
        return {"retrieve": list(self.retrieve), "fuse": self.fuse, "rrf_k": self.rrf_k,
                "weights": list(self.weights), "depth": self.depth,
                "rerank": [s.to_dict() for s in self.rerank]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Pipeline":
        try:
            return cls(retrieve=tuple(data["retrieve"]), fuse=data.get("fuse"),
                       rrf_k=int(data.get("rrf_k", RRF_K)), weights=tuple(float(w) for w in data.get("weights") or ()),
                       depth=data.get("depth"),
                       rerank=tuple(RerankStage(s["model"], int(s.get("depth", DEFAULT_RERANK_DEPTH)),
                                                s.get("kind", "bi-encoder")) for s in data.get("rerank") or ()))
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbtuiError(f"a damaged pipeline spec ({type(exc).__name__}: {exc})",
                              "make it again with `embtui pipelines add --replace`") from exc


def parse_fuse(text: str | None) -> tuple[str | None, int, tuple[float, ...]]:
    """``rrf`` | ``rrf:K`` | ``weighted:W1,W2,...`` -> (method, rrf k, weights)."""
    if not text:
        return None, RRF_K, ()
    method, _, arg = text.strip().partition(":")
    method = method.lower()
    if method == "rrf":
        if not arg:
            return "rrf", RRF_K, ()
        try:
            k = int(arg)
        except ValueError:
            raise EmbtuiError(f"--fuse {text}: k '{arg}' is not a whole number", "e.g. --fuse rrf:60") from None
        return "rrf", k, ()
    if method == "weighted":
        try:
            weights = tuple(float(w) for w in arg.split(",") if w.strip())
        except ValueError:
            raise EmbtuiError(f"--fuse {text}: weights must be numbers", "e.g. --fuse weighted:0.3,0.7") from None
        if not weights:
            raise EmbtuiError(f"--fuse {text} names no weights", "e.g. --fuse weighted:0.3,0.7")
        return "weighted", RRF_K, weights
    raise EmbtuiError(f"unknown fusion '{text}'", "use rrf, rrf:K or weighted:W1,W2")


def pipeline_spec_dict(name: str, pipeline: Pipeline) -> dict[str, Any]:
    """The saved-model dict of a pipeline (see the module docstring)."""
    return {"model": "pipeline", "name": name, "pipeline": pipeline.to_dict()}


def stage_models(pipeline: Pipeline) -> Sequence[dict[str, Any]]:
    """Every model spec dict the pipeline runs, first stage first."""
    return [*pipeline.retrieve, *(s.model for s in pipeline.rerank)]
