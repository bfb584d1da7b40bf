"""Gathering a dataset profile: each model's own tokenizer over the texts, the BM25 analyser's
terms, and embeddings already in the cache; the numbers come from analysis/dataset.py.

Tokenizers are read with the `tokenizers` library from the model folder's ``tokenizer.json`` (no
torch, no model weights; batch encoding in Rust), with truncation and padding switched off, so a
document's count is what the model would see before cutting it, special tokens included: exactly
what ``AutoTokenizer(text)`` returns, which the tests check.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from embtui.analysis import dataset as ds
from embtui.engine.progress import Meter, ProgressCallback
from embtui.errors import EmbtuiError

if TYPE_CHECKING:
    from embtui.store import Store

TOKENIZER_SAMPLE = 20_000  # documents whose words are split one by one for the piece statistics


def model_folder(spec: Any) -> Path | None:
    """The local folder holding a model's files (a hub model: its cached snapshot), or None."""
    from embtui.engine.models import _hf_cache_commit, resolve_source

    source, local = resolve_source(spec)
    if local:
        return Path(source)
    commit = _hf_cache_commit(source, spec.revision)
    if commit is None:
        return None
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub")
    return Path(hub) / ("models--" + source.replace("/", "--")) / "snapshots" / commit


class ModelTokenizer:
    """A model's tokenizer (``tokenizers``), untruncated, with its [UNK] id and max length."""

    def __init__(self, name: str, spec: Any) -> None:
        from tokenizers import Tokenizer

        from embtui.engine.models import effective_max_seq_length

        folder = model_folder(spec)
        path = None
        if folder is not None:
            for cand in (folder / "tokenizer.json", folder / "0_Transformer" / "tokenizer.json"):
                if cand.is_file():
                    path = cand
                    break
        if path is None:
            raise EmbtuiError(f"model '{name}' has no tokenizer.json on this machine",
                              "run it once (so it is downloaded) or point at a local folder")
        self.name = name
        self.tok = Tokenizer.from_file(str(path))
        self.tok.no_truncation()
        self.tok.no_padding()
        self.max_length = effective_max_seq_length(spec)
        if self.max_length is None and (path.parent / "config.json").is_file():  # model2vec
            try:
                cfg = json.loads((path.parent / "config.json").read_text())
                value = cfg.get("seq_length") or cfg.get("max_length")
                self.max_length = int(value) if value else None
            except (OSError, ValueError, TypeError):
                pass
        unk = None
        try:
            unk = getattr(self.tok.model, "unk_token", None)
        except Exception:  # noqa: BLE001 - models without the attribute
            unk = None
        self.unk_id = self.tok.token_to_id(unk) if unk else None

    def encode(self, texts: Sequence[str], batch: int = 2048) -> list[Any]:
        out: list[Any] = []
        for s in range(0, len(texts), batch):
            out.extend(self.tok.encode_batch(list(texts[s:s + batch]), add_special_tokens=True))
        return out

    def counts(self, texts: Sequence[str], batch: int = 2048) -> np.ndarray:
        out = np.empty(len(texts), dtype=np.int64)
        for s in range(0, len(texts), batch):
            encs = self.tok.encode_batch(list(texts[s:s + batch]), add_special_tokens=True)
            out[s:s + len(encs)] = [len(e.ids) for e in encs]
        return out

    def pieces(self, text: str) -> tuple[list[str], int | None]:
        """(the pieces of ``text``, special tokens included; the index of the first piece cut off
        at the max length, or None)."""
        enc = self.tok.encode(text, add_special_tokens=True)
        cut = self.max_length if self.max_length is not None and len(enc.ids) > self.max_length else None
        return list(enc.tokens), cut


