"""Training data from a project: (query, positive[, negatives]) pairs, a dev split, the leakage check.

Pairs come from a split's qrels (every judged-relevant document of a query is one pair; imported
pairs files are stored the same way). The dev split is the project's own when it has one (``dev``
or what the user names), else a seeded hold-out of training *queries* (all pairs of a held-out
query leave training together, so no dev query was seen in training). The test split is never
used for either. Before any training, ``check_leakage`` refuses training queries whose normalised
text equals a test or dev query, and reports how many training positives are also judged in test
(common and legitimate in BEIR, where one corpus serves every split, but worth seeing).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from embtui.errors import EmbtuiError

if TYPE_CHECKING:  # pragma: no cover
    from embtui.store import Store

_SPACE = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]")


def normalize_query(text: str) -> str:
    """What makes two queries "the same" for the leakage check: NFKC, case, punctuation, spaces."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()


@dataclass(frozen=True)
class Pair:
    qid: str
    doc_id: str
    negatives: tuple[str, ...] = ()


@dataclass
class TrainingData:
    """Pairs for training and the dev queries with their judgments; texts looked up by id."""

    project: str
    train_split: str
    pairs: list[Pair]
    dev_qrels: dict[str, dict[str, int]]
    dev_definition: dict[str, Any]
    queries: dict[str, str]
    leakage: dict[str, Any] = field(default_factory=dict)
    negatives_source: dict[str, Any] = field(default_factory=dict)

    @property
    def train_qids(self) -> list[str]:
        return sorted({p.qid for p in self.pairs})

    def data_hash(self, doc_text: dict[str, str]) -> str:
        """sha256 of the training rows as texts (query, positive, negatives), in training order."""
        h = hashlib.sha256()
        for p in self.pairs:
            row = [self.queries[p.qid], doc_text[p.doc_id], *(doc_text[n] for n in p.negatives)]
            h.update(json.dumps(row, ensure_ascii=False).encode() + b"\n")
        return "sha256:" + h.hexdigest()[:32]

    def summary(self) -> dict[str, Any]:
        return {"project": self.project, "train_split": self.train_split, "pairs": len(self.pairs),
                "train_queries": len(self.train_qids), "dev": self.dev_definition,
                "negatives": self.negatives_source, "leakage": self.leakage}


def _pairs_of(qrels: dict[str, dict[str, int]], qids: Sequence[str]) -> list[Pair]:
    """One pair per judged-relevant document; judged non-relevant documents (grade 0, what an
    imported pairs file's ``negative`` column becomes) are that query's given negatives."""
    out = []
    for q in qids:
        given = tuple(sorted(d for d, g in qrels[q].items() if g <= 0))
        out += [Pair(q, d, given) for d, g in sorted(qrels[q].items()) if g > 0]
    return out


