"""Understanding the data: the dataset profile (truncation against the model's own tokenizer, lexical
overlap against a direct computation), the space (PCA against numpy's SVD, clustering metrics
against scikit-learn), drift (MMD against a direct double sum, PSI against its formula; SciFact
halves, SciFact against Natural Questions, a drift that starts in week 3), query logs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from embtui.analysis import dataset as ds
from embtui.analysis import drift as dr
from embtui.analysis import space as sp
from embtui.cli import main
from tests.conftest import REPO

NQ = REPO / "tests" / "data" / "nq_questions.txt"
MINILM = "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def demo_ws_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo as the app seeds it, made once for the module and never changed."""
    from embtui.api.projects import ensure_demo, evaluate_demo
    from embtui.api.workspace import Store

    store = Store.open(tmp_path_factory.mktemp("understand") / "ws")
    assert ensure_demo(store)
    assert [r.run.status for r in evaluate_demo(store)] == ["done", "done"]
    return store.ws.root


@pytest.fixture()
def demo_ws(demo_ws_template: Path, tmp_path: Path):
    """The demo as the app seeds it: project 'demo', MiniLM's vectors cached, bm25 and MiniLM runs
    (a private copy of the module's template)."""
    import shutil

    from embtui.api.workspace import Store

    shutil.copytree(demo_ws_template, tmp_path / "ws")
    return Store.open(tmp_path / "ws")


def blobs(seed: int = 0, n: int = 60, d: int = 16, centers: int = 3):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 4, (centers, d))
    labels = np.repeat(np.arange(centers), n // centers)
    return means[labels] + rng.normal(0, 1, (len(labels), d)), labels


# ------------------------------------------------------------------------------------------ space
def test_pca_equals_numpy_svd_of_the_centred_data() -> None:
    x, _ = blobs(d=10)
    proj = sp.pca(x, 2)
    xc = x - x.mean(0)
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    ref = xc @ vt[:2].T
    for j in range(2):  # a component's sign is a convention: compare up to it
        sign = np.sign(ref[:, j] @ proj.coords[:, j])
        np.testing.assert_allclose(proj.coords[:, j], sign * ref[:, j], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(proj.explained, (s[:2] ** 2) / np.sum(s ** 2), rtol=1e-6)


def test_clustering_metrics_equal_scikit_learn_and_purity_its_definition() -> None:
    from sklearn import metrics as skm

    x, truth = blobs(seed=3)
    pred = np.r_[truth[:50], (truth[50:] + 1) % 3]  # a few points put in the wrong cluster
    names = np.array(["a", "b", "c"])[truth]
    q = sp.clustering_quality(x, pred, list(names))
    assert q.nmi == pytest.approx(skm.normalized_mutual_info_score(names, pred))
    assert q.ari == pytest.approx(skm.adjusted_rand_score(names, pred))
    assert q.v_measure == pytest.approx(skm.v_measure_score(names, pred))
    assert q.silhouette == pytest.approx(skm.silhouette_score(x, pred, metric="cosine"))
    majority = sum(np.bincount(truth[pred == c]).max() for c in np.unique(pred))
    assert q.purity == pytest.approx(majority / len(pred)) and q.purity < 1
    # unlabelled points (None) are left out of the label metrics
    partial = list(names[:40]) + [None] * 20
    q2 = sp.clustering_quality(x, pred, partial)
    assert q2.n_labelled == 40
    assert q2.nmi == pytest.approx(skm.normalized_mutual_info_score(names[:40], pred[:40]))


def test_anisotropy_and_effective_dimensionality_against_direct_formulas() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 8)) + 3.0  # a common offset: all vectors point one way
    v = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = v @ v.T
    exact = (sims.sum() - np.trace(sims)) / (200 * 199)
    assert sp.anisotropy(x, pairs=200_000) == pytest.approx(exact, abs=0.01) and exact > 0.5
    lam = np.linalg.eigvalsh(np.cov(x.T))
    eff = sp.effective_dimensionality(lam)
    assert eff["participation_ratio"] == pytest.approx(lam.sum() ** 2 / (lam ** 2).sum())
    p = lam / lam.sum()
    assert eff["entropy_rank"] == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert sp.effective_dimensionality(np.ones(5))["participation_ratio"] == pytest.approx(5)


