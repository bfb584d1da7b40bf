"""Retrievers behind one protocol: given a corpus and queries, return each query's ranked
documents (indices into the corpus and scores), and say what they used (fingerprint, device,
index settings). An evaluation run (engine/evaluate.py) asks :func:`retriever_for` for the
retriever of a model spec and holds no kind-specific branch.

Implementations: :class:`~embtui.engine.retrievers.dense.DenseRetriever` (a sentence-transformers
model: encode through the cache, then exact or HNSW search) and
:class:`~embtui.engine.retrievers.lexical.LexicalRetriever` (BM25) and
:class:`~embtui.engine.retrievers.pipeline.PipelineRetriever` (first stages, fusion, rerankers,
each stage through the retrievers above). A new kind is a new implementation registered in
``RETRIEVERS``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from embtui.engine.retrievers.base import Retrieval, RetrievalContext, Retriever

if TYPE_CHECKING:
    from embtui.engine.models import ModelSpec

__all__ = ["RETRIEVERS", "Retrieval", "RetrievalContext", "Retriever", "retriever_for"]


def _pipeline(spec: "ModelSpec") -> Retriever | None:
    if not spec.is_pipeline:
        return None
    from embtui.engine.retrievers.pipeline import PipelineRetriever

    return PipelineRetriever(spec, retriever_for)  # its stages come from this registry


def _lexical(spec: "ModelSpec") -> Retriever | None:
    if not spec.is_bm25:
        return None
    from embtui.engine.retrievers.lexical import LexicalRetriever

    return LexicalRetriever(spec)


def _dense(spec: "ModelSpec") -> Retriever | None:
    from embtui.engine.retrievers.dense import DenseRetriever

    return DenseRetriever(spec)


# Tried in order; the first that accepts the spec serves it (dense takes anything left).
RETRIEVERS: list[Callable[["ModelSpec"], Retriever | None]] = [_pipeline, _lexical, _dense]


def retriever_for(spec: "ModelSpec") -> Retriever:
    """The retriever for a model spec."""
    for make in RETRIEVERS:
        retriever = make(spec)
        if retriever is not None:
            return retriever
    raise AssertionError("the dense retriever accepts every spec")  # pragma: no cover
