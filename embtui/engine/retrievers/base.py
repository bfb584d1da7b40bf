"""The retriever protocol and what passes through it: a context in, a ranked retrieval out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

    from embtui.engine.progress import CancelToken
    from embtui.store import Corpus, Store


@dataclass
class RetrievalContext:
    """What one evaluation hands its retriever. ``stages`` times and reports the steps
    (``start(name, total)`` / ``end(timing_key, t0)`` / ``progress``); ``info`` and
    ``index_config`` are the run's records, which the retriever adds to."""

    store: "Store"
    req: Any  # EvalRequest
    run_id: int
    corpus: "Corpus"
    query_texts: list[str]
    depth: int
    tie_order: "np.ndarray"
    stages: Any
    cancel: "CancelToken"
    device: str | None
    info: dict[str, Any]
    index_config: dict[str, Any]


@dataclass(frozen=True)
class Retrieval:
    """Top-``depth`` corpus indices and scores per query (-1 pads), and what produced them."""

    idx: "np.ndarray"
    scores: "np.ndarray"
    fingerprint: str | None
    device: str | None


class Retriever(Protocol):
    kind: str
    uses_model_device: bool
    """True when it runs a neural model on a device with a batch size (so a job picks a device and
    remembers out-of-memory back-offs); False for CPU-only retrievers such as BM25."""

    def retrieve(self, ctx: RetrievalContext) -> Retrieval: ...