# ------------------------------------------------------------------------------------------ drift
def test_mmd_equals_a_direct_double_sum_and_permutation_p_is_calibrated() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(30, 5)), rng.normal(size=(25, 5))
    z = np.vstack([sp.normalize(a), sp.normalize(b)])
    k, gamma = dr.rbf_kernel_matrix(z)
    d2 = np.array([[np.sum((p - q) ** 2) for q in z] for p in z])
    assert gamma == pytest.approx(1 / np.median(d2[np.triu_indices(55, 1)]))
    kk = np.exp(-gamma * d2)
    m, n = 30, 25
    direct = (sum(kk[i, j] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
              + sum(kk[i, j] for i in range(m, 55) for j in range(m, 55) if i != j) / (n * (n - 1))
              - 2 * kk[:m, m:].sum() / (m * n))
    res = dr.mmd_test(a, b, permutations=300)
    assert res.mmd2 == pytest.approx(direct, abs=1e-6)  # float32 unit vectors on both sides
    # the batched permutation statistics equal recomputing MMD on each permuted kernel matrix
    from scipy.stats import permutation_test

    def stat(i, j):  # samples as row indices into the pooled kernel matrix
        idx = np.r_[i, j].astype(int)
        return dr.mmd2_unbiased(kk[np.ix_(idx, idx)], len(i))

    ref = permutation_test((np.arange(m), np.arange(m, 55)), stat, n_resamples=300, alternative="greater",
                           random_state=0, vectorized=False)
    assert abs(res.p_value - ref.pvalue) < 0.12  # both estimate the same null from 300 draws
    shifted = dr.mmd_test(a, b + 1.5, permutations=300)
    assert shifted.p_value < 0.01 and res.p_value > 0.05


def test_psi_and_centroid_shift_against_their_formulas() -> None:
    r, c = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.3, 0.5])
    assert dr.psi(r, c).sum() == pytest.approx(sum((ci - ri) * np.log(ci / ri) for ri, ci in zip(r, c)))
    a, b = np.array([[1.0, 0.0], [1.0, 0.2]]), np.array([[0.0, 1.0], [0.2, 1.0]])
    ma, mb = a.mean(0), b.mean(0)
    assert dr.centroid_shift(a, b) == pytest.approx(1 - ma @ mb / np.linalg.norm(ma) / np.linalg.norm(mb))


def test_domain_auc_is_half_for_one_distribution_and_near_one_for_two() -> None:
    rng = np.random.default_rng(4)
    same = dr.domain_auc(rng.normal(size=(300, 12)), rng.normal(size=(300, 12)))
    apart = dr.domain_auc(rng.normal(size=(300, 12)), rng.normal(size=(300, 12)) + 0.8)
    assert abs(same - 0.5) < 0.08 and apart > 0.95


def test_a_new_topic_lands_outside_every_reference_cluster() -> None:
    x, _ = blobs(seed=5, n=300, d=16, centers=3)
    rng = np.random.default_rng(0)
    new = rng.normal(0, 1, (100, 16)) + rng.normal(0, 6, 16)
    total, clusters, labels = dr.cluster_shift(x[::2], np.vstack([x[1::2][:100], new]), k=3)
    top = clusters[0]
    assert top.cluster == 3 and top.current_share > 0.45 and top.reference_share < 0.1
    assert total > 0.25 and set(labels[100:].tolist()) == {3}


# --------------------------------------------------------------------------------------- profile
def test_truncation_matches_a_direct_count_with_the_models_own_tokenizer(demo_ws) -> None:
    from transformers import AutoTokenizer

    from embtui.api.data import inspect
    from embtui.engine.models import bundled_minilm_path

    prof = inspect(demo_ws, "demo", [MINILM])
    (m,) = prof["models"]
    tok = AutoTokenizer.from_pretrained(str(bundled_minilm_path()))
    texts = demo_ws.corpus("demo").encode_texts()
    lengths = [len(ids) for ids in tok(texts, truncation=False)["input_ids"]]
    limit = 256  # the model's max_seq_length (sentence_bert_config.json)
    assert m["truncation"]["max_length"] == limit
    assert m["truncation"]["truncated"] == sum(n > limit for n in lengths)
    assert m["truncation"]["rate"] == pytest.approx(np.mean([n > limit for n in lengths]))
    rel = {d for s in ("test", "train") for j in demo_ws.qrels("demo", s).values() for d, g in j.items() if g > 0}
    ids = demo_ws.corpus("demo").ids
    assert m["truncation"]["relevant_truncated"] == sum(n > limit for n, d in zip(lengths, ids) if d in rel)
    assert m["tokens"]["max"] == max(lengths) and m["tokens"]["mean"] == pytest.approx(np.mean(lengths))
    assert m["unk_rate"] < 0.001 and m["pieces_per_word"] > 1
    assert all(len(w["split"]) == w["pieces"] > 2 for w in m["most_split"])
    assert m["near_duplicates"]["computed"]  # the demo's vectors are in the cache