def word_pieces(tok: ModelTokenizer, texts: Sequence[str]) -> tuple[dict[str, list[str]], Counter, int, int, int]:
    """(word -> its pieces, word frequencies, pieces in words, words, [UNK] pieces) over ``texts``.

    An encoding's attributes are read once each (every read builds a new list), and the pieces
    are grouped per word with numpy; only the distinct words' strings are built in Python."""
    pieces_of: dict[str, list[str]] = {}
    freq: Counter = Counter()
    n_pieces = n_words = n_unk = 0
    def encodings():  # in batches: a list of every Encoding of 20,000 abstracts is ~1 GB
        for s in range(0, len(texts), 1024):
            yield from zip(texts[s:s + 1024], tok.encode(texts[s:s + 1024]))

    for text, enc in encodings():
        wids = np.array([-1 if w is None else w for w in enc.word_ids], dtype=np.int64)
        inword = np.flatnonzero(wids >= 0)
        if not len(inword):
            continue
        w = wids[inword]
        starts = np.r_[0, np.flatnonzero(np.diff(w)) + 1]  # a word's pieces are contiguous
        ends = np.r_[starts[1:], len(w)]
        offsets = enc.offsets
        tokens = enc.tokens
        n_pieces += len(inword)
        n_words += len(starts)
        if tok.unk_id is not None:
            n_unk += int(np.count_nonzero(np.asarray(enc.ids)[inword] == tok.unk_id))
        for a, b in zip(inword[starts].tolist(), inword[ends - 1].tolist()):
            word = text[offsets[a][0]:offsets[b][1]].lower()
            freq[word] += 1
            if word not in pieces_of:
                pieces_of[word] = tokens[a:b + 1]
    return pieces_of, freq, n_pieces, n_words, n_unk


def tokenizer_stats(tok: ModelTokenizer, doc_texts: Sequence[str], query_texts: Sequence[str],
                    relevant: np.ndarray, seed: int = 20240607) -> ds.TokenizerStats:
    counts = tok.counts(doc_texts)
    qcounts = tok.counts(query_texts)
    sample = list(doc_texts)
    if len(sample) > TOKENIZER_SAMPLE:
        rng = np.random.default_rng(seed)
        sample = [sample[i] for i in np.sort(rng.choice(len(sample), TOKENIZER_SAMPLE, replace=False))]
    pieces_of, freq, n_pieces, n_words, n_unk = word_pieces(tok, sample + list(query_texts))
    return ds.TokenizerStats(tok.name, tok.max_length, ds.summarize(counts), ds.summarize(qcounts),
                             ds.truncation(counts, tok.max_length, relevant),
                             n_unk / max(n_pieces, 1), n_pieces / max(n_words, 1),
                             ds.most_split_words(pieces_of, freq))


def analyse_terms(texts: Sequence[str]) -> list[list[str]]:
    """The BM25 retriever's analysis of each text: its tokenizer, English stopwords, Snowball stems."""
    import bm25s
    import Stemmer

    from embtui.engine.bm25 import DEFAULTS

    stemmer = Stemmer.Stemmer(DEFAULTS["stemmer"])
    out = bm25s.tokenize(list(texts), stopwords=DEFAULTS["stopwords"], stemmer=stemmer,
                         return_ids=False, show_progress=False)
    return [list(t) for t in out]


def cached_vectors(store: "Store", spec: Any, texts: Sequence[str], role: str) -> np.ndarray | None:
    """The cached embeddings of ``texts`` for ``spec``, or None unless every one is cached."""
    from embtui.engine.cache import hash_texts
    from embtui.engine.encode import Encoder, truncate

    enc = Encoder(spec, store.ws.cache_dir, store=store)
    if enc.fingerprint is None:
        return None
    cache = enc.cache(role)
    hashes = hash_texts(texts)
    if cache.missing(hashes):
        return None
    return truncate(cache.gather(hashes), spec)


