"""BM25 as a retriever: a bm25s index over the corpus texts, searched on the CPU."""

from __future__ import annotations

import importlib.metadata as md
from typing import TYPE_CHECKING

from embtui.engine.retrievers.base import Retrieval, RetrievalContext

if TYPE_CHECKING:
    from embtui.engine.models import ModelSpec


class LexicalRetriever:
    kind = "bm25"
    uses_model_device = False

    def __init__(self, spec: "ModelSpec") -> None:
        self.spec = spec

    def retrieve(self, ctx: RetrievalContext) -> Retrieval:
        from embtui.engine.bm25 import BM25Retriever, corpus_batches

        stages = ctx.stages
        t0 = stages.start("index bm25", len(ctx.corpus))
        # the texts a slice at a time: the corpus is never copied whole into a second list
        index = BM25Retriever(batches=corpus_batches(ctx.corpus), total=len(ctx.corpus),
                              params=self.spec.bm25, progress=stages.progress, cancel=ctx.cancel)
        stages.end("index_build_s", t0)
        t0 = stages.start("search", len(ctx.query_texts))
        idx, scores = index.search(ctx.query_texts, ctx.depth, ctx.tie_order,
                                   progress=stages.progress, cancel=ctx.cancel)
        stages.end("search_s", t0)
        ctx.index_config["kind"] = "bm25"
        ctx.index_config["bm25"] = index.params
        try:
            version = md.version("bm25s")
        except md.PackageNotFoundError:  # pragma: no cover - bm25s is a dependency
            version = None
        return Retrieval(idx, scores, fingerprint=f"bm25s-{version}", device="cpu")