def test_lexical_overlap_matches_a_direct_computation(demo_ws) -> None:
    import Stemmer
    from bm25s.stopwords import STOPWORDS_EN

    from embtui.api.data import inspect

    prof = inspect(demo_ws, "demo")
    stem = Stemmer.Stemmer("english")
    stop = set(STOPWORDS_EN)

    def terms(text):
        return {stem.stemWord(w) for w in re.findall(r"(?u)\b\w\w+\b", text.lower()) if w not in stop}

    corpus = demo_ws.corpus("demo")
    doc = dict(zip(corpus.ids, corpus.encode_texts()))
    queries = demo_ws.queries("demo")
    qrels = demo_ws.qrels("demo", "test")
    per = []
    for q, judged in qrels.items():
        qt = terms(queries[q])
        per.append(np.mean([len(qt & terms(doc[d])) / len(qt) for d, g in judged.items() if g > 0]))
    got = prof["lexical_overlap"]["test"]["summary"]
    assert got["count"] == len(per)
    assert got["mean"] == pytest.approx(np.mean(per), abs=1e-9)
    assert got["p50"] == pytest.approx(np.median(per), abs=1e-9)
    lv = prof["lexical_vs_dense"]  # the demo's bm25 and MiniLM runs
    assert lv["split"] == "test" and lv["queries"] == 100 and -1 <= lv["spearman"] <= 1


def test_duplicates_empty_texts_and_unjudged_queries_are_found(tmp_path: Path) -> None:
    from embtui.api.data import inspect
    from embtui.api.projects import import_beir
    from embtui.api.workspace import Store

    root = tmp_path / "beir"
    root.mkdir()
    docs = [{"_id": "d1", "title": "", "text": "Vitamin D and bones."},
            {"_id": "d2", "title": "", "text": "vitamin  d AND bones."},
            {"_id": "d3", "title": "", "text": "Something else entirely."},
            {"_id": "d4", "title": "", "text": " "}]
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs))
    (root / "queries.jsonl").write_text("\n".join(json.dumps({"_id": q, "text": t}) for q, t in
                                                  [("q1", "vitamin d"), ("q2", "bones"), ("q3", "unjudged one")]))
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t0\nq2\td2\t1\n")
    store = Store.open(tmp_path / "ws")
    import_beir(store, root, "p")
    prof = inspect(store, "p")
    assert prof["duplicates"]["documents"]["examples"] == [["d1", "d2"]]
    assert prof["empty"]["documents_count"] == 1 and prof["unjudged_queries"]["count"] == 1
    (j,) = prof["judgments"]
    assert j["grades"] == {"0": 1, "1": 1, "2": 1} and j["judgments"] == 3 and j["judged_queries"] == 2


def test_near_duplicates_are_exact_pairs_above_the_threshold() -> None:
    rng = np.random.default_rng(0)
    x = sp.normalize(rng.normal(size=(300, 8)))
    x[7] = x[3] + 0.01
    x[250] = x[10] + 0.02
    pairs, total = ds.near_duplicates(x, 0.99, chunk=64)
    v = sp.normalize(x)
    sims = v @ v.T
    want = {(i, j) for i in range(300) for j in range(i + 1, 300) if sims[i, j] >= 0.99}
    assert {(i, j) for i, j, _ in pairs} == want and total == len(want) and (3, 7) in want and (10, 250) in want