def profile_dataset(store: "Store", project: str, models: Sequence[str] = (), *,
                    near_threshold: float = 0.95, progress: ProgressCallback | None = None,
                    ) -> dict[str, Any]:
    """The whole profile of a project, as plain data (what `embtui inspect --json` prints)."""
    from embtui.engine.models import resolve_spec

    info = store.get_project(project)
    corpus = store.corpus(project)
    doc_texts = corpus.encode_texts()
    queries = store.queries(project)
    meter = Meter("profile", 4 + len(models), progress)
    splits: dict[str, dict[str, dict[str, int]]] = {s: store.qrels(project, s) for s in info.splits}
    judged = set().union(*[set(q) for q in splits.values()]) if splits else set()
    relevant_ids = {d for q in splits.values() for j in q.values() for d, g in j.items() if g > 0}
    relevant = np.array([d in relevant_ids for d in corpus.ids], bool)
    out: dict[str, Any] = {
        "project": project, "documents": len(corpus), "queries": len(queries),
        "splits": {s: {"queries": v["queries"], "judgments": v["qrels"]} for s, v in info.splits.items()},
        "lengths": {
            "document_chars": ds.summarize([len(t) for t in doc_texts]).to_dict(),
            "document_words": ds.summarize(ds.word_counts(doc_texts)).to_dict(),
            "query_chars": ds.summarize([len(t) for t in queries.values()]).to_dict(),
            "query_words": ds.summarize(ds.word_counts(queries.values())).to_dict(),
        },
    }
    meter.update(1)
    dups = ds.exact_duplicates(corpus.ids, doc_texts)
    qdups = ds.exact_duplicates(list(queries), list(queries.values()))
    out["duplicates"] = {
        "documents": {"groups": len(dups), "extra_copies": sum(len(g) - 1 for g in dups), "examples": dups[:5]},
        "queries": {"groups": len(qdups), "extra_copies": sum(len(g) - 1 for g in qdups), "examples": qdups[:5]},
    }
    empty_docs = ds.empty_ids(corpus.ids, doc_texts)
    out["empty"] = {"documents": empty_docs[:20], "documents_count": len(empty_docs),
                    "queries_count": len(ds.empty_ids(list(queries), list(queries.values())))}
    out["unjudged_queries"] = {"count": sum(1 for q in queries if q not in judged),
                               "examples": [q for q in queries if q not in judged][:5]}
    out["judgments"] = [ds.judgments(s, store.queries(project, s), q).to_dict() for s, q in splits.items()]
    meter.update(2)
    qterms_all = dict(zip(queries, analyse_terms(list(queries.values()))))
    judged_docs = [i for i, d in enumerate(corpus.ids) if d in relevant_ids]  # overlap needs only these
    dterms = dict(zip([corpus.ids[i] for i in judged_docs], analyse_terms([doc_texts[i] for i in judged_docs])))
    overlaps = {s: ds.lexical_overlap(s, qterms_all, dterms, q) for s, q in splits.items()}
    out["lexical_overlap"] = {s: o.to_dict() for s, o in overlaps.items()}
    out["lexical_vs_dense"] = _lexical_vs_dense(store, project, overlaps)
    meter.update(3)
    out["models"] = []
    for i, name in enumerate(models):
        spec = resolve_spec(name, store)
        if spec.is_bm25 or spec.is_pipeline:
            raise EmbtuiError(f"'{name}' has no tokenizer of its own", "name a dense model")
        tok = ModelTokenizer(name, spec)
        stats = tokenizer_stats(tok, doc_texts, list(queries.values()), relevant).to_dict()
        vecs = cached_vectors(store, spec, doc_texts, "document")
        if vecs is None:
            stats["near_duplicates"] = {"computed": False,
                                        "why": f"the corpus is not in {name}'s embedding cache yet "
                                               f"(embtui eval --model {name} fills it)"}
        else:
            folded = [ds.fold(t) for t in doc_texts]
            pairs, total = ds.near_duplicates(vecs, near_threshold, exclude_exact=folded, max_pairs=200)
            stats["near_duplicates"] = {
                "computed": True, "threshold": near_threshold, "pairs": total,
                "examples": [{"a": corpus.ids[a], "b": corpus.ids[b], "cosine": round(c, 4)} for a, b, c in pairs[:10]]}
        out["models"].append(stats)
        meter.update(4 + i)
    meter.finish()
    return out


def _lexical_vs_dense(store: "Store", project: str, overlaps: dict[str, ds.Overlap]) -> dict[str, Any] | None:
    """With a finished bm25 run and a dense run on one split: does overlap predict bm25's wins?"""
    try:
        runs = [r for r in store.list_runs(project, status="done")][::-1]  # newest first
    except Exception:  # noqa: BLE001 - a project without runs
        return None
    for split, ov in overlaps.items():
        lex = [r for r in runs if r.split == split and r.model_name == "bm25"]
        dense = [r for r in runs if r.split == split and r.model_name != "bm25"
                 and not (r.model_spec or {}).get("stages")]
        if lex and dense:
            a = {q: m.get("ndcg@10", 0.0) for q, m in store.run_query_metrics(lex[0].id).items()}
            b = {q: m.get("ndcg@10", 0.0) for q, m in store.run_query_metrics(dense[0].id).items()}
            res = ds.overlap_vs_delta(ov.per_query, a, b)
            res.update({"split": split, "lexical_run": lex[0].id, "dense_run": dense[0].id,
                        "dense_model": dense[0].model_name, "metric": "ndcg@10"})
            return res
    return None
