"""model2vec static models: run as model2vec runs them (its encode drops unknown tokens and cuts at
max_length; sentence-transformers' StaticEmbedding.from_model2vec does neither), so their vectors
equal model2vec's own — a static model built here with token weights and a vocabulary mapping as
tokenlearn models have, and the real tokenlearn-static-model when present, scored like any model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("model2vec", reason="model2vec is not installed")

from embtui.engine.encode import Encoder  # noqa: E402
from embtui.engine.loading import is_model2vec  # noqa: E402
from embtui.engine.models import ModelSpec, bundled_minilm_path  # noqa: E402

TEXTS = ["A deficiency of vitamin B12 increases blood levels of homocysteine.",
         "The cat sat on the mat", "0-dimensional biomaterials show inductive properties.", "x"]


@pytest.fixture(scope="module")
def static_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MiniLM's WordPiece tokenizer, 500 random 16-d vectors, a token -> vector mapping and
    per-token weights: the parts of a quantised tokenlearn model, saved by model2vec itself."""
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(bundled_minilm_path() / "tokenizer.json"))
    rng = np.random.default_rng(0)
    n = tok.get_vocab_size()
    model = StaticModel(vectors=rng.normal(size=(500, 16)).astype(np.float32), tokenizer=tok, normalize=True,
                        weights=rng.uniform(0.5, 2.0, n).astype(np.float32),
                        token_mapping=rng.integers(0, 500, n).astype(np.int64))
    out = tmp_path_factory.mktemp("static") / "m2v"
    model.save_pretrained(str(out))
    return out


def test_vectors_are_model2vecs_own(static_model: Path, tmp_path: Path) -> None:
    from model2vec import StaticModel

    assert is_model2vec(static_model) and not is_model2vec(bundled_minilm_path())
    ours, _ = Encoder(ModelSpec(str(static_model)), tmp_path, device="cpu").encode(TEXTS, "document")
    ref = StaticModel.from_pretrained(str(static_model)).encode(TEXTS)
    ref = ref / np.maximum(np.linalg.norm(ref, axis=1, keepdims=True), 1e-12)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    # the unknown token is dropped, as model2vec does (a text of unknown characters only: zeros)
    weird, _ = Encoder(ModelSpec(str(static_model)), tmp_path, device="cpu").encode(["\u2603\u2603"], "query")
    np.testing.assert_allclose(weird, StaticModel.from_pretrained(str(static_model)).encode(["\u2603\u2603"]),
                               atol=1e-6)


def test_other_precisions_are_refused_for_a_static_model(static_model: Path, tmp_path: Path) -> None:
    from embtui.errors import EmbtuiError

    with pytest.raises(EmbtuiError, match="static model2vec model: precision fp32 only"):
        Encoder(ModelSpec(str(static_model), precision="onnx"), tmp_path, device="cpu").model()


REAL = Path(os.environ.get("EMBTUI_TEST_MODELS", Path.home() / ".cache" / "embtui" / "models")) / \
    "tokenlearn-static-model"


@pytest.mark.skipif(not (REAL / "model.safetensors").exists(),
                    reason="tokenlearn-static-model not prepared: run benchmarks/fetch_models.py")
def test_the_real_static_model_scores_as_model2vec_says(demo_store) -> None:
    import pytrec_eval
    from model2vec import StaticModel

    from embtui.api.evaluations import plan_evaluation, run_inline

    [o] = run_inline(plan_evaluation(demo_store, "demo", [str(REAL)], split="test", device="cpu"))
    assert o.run.info["embedding_dim"] == 64
    corpus, queries = demo_store.corpus("demo"), demo_store.queries("demo", "test")
    m = StaticModel.from_pretrained(str(REAL))
    d = m.encode(corpus.encode_texts())
    q = m.encode(list(queries.values()))
    d, q = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (d, q))
    scores = q @ d.T
    run = {qid: {corpus.ids[j]: float(scores[i, j]) for j in np.argsort(-scores[i])[:100]}
           for i, qid in enumerate(queries)}
    res = pytrec_eval.RelevanceEvaluator(demo_store.qrels("demo", "test"), {"ndcg_cut.10"}).evaluate(run)
    assert o.run.metrics["ndcg@10"] == pytest.approx(np.mean([v["ndcg_cut_10"] for v in res.values()]), abs=1e-4)


def test_a_static_model_encodes_in_big_batches_and_big_chunks(static_model: Path, tmp_path: Path) -> None:
    """numpy needs no OOM-safe small batches: a static model is sent at least 1,024 texts a call and
    its cache chunks hold at least 8,192 (fewer tokenizer calls and cache writes per text), with
    the same vectors as model2vec's own encode."""
    from model2vec import StaticModel

    from embtui.engine.cache import EmbeddingCache

    texts = [f"text {i} about {'cells ' * (i % 5)}" for i in range(9000)]
    enc = Encoder(ModelSpec(str(static_model)), tmp_path, device="cpu")
    ours, stats = enc.encode(texts, "document")
    assert stats.batch_size == 1024
    cache: EmbeddingCache = enc.cache("document")
    assert len(cache.chunk_ids()) == 2  # 8,192 + 808 texts
    ref = StaticModel.from_pretrained(str(static_model)).encode(texts)
    ref /= np.maximum(np.linalg.norm(ref, axis=1, keepdims=True), 1e-12)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