# ------------------------------------------------------------------------------------ query logs
def test_query_log_import_errors_name_file_line_and_field(tmp_path: Path, demo_ws, capsys) -> None:
    bad = tmp_path / "log.jsonl"
    bad.write_text('{"text": "fine", "timestamp": "2026-11-02T10:00:00Z"}\n{"text": "x", "timestamp": "soon"}\n')
    code = main(["--workspace", str(demo_ws.ws.root), "import", "queries", str(bad), "--project", "demo",
                 "--log", "prod"])
    err = capsys.readouterr().err
    assert code == 2 and "log.jsonl:2" in err and "'timestamp'" in err and "soon" in err
    assert demo_ws.list_query_logs("demo") == []  # nothing stored
    bad.write_text('{"query": ""}\n')
    assert main(["--workspace", str(demo_ws.ws.root), "import", "queries", str(bad), "--project", "demo",
                 "--log", "prod"]) == 2
    assert "log.jsonl:1: field 'query'" in capsys.readouterr().err
    good = tmp_path / "log.csv"
    good.write_text("text,timestamp\nvitamin d,1764000000\nbones,\n")
    assert main(["--workspace", str(demo_ws.ws.root), "import", "queries", str(good), "--project", "demo",
                 "--log", "prod"]) == 0
    assert "2 queries, 1 with a timestamp" in capsys.readouterr().out
    assert demo_ws.query_log("demo", "prod") == (["vitamin d", "bones"], [1764000000.0, None])


