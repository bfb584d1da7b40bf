"""Hard negatives for training pairs: mined by sentence-transformers, or taken from a run's failures.

``mine`` calls ``sentence_transformers.util.mine_hard_negatives`` (its range, margin and
relative-margin filters, sampling strategy and count) but feeds it embtui's own embedding cache:
the corpus and query vectors are gathered from the cache (encoding only what is missing, into the
cache) and handed over through the function's ``cache_folder`` files, so a corpus that was already
evaluated is never encoded a second time (sentence-transformers #3338). The similarity search runs
in query chunks sized so that one chunk's score matrix stays under ``MAX_SCORE_BYTES`` (#3164).
Documents a user marked relevant for a query (the Failures pane's judgments) and documents judged
relevant in the training split are never kept as that query's negatives.

``from_run`` is the second-iteration source: for each pair, the top-ranked documents of a chosen
run that are neither judged nor marked relevant (what `embtui export negatives` writes).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from embtui.engine.training.data import Pair, TrainingData
from embtui.errors import EmbtuiError

if TYPE_CHECKING:  # pragma: no cover
    from embtui.engine.models import ModelSpec
    from embtui.store import Store

MAX_SCORE_BYTES = 256 * 2**20


def _excluded(store: "Store", data: TrainingData) -> dict[str, set[str]]:
    """Per query: documents that must never be its negatives (judged or marked relevant)."""
    qrels = store.qrels(data.project, data.train_split)
    overlay = store.annotations.overlay(data.project, data.train_split)
    out: dict[str, set[str]] = {}
    for q in {p.qid for p in data.pairs}:
        out[q] = {d for d, g in qrels.get(q, {}).items() if g > 0}
        out[q] |= {d for d, g in overlay.get(q, {}).items() if g > 0}
    return out


def _st_hash(model_name: str, prompt: str | None, prompt_name: str | None, texts: list[str]) -> str:
    """The file name key mine_hard_negatives gives its cached embeddings (its own formula)."""
    return hashlib.sha256(repr((model_name, prompt, prompt_name, texts)).encode(),
                          usedforsecurity=False).hexdigest()


def mine(store: "Store", data: TrainingData, spec: "ModelSpec", *, num_negatives: int = 3,
         range_min: int = 0, range_max: int | None = None, absolute_margin: float | None = None,
         relative_margin: float | None = None, sampling_strategy: str = "top",
         device: str | None = None, progress: Any = None, cancel: Any = None,
         model: Any = None) -> tuple[TrainingData, dict[str, Any]]:
    """``data`` with ``num_negatives`` mined negatives per pair, and a report of what was done."""
    from embtui.engine.encode import Encoder

    if num_negatives < 1:
        raise EmbtuiError(f"--hard-negatives must be at least 1, got {num_negatives}")
    if sampling_strategy not in ("top", "random"):
        raise EmbtuiError(f"unknown sampling strategy '{sampling_strategy}'", "use top or random")
    corpus = store.corpus(data.project)
    texts = corpus.encode_texts()
    doc_of: dict[str, str] = {}
    for doc_id, text in zip(corpus.ids, texts):
        doc_of.setdefault(text, doc_id)
    text_of = dict(zip(corpus.ids, texts))
    excluded = _excluded(store, data)
    extra = max((len(v) for v in excluded.values()), default=0)
    encoder = Encoder(spec, store.ws.cache_dir, store=store, device=device)
    # The deduplicated orders mine_hard_negatives builds (positives are corpus texts already).
    uniq_docs = list(dict.fromkeys(texts))
    anchors = [data.queries[p.qid] for p in data.pairs]
    positives = [text_of[p.doc_id] for p in data.pairs]
    uniq_queries = list(dict.fromkeys(anchors))
    doc_vecs, doc_stats = encoder.encode(uniq_docs, "document", progress=progress, cancel=cancel)
    query_vecs, query_stats = encoder.encode(uniq_queries, "query", progress=progress, cancel=cancel)
    st_model = model if model is not None else encoder.model()
    model_name = st_model.model_card_data.base_model or ""
    calls = {"encoded": 0}

    def counted(fn: Any) -> Any:
        def wrapper(sentences: Any, *a: Any, **k: Any) -> Any:
            calls["encoded"] += len(sentences)
            return fn(sentences, *a, **k)
        return wrapper

    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    chunk = max(1, MAX_SCORE_BYTES // (4 * max(1, len(uniq_docs))))
    with tempfile.TemporaryDirectory(prefix="embtui-mine-") as folder:
        qp, qpn = spec.prompt_for("query")
        dp, dpn = spec.prompt_for("document")
        np.save(os.path.join(folder, f"query_embeddings_{_st_hash(model_name, qp, qpn, uniq_queries)}.npy"),
                np.ascontiguousarray(query_vecs, dtype=np.float32))
        np.save(os.path.join(folder, f"corpus_embeddings_{_st_hash(model_name, dp, dpn, uniq_docs)}.npy"),
                np.ascontiguousarray(doc_vecs, dtype=np.float32))
        saved = (st_model.encode_document, st_model.encode_query)
        st_model.encode_document, st_model.encode_query = counted(saved[0]), counted(saved[1])
        try:
            mined = mine_hard_negatives(
                Dataset.from_dict({"anchor": anchors, "positive": positives}), st_model,
                anchor_column_name="anchor", positive_column_name="positive", corpus=texts,
                range_min=range_min, range_max=range_max, absolute_margin=absolute_margin,
                relative_margin=relative_margin, num_negatives=num_negatives + extra,
                sampling_strategy=sampling_strategy, output_format="n-tuple",
                query_prompt=qp, query_prompt_name=qpn, corpus_prompt=dp, corpus_prompt_name=dpn,
                batch_size=spec.batch_size, faiss_batch_size=chunk, verbose=False, cache_folder=folder)
        finally:
            st_model.encode_document, st_model.encode_query = saved
    neg_cols = [c for c in mined.column_names if c.startswith("negative")]
    by_pair: dict[tuple[str, str], list[str]] = {}
    for row in mined:
        q, pos = row["anchor"], row["positive"]
        by_pair.setdefault((q, pos), [doc_of[row[c]] for c in neg_cols if row[c] in doc_of])
    pairs, short, dropped_marked = [], 0, 0
    for p in data.pairs:
        found = by_pair.get((data.queries[p.qid], text_of[p.doc_id]), [])
        keep = [d for d in found if d not in excluded[p.qid]]
        dropped_marked += len(found) - len(keep)
        keep = keep[:num_negatives]
        if len(keep) < num_negatives:
            short += 1
            continue
        pairs.append(Pair(p.qid, p.doc_id, tuple(keep)))
    report = {"source": "mined", "model": spec.name, "num_negatives": num_negatives,
              "range_min": range_min, "range_max": range_max, "absolute_margin": absolute_margin,
              "relative_margin": relative_margin, "sampling_strategy": sampling_strategy,
              "pairs_kept": len(pairs), "pairs_without_enough_negatives": short,
              "excluded_relevant": dropped_marked,
              "documents_from_cache": doc_stats.cached, "documents_encoded_now": doc_stats.encoded,
              "queries_encoded_now": query_stats.encoded,
              "encoded_by_sentence_transformers": calls["encoded"],
              "score_chunk_queries": chunk}
    if not pairs:
        raise EmbtuiError("no training pair kept enough mined negatives",
                          "loosen the filters (--range-max, margins) or ask for fewer negatives")
    return replace(data, pairs=pairs, negatives_source=report), report


def from_run(store: "Store", data: TrainingData, run_id: int, *, num_negatives: int = 3
             ) -> tuple[TrainingData, dict[str, Any]]:
    """Negatives from a run's rankings of the training queries: the top documents that are neither
    judged nor marked relevant, so documents ranked above a positive come first."""
    run = store.get_run(int(run_id))
    if run.status != "done":
        raise EmbtuiError(f"run {run.id} is {run.status}, not done", "take negatives from a finished run")
    if run.project != data.project:
        raise EmbtuiError(f"run {run.id} is of project '{run.project}', not '{data.project}'")
    rankings = store.run_rankings(run.id)
    excluded = _excluded(store, data)
    train_q = {p.qid for p in data.pairs}
    covered = train_q & set(rankings)
    if not covered:
        raise EmbtuiError(f"run {run.id} ranks none of the training queries (it is a run of "
                          f"'{run.split}')", f"evaluate the model on --split {data.train_split} first")
    pairs, short, above = [], 0, 0
    for p in data.pairs:
        ranked = [d for d, _ in rankings.get(p.qid, [])]
        negs = [d for d in ranked if d not in excluded[p.qid]]
        if len(negs) < num_negatives:
            short += 1
            continue
        pos_rank = ranked.index(p.doc_id) if p.doc_id in ranked else len(ranked)
        above += sum(1 for d in negs[:num_negatives] if ranked.index(d) < pos_rank)
        pairs.append(Pair(p.qid, p.doc_id, tuple(negs[:num_negatives])))
    if not pairs:
        raise EmbtuiError(f"run {run.id} gives no training pair {num_negatives} negatives")
    report = {"source": "run", "run": run.id, "model": run.model_name, "split": run.split,
              "num_negatives": num_negatives, "pairs_kept": len(pairs),
              "pairs_without_enough_negatives": short, "negatives_ranked_above_positive": above}
    return replace(data, pairs=pairs, negatives_source=report), report
