"""A lazy corpus: evaluations read the texts from the store a window at a time, never whole, with
the same vectors, hashes and metrics as the corpus held in memory."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from embtui.engine.encode import Encoder, corpus_text_hashes
from embtui.engine.cache import hash_texts
from embtui.engine.evaluate import EvalRequest, corpus_hash, run_evaluation
from embtui.engine.models import ModelSpec
from embtui.engine.progress import CancelToken
from embtui.errors import Cancelled, EmbtuiError
from embtui.store import Store


class _ReadLog:
    """Records every slice a lazy corpus reads from the store (the store's own reader, wrapped)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.slices: list[tuple[int, int]] = []
        real = Store._corpus_slice

        def logged(store, project, pid, ids, start, end):  # noqa: ANN001
            self.slices.append((start, end))
            return real(store, project, pid, ids, start, end)

        monkeypatch.setattr(Store, "_corpus_slice", logged)

    @property
    def largest(self) -> int:
        return max(end - start for start, end in self.slices)


def test_lazy_corpus_reads_what_the_eager_one_holds(demo_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    eager = demo_store.corpus("demo")
    lazy = demo_store.corpus("demo", lazy=True)
    log = _ReadLog(monkeypatch)
    lazy.window = 37
    assert lazy.lazy and len(lazy) == len(eager) == 400 and lazy.ids == eager.ids
    assert lazy.encode_texts(100, 180) == eager.encode_texts(100, 180)
    assert lazy.encode_texts(390, 10_000) == eager.encode_texts(390)
    assert [s for s, _ in lazy.windows()] == list(range(0, 400, 37))
    assert [t for _, w in lazy.windows() for t in w] == eager.encode_texts()
    rows = random.Random(3).sample(range(400), 60) + [5, 5]
    assert lazy.texts_at(rows) == [eager.encode_texts()[r] for r in rows]
    assert log.largest <= 80 and lazy.lazy, "no read may bring in more than was asked for"
    assert corpus_text_hashes(lazy) == hash_texts(eager.encode_texts())
    assert corpus_hash(lazy) == corpus_hash(eager)
    assert log.largest <= 80
    assert lazy.texts == eager.texts and lazy.titles == eager.titles  # asked for everything: read once


def test_a_project_replaced_mid_read_is_an_error_not_other_texts(demo_store: Store, tmp_path: Path) -> None:
    from embtui.data.beir import import_beir
    from tests.conftest import DEMO
    import shutil

    lazy = demo_store.corpus("demo", lazy=True)
    lazy.window = 50
    first = lazy.encode_texts(0, 50)
    changed = tmp_path / "changed"
    shutil.copytree(DEMO, changed)
    judged = {line.split("\t")[1] for f in (changed / "qrels").glob("*.tsv")
              for line in f.read_text().splitlines()[1:]}
    lines = (changed / "corpus.jsonl").read_text().splitlines()
    kept = [ln for ln in lines if json.loads(ln)["_id"] in judged]
    assert len(kept) < len(lines)
    (changed / "corpus.jsonl").write_text("\n".join(kept) + "\n")  # unjudged documents gone
    import_beir(demo_store, changed, "demo", replace=True)
    with pytest.raises(EmbtuiError, match="changed while they were being read"):
        lazy.encode_texts(200, 250)
    assert len(first) == 50


def test_texts_changed_between_hashing_and_encoding_never_reach_the_cache(
        demo_store: Store, tiny_model: Path, tmp_path: Path) -> None:
    """A document's text edited in place after the corpus was hashed (same project, same ids): the
    encode stops with one line instead of storing the new text's vector under the old text's key."""
    lazy = demo_store.corpus("demo", lazy=True)
    lazy.window = 100
    corpus_text_hashes(lazy)
    with demo_store.ws.transaction() as con:
        con.execute("UPDATE documents SET text = text || ' edited' WHERE doc_id = ?", [lazy.ids[250]])
    enc = Encoder(ModelSpec(model=str(tiny_model)), tmp_path / "cache", chunk_texts=50)
    with pytest.raises(EmbtuiError, match="changed while it was being encoded"):
        enc.encode(lazy, "document")
    assert len(enc.cache("document").index()) == 200  # the two windows before it, and nothing else


def _eval(store: Store, model: Path, **kw):  # noqa: ANN003
    return run_evaluation(store, EvalRequest("demo", ModelSpec(model=str(model), batch_size=16), ks=(10, 100),
                                             **kw))


def test_windowed_eval_equals_whole_corpus_eval(demo_store: Store, tiny_model: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A corpus bigger than its window is read, hashed and encoded window by window: the vectors
    and metrics equal an encode of the whole text list, and no read holds more than one window."""
    whole = Store.open(tmp_path / "whole")
    from embtui.data.beir import import_beir
    from tests.conftest import DEMO

    import_beir(whole, DEMO, "demo")
    expected = _eval(whole, tiny_model)

    monkeypatch.setattr("embtui.store.api.CORPUS_WINDOW", 64)
    log = _ReadLog(monkeypatch)
    got = _eval(demo_store, tiny_model)
    assert log.largest <= 64 and len(log.slices) >= 2 * (400 // 64), log.slices  # hash pass + encode pass
    assert got.run.info["corpus_hash"] == expected.run.info["corpus_hash"]
    assert expected.metrics.aggregate and got.metrics.aggregate.keys() == expected.metrics.aggregate.keys()
    for name, value in expected.metrics.aggregate.items():
        assert got.metrics.aggregate[name] == pytest.approx(value, abs=1e-6), name
    assert got.rankings.keys() == expected.rankings.keys()
    spec = ModelSpec(model=str(tiny_model))
    texts = whole.corpus("demo").encode_texts()
    in_window, _ = Encoder(spec, demo_store.ws.cache_dir).encode(texts, "document")  # all cached now
    in_list, _ = Encoder(spec, tmp_path / "plain-cache").encode(texts, "document")
    np.testing.assert_allclose(in_window, in_list, atol=1e-6)


class _TripAfter(CancelToken):
    def __init__(self, checks: int) -> None:
        super().__init__()
        self.left = checks

    def check(self) -> None:
        self.left -= 1
        if self.left < 0:
            self.cancel()
        super().check()


def test_windowed_encode_resumes_with_the_same_batches(demo_store: Store, tiny_model: Path, tmp_path: Path) -> None:
    spec = ModelSpec(model=str(tiny_model), batch_size=8)
    full_corpus = demo_store.corpus("demo", lazy=True)
    full_corpus.window = 90
    events = []
    full, _ = Encoder(spec, tmp_path / "a", chunk_texts=16).encode(full_corpus, "document",
                                                                   progress=events.append)
    done = [e.done for e in events if e.stage == "encode documents"]
    assert done == sorted(done) and done[-1] == 400 and len(done) >= 4  # one count across the windows
    cut = demo_store.corpus("demo", lazy=True)
    cut.window = 90
    with pytest.raises(Cancelled):  # stopped in the second window
        Encoder(spec, tmp_path / "b", chunk_texts=16).encode(cut, "document", cancel=_TripAfter(26))
    resumed, stats = Encoder(spec, tmp_path / "b", chunk_texts=16).encode(cut, "document")
    assert 90 < stats.cached < 400 and stats.encoded == 400 - stats.cached
    np.testing.assert_array_equal(full, resumed)


def test_a_live_query_reads_its_hits_by_id_not_the_corpus(demo_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a corpus past LIVE_EAGER_MAX_DOCS the Query pane's searcher holds the ids only: a hit's
    title and text are looked up by id (no window read), and equal what the eager corpus holds."""
    from embtui.engine.live import LiveSearcher

    monkeypatch.setattr("embtui.engine.live_base.LIVE_EAGER_MAX_DOCS", 100)

    eager = demo_store.corpus("demo")
    lazy = demo_store.corpus("demo", lazy=True)
    rows = [399, 0, 17, 17]
    assert lazy.documents_at(rows) == [(eager.titles[i], eager.texts[i]) for i in rows]
    searcher = LiveSearcher(demo_store, "demo", ModelSpec("bm25"))
    searcher.prepare()  # builds BM25 from windows
    log = _ReadLog(monkeypatch)
    hits = searcher.search("cancer cells protein", k=5)
    assert len(hits) == 5 and not log.slices and searcher.corpus.lazy
    row_of = {d: i for i, d in enumerate(eager.ids)}
    for hit in hits:
        assert (hit.title, hit.text) == (eager.titles[row_of[hit.doc_id]], eager.texts[row_of[hit.doc_id]])
    monkeypatch.undo()
    small = LiveSearcher(demo_store, "demo", ModelSpec("bm25"))
    assert [h.doc_id for h in small.search("cancer cells protein", k=5)] == [h.doc_id for h in hits]
    assert not small.corpus.lazy  # 400 documents: held, a query never waits on the database