# ------------------------------------------------------------------------------------------ real drift
@pytest.mark.slow
def test_drift_halves_none_nq_strong_and_a_mixed_third_week_flagged(demo_ws, tmp_path: Path, capsys) -> None:
    from embtui.api.data import drift, latest_drift

    halves = drift(demo_ws, "demo", MINILM, "queries@half1", "queries@half2")
    assert halves["mmd"]["p_value"] > 0.05 and abs(halves["auc"] - 0.5) < 0.1 and not halves["drifted"]
    nq = [line.strip() for line in NQ.read_text().splitlines() if line.strip()]
    demo_ws.save_query_log("demo", "nq", nq[:150], [None] * 150)
    other = drift(demo_ws, "demo", MINILM, "queries", "log:nq")
    assert other["mmd"]["p_value"] < 0.01 and other["auc"] > 0.9 and other["drifted"]
    assert other["coverage"]["uncovered_share"] > 0.5  # SciFact's corpus does not answer web questions
    # a log whose third week mixes web questions into the claims of the other half
    import random

    claims = list(demo_ws.queries("demo").values())
    order = list(range(len(claims)))
    random.Random(20240607).shuffle(order)
    rest = [claims[i] for i in order[75:]]
    week = 7 * 86400
    t0 = 1_764_547_200  # Monday 2025-12-01 00:00 UTC
    texts = rest[:25] + rest[25:50] + rest[50:75] + nq[200:240]
    stamps = ([t0 + i * 3600 for i in range(25)] + [t0 + week + i * 3600 for i in range(25)]
              + [t0 + 2 * week + i * 3600 for i in range(65)])
    log = tmp_path / "prod.jsonl"
    log.write_text("\n".join(json.dumps({"text": t, "timestamp": s}) for t, s in zip(texts, stamps)))
    assert main(["--workspace", str(demo_ws.ws.root), "import", "queries", str(log), "--project", "demo",
                 "--log", "prod"]) == 0
    capsys.readouterr()
    code = main(["--workspace", str(demo_ws.ws.root), "drift", "--project", "demo", "--model", MINILM,
                 "--reference", "queries@half1", "--current", "log:prod", "--window", "week", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert code == 0
    flags = {w["window"]: w["drifted"] for w in res["windows"]}
    assert flags == {"2025-W49": False, "2025-W50": False, "2025-W51": True}
    assert latest_drift(demo_ws, "demo")["current"] == "log:prod"  # kept for the alert


def test_space_cli_draws_points_and_caches_the_projection(demo_ws, capsys) -> None:
    root = str(demo_ws.ws.root)
    assert main(["--workspace", root, "space", "--project", "demo", "--model", MINILM, "--width", "40",
                 "--height", "10"]) == 0
    out = capsys.readouterr().out
    assert "400 documents" in out and "anisotropy" in out and "silhouette" in out
    assert any(0x2800 < ord(ch) <= 0x28FF for ch in out)  # braille dots
    files = list((demo_ws.ws.cache_dir / "projections").glob("*.npy"))
    assert len(files) == 1
    # a damaged cached projection is computed again, not drawn
    data = bytearray(files[0].read_bytes())
    data[-4:] = b"\x00\x00\x80\x7f"
    files[0].write_bytes(bytes(data))
    assert main(["--workspace", root, "space", "--project", "demo", "--model", MINILM, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert any("computed again" in w for w in res["warnings"])
    assert res["stats"]["clustering"]["k"] == 8 and res["points"] == 500


def test_inspect_cli_prints_the_profile(demo_ws, capsys) -> None:
    assert main(["--workspace", str(demo_ws.ws.root), "inspect", "--project", "demo", "--model", MINILM]) == 0
    out = capsys.readouterr().out
    assert "truncated: 279 documents (69.8%)" in out and "lexical overlap test" in out and "│" in out


def test_umap_projection_equals_umap_learn_on_the_same_vectors_and_is_cached(demo_ws) -> None:
    pytest.importorskip("umap")
    import umap

    from embtui.api.data import build_space

    view = build_space(demo_ws, "demo", MINILM, method="umap", with_queries=False)
    assert view.coords.shape == (400, 2) and np.isfinite(view.coords).all()
    from embtui.engine.space import embed

    vecs = embed(demo_ws, MINILM, demo_ws.corpus("demo").encode_texts(), "document")
    ref = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=sp.SEED).fit_transform(vecs)
    np.testing.assert_allclose(view.coords, ref, atol=1e-4)
    again = build_space(demo_ws, "demo", MINILM, method="umap", with_queries=False)  # from the cache
    assert np.array_equal(again.coords, view.coords) and again.seconds["projection"] < view.seconds["projection"]


def test_judged_timestamped_queries_get_retrieval_quality_per_window(tmp_path: Path) -> None:
    """Queries whose metadata carries a timestamp: drift per week with the run's NDCG@10 beside it,
    equal to the mean of the stored per-query values of that week."""
    import shutil

    from embtui.api.data import drift
    from embtui.api.evaluations import plan_evaluation, run_inline
    from embtui.api.models import ModelSpec
    from embtui.api.projects import import_beir
    from embtui.api.workspace import Store
    from embtui.engine.demo import seed_demo_vectors
    from tests.conftest import DEMO

    src = tmp_path / "demo"
    shutil.copytree(DEMO, src)
    test_ids = [line.split("\t")[0] for line in (src / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    week = {q: i % 2 for i, q in enumerate(dict.fromkeys(test_ids))}
    rows = [json.loads(x) for x in (src / "queries.jsonl").read_text().splitlines() if x.strip()]
    t0 = 1_764_547_200
    for r in rows:
        if r["_id"] in week:
            r["metadata"] = {"timestamp": t0 + week[r["_id"]] * 7 * 86400 + 3600}
    (src / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    store = Store.open(tmp_path / "ws")
    import_beir(store, src, "p")
    seed_demo_vectors(store)
    store.save_model(MINILM, ModelSpec(MINILM).to_dict())
    [outcome] = run_inline(plan_evaluation(store, "p", [MINILM], split="test"))
    res = drift(store, "p", MINILM, "train", "test", window="week", save=False)
    per = store.run_query_metrics(outcome.run.id)
    assert res["quality"] == {"metric": "ndcg@10", "run": outcome.run.id}
    assert [w["window"] for w in res["windows"]] == ["2025-W49", "2025-W50"]
    for w, k in zip(res["windows"], (0, 1)):
        want = np.mean([per[q]["ndcg@10"] for q, wk in week.items() if wk == k])
        assert w["ndcg@10"] == pytest.approx(want) and w["n"] == sum(1 for v in week.values() if v == k)
    from embtui.api.textplot import drift_lines

    assert "ndcg@10 (run" in "\n".join(drift_lines(res))


def test_the_app_never_encodes_a_corpus_behind_the_users_back(demo_store, tiny_model) -> None:
    from embtui.api.data import build_space
    from embtui.api.models import ModelSpec
    from embtui.errors import EmbtuiError

    demo_store.save_model("tiny", ModelSpec(str(tiny_model), name="tiny", device="cpu").to_dict())
    with pytest.raises(EmbtuiError, match="not in tiny's embedding cache yet.*evaluate tiny"):
        build_space(demo_store, "demo", "tiny", encode=False)
    assert not (demo_store.ws.cache_dir / "projections").exists()
    view = build_space(demo_store, "demo", "tiny", with_queries=False)  # the CLI encodes what is missing
    assert view.coords.shape == (400, 2)
    assert build_space(demo_store, "demo", "tiny", encode=False).kinds.count("doc") == 400