def build_training_data(store: "Store", project: str, *, train_split: str = "train",
                        dev_split: str | None = None, dev_fraction: float = 0.1, seed: int = 42,
                        test_split: str = "test", max_pairs: int | None = None,
                        drop_leaked: bool = False) -> TrainingData:
    """The pairs and dev split for fine-tuning on ``project`` (see the module docstring)."""
    info = store.get_project(project)
    if train_split not in info.splits:
        have = ", ".join(sorted(info.splits)) or "none"
        raise EmbtuiError(f"project '{project}' has no '{train_split}' split (it has: {have})",
                          "import a split with training judgments, or pass --train-split")
    if train_split == test_split:
        raise EmbtuiError(f"the training split '{train_split}' is the test split",
                          "train on another split; the test split stays untouched for evaluation")
    train_qrels = store.qrels(project, train_split)
    train_qrels = {q: j for q, j in train_qrels.items() if any(g > 0 for g in j.values())}
    queries = store.queries(project)
    if dev_split is None and "dev" in info.splits and "dev" not in (train_split, test_split):
        dev_split = "dev"
    if dev_split is not None:
        if dev_split not in info.splits:
            raise EmbtuiError(f"project '{project}' has no '{dev_split}' split",
                              "pass --dev-fraction to hold out training queries instead")
        if dev_split in (train_split, test_split):
            raise EmbtuiError(f"the dev split must differ from the training and test splits, got '{dev_split}'")
        dev_qrels = store.qrels(project, dev_split)
        train_qids = sorted(train_qrels)
        definition: dict[str, Any] = {"kind": "split", "split": dev_split, "queries": len(dev_qrels)}
    else:
        if not 0 < dev_fraction < 1:
            raise EmbtuiError(f"--dev-fraction must be between 0 and 1, got {dev_fraction}")
        qids = sorted(train_qrels)
        # queries with the same normalised text fall on the same side of the split
        groups: dict[str, list[str]] = {}
        for q in qids:
            groups.setdefault(normalize_query(queries.get(q, q)), []).append(q)
        keys = sorted(groups)
        rng = random.Random(seed)
        rng.shuffle(keys)
        want = max(1, round(len(qids) * dev_fraction)) if len(qids) > 1 else 0
        held: set[str] = set()
        for key in keys:
            if len(held) >= want:
                break
            held.update(groups[key])
        dev_qrels = {q: train_qrels[q] for q in sorted(held)}
        train_qids = [q for q in qids if q not in held]
        definition = {"kind": "holdout", "split": train_split, "fraction": dev_fraction, "seed": seed,
                      "queries": len(dev_qrels)}
    pairs = _pairs_of(train_qrels, train_qids)
    if max_pairs is not None:
        pairs = pairs[:max_pairs]
    if not pairs:
        raise EmbtuiError(f"no training pairs in {project}/{train_split}",
                          "the split needs judgments with grade > 0")
    data = TrainingData(project, train_split, pairs, dev_qrels, definition, queries)
    data.leakage = check_leakage(store, data, test_split=test_split, drop=drop_leaked)
    if drop_leaked and data.leakage.get("dropped_queries"):
        gone = set(data.leakage["dropped_queries"])
        data.pairs = [p for p in data.pairs if p.qid not in gone]
        if not data.pairs:
            raise EmbtuiError("every training query is also a test or dev query")
    return data


def check_leakage(store: "Store", data: TrainingData, *, test_split: str = "test",
                  drop: bool = False) -> dict[str, Any]:
    """Refuse training queries equal (normalised) to a test or dev query (with ``drop``: leave them
    out of training and say which); report the overlap of training positives with test judgments."""
    info = store.get_project(data.project)
    test_qrels = store.qrels(data.project, test_split) if test_split in info.splits else {}
    held: dict[str, tuple[str, str]] = {}  # normalised text -> (split, qid)
    for split, qids in ((test_split, test_qrels), ("dev", data.dev_qrels)):
        for q in qids:
            if q in data.queries:
                held.setdefault(normalize_query(data.queries[q]), (split, q))
    leaks = []
    for q in data.train_qids:
        hit = held.get(normalize_query(data.queries.get(q, "")))
        if hit is not None or q in test_qrels or q in data.dev_qrels:
            split, other = hit if hit is not None else (test_split if q in test_qrels else "dev", q)
            leaks.append((q, split, other))
    examples = [{"train_query": q, "split": s, "query": o, "text": data.queries.get(q, "")[:80]}
                for q, s, o in leaks[:5]]
    if leaks and not drop:
        said = "; ".join(f"train query {q} = {s} query {o} ({data.queries.get(q, '')[:60]!r})"
                             for q, s, o in leaks[:3])
        raise EmbtuiError(
            f"leakage: {len(leaks)} of {len(data.train_qids)} training queries are also test or dev "
            f"queries (after normalising case, punctuation and spaces), e.g. {said}",
            "remove them from the training split, or pass --drop-leaked to train without them")
    test_docs = {d for j in test_qrels.values() for d, g in j.items() if g > 0}
    gone = {q for q, _, _ in leaks}
    train_docs = {p.doc_id for p in data.pairs if p.qid not in gone}
    overlap = sorted(train_docs & test_docs)
    return {"checked_queries": len(data.train_qids), "test_split": test_split if test_qrels else None,
            "leaked_queries": len(leaks), "dropped_queries": sorted(q for q, _, _ in leaks),
            "leaked_examples": examples, "positives_judged_in_test": len(overlap),
            "positives": len(train_docs),
            "note": (f"{len(overlap)} of {len(train_docs)} training positives are also relevant for "
                     f"test queries (allowed: the corpus is shared; the queries are not)")
            if overlap else "no training positive is judged relevant in test"}
