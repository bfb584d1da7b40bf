"""Fine-tuning: training data, dev split, leakage check, mined and run negatives, the trainer job with
curves and lineage, kill + resume, the gate and the A/B report — real models (the tiny BERT built
locally, MiniLM where the numbers matter), a real workspace, real worker processes."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from embtui.engine.training.data import build_training_data, normalize_query
from embtui.engine.training.finetune import Curves, TrainConfig
from embtui.engine.training.run import FinetuneRequest, read_lineage
from embtui.errors import EmbtuiError

TINY = dict(epochs=1, batch_size=8, max_seq_length=32, eval_steps=2, dev_corpus=None)


def wait_for(cond, timeout=240.0, what="condition"):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# -- data, dev split, leakage ----------------------------------------------------------------------
def test_pairs_and_holdout_dev_split_are_disjoint_and_seeded(demo_store):
    data = build_training_data(demo_store, "demo", dev_fraction=0.2, seed=3)
    train_q = set(data.train_qids)
    assert data.dev_definition == {"kind": "holdout", "split": "train", "fraction": 0.2, "seed": 3,
                                   "queries": len(data.dev_qrels)}
    assert len(data.dev_qrels) == 10 and not train_q & set(data.dev_qrels)
    qrels = demo_store.qrels("demo", "train")
    assert len(data.pairs) == sum(1 for q in train_q for g in qrels[q].values() if g > 0)
    test_q = set(demo_store.qrels("demo", "test"))
    assert not train_q & test_q and not set(data.dev_qrels) & test_q
    again = build_training_data(demo_store, "demo", dev_fraction=0.2, seed=3)
    assert again.dev_qrels == data.dev_qrels and again.pairs == data.pairs
    other = build_training_data(demo_store, "demo", dev_fraction=0.2, seed=4)
    assert other.dev_qrels != data.dev_qrels


def _beir(folder: Path, queries: dict[str, str], train: list[tuple[str, str]], test: list[tuple[str, str]],
          dev: list[tuple[str, str]] | None = None) -> Path:
    (folder / "qrels").mkdir(parents=True)
    docs = sorted({d for _, d in train + test + (dev or [])} | {f"x{i}" for i in range(8)})
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, "title": "", "text": f"document {d} text"}) + "\n"
                                                 for d in docs))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()))
    for split, rows in (("train", train), ("test", test), ("dev", dev)):
        if rows:
            (folder / "qrels" / f"{split}.tsv").write_text(
                "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in rows))
    return folder


def test_leakage_check_refuses_training_queries_equal_to_test_queries(store, tmp_path):
    from embtui.data.beir import import_beir

    queries = {"t1": "Does aspirin reduce  STROKE risk?", "t2": "vitamin d and bones",
               "t3": "a train query", "t4": "another train query", "t5": "third one",
               "s1": "does aspirin reduce stroke risk", "s2": "a test query"}
    import_beir(store, _beir(tmp_path / "leaky", queries,
                             [("t1", "a"), ("t2", "b"), ("t3", "c"), ("t4", "d"), ("t5", "e")],
                             [("s1", "a"), ("s2", "f")], dev=[("t2", "b")]), "leaky")
    assert normalize_query(queries["t1"]) == normalize_query(queries["s1"])
    with pytest.raises(EmbtuiError) as err:
        build_training_data(store, "leaky", dev_split="dev")
    text = str(err.value)
    assert "leakage: 2 of 5 training queries" in text  # t1 = test s1, t2 is the dev query itself
    assert "train query t1 = test query s1" in text and "--drop-leaked" in text
    data = build_training_data(store, "leaky", dev_split="dev", drop_leaked=True)
    assert data.train_qids == ["t3", "t4", "t5"]
    assert data.leakage["leaked_queries"] == 2 and data.leakage["dropped_queries"] == ["t1", "t2"]
    # the overlap of training positives with test judgments is reported, not refused
    assert data.leakage["positives_judged_in_test"] == 0
    leaky = build_training_data(store, "leaky", dev_split="dev", drop_leaked=True, test_split="test")
    assert "training positive" in leaky.leakage["note"]
    # the job API refuses before any worker starts, and leaves the store as it was
    from embtui.jobs.api import list_jobs, submit_finetune

    with pytest.raises(EmbtuiError, match="leakage"):
        submit_finetune(store.ws, FinetuneRequest("leaky", "all-MiniLM-L6-v2", "x", dev_split="dev"),
                        start=False)
    assert list_jobs(store.ws) == []


def test_holdout_keeps_identical_queries_on_one_side(store, tmp_path):
    from embtui.data.beir import import_beir

    queries = {f"q{i}": f"query number {i // 2}" for i in range(20)}  # pairs of twins
    queries["s"] = "unrelated test query"
    import_beir(store, _beir(tmp_path / "twins", queries, [(q, f"d{q}") for q in queries if q != "s"],
                             [("s", "dx")]), "twins")
    data = build_training_data(store, "twins", dev_fraction=0.3, seed=1)
    train_texts = {normalize_query(queries[q]) for q in data.train_qids}
    dev_texts = {normalize_query(queries[q]) for q in data.dev_qrels}
    assert not train_texts & dev_texts and data.leakage["leaked_queries"] == 0


def _minilm(store):
    """all-MiniLM-L6-v2's spec, with the demo's vectors by that model (shipped with embtui, the ones
    the app's demo seeds) in ``store``'s cache: its evaluations on the demo read them, no encode."""
    from embtui.engine.demo import seed_demo_vectors
    from embtui.engine.models import ModelSpec

    assert seed_demo_vectors(store) == "seeded 550 vectors"  # 400 documents, 150 queries
    return ModelSpec("all-MiniLM-L6-v2")


# -- hard negatives --------------------------------------------------------------------------------
def test_mined_negatives_come_from_the_cache_and_equal_a_numpy_top_k(demo_store):
    from embtui.engine.evaluate import EvalRequest, run_evaluation
    from embtui.engine.training.negatives import mine

    spec = _minilm(demo_store)
    run_evaluation(demo_store, EvalRequest("demo", spec, split="train"))  # reads the cache
    data = build_training_data(demo_store, "demo", dev_fraction=0.2)
    mined, rep = mine(demo_store, data, spec, num_negatives=3)
    assert rep["documents_encoded_now"] == 0 and rep["documents_from_cache"] == 400
    assert rep["encoded_by_sentence_transformers"] == 0  # the prefilled cache files were used
    # independent: numpy top-k over the cached vectors, positives of the query excluded
    from embtui.engine.encode import Encoder

    corpus = demo_store.corpus("demo")
    enc = Encoder(spec, demo_store.ws.cache_dir, store=demo_store)
    d, _ = enc.encode(corpus.encode_texts(), "document")
    qrels = demo_store.qrels("demo", "train")
    for p in mined.pairs[:10]:
        q, _ = enc.encode([data.queries[p.qid]], "query")
        order = np.argsort(-(d @ q[0]), kind="stable")
        rel = {x for x, g in qrels[p.qid].items() if g > 0}
        want = [corpus.ids[i] for i in order if corpus.ids[i] not in rel][:3]
        assert list(p.negatives) == want
    # a document marked relevant in the Failures pane is never a negative of that query
    first = mined.pairs[0]
    demo_store.annotations.set_judgment("demo", "train", first.qid, first.negatives[0], 1)
    again, rep2 = mine(demo_store, data, spec, num_negatives=3)
    kept = next(p for p in again.pairs if (p.qid, p.doc_id) == (first.qid, first.doc_id))
    assert first.negatives[0] not in kept.negatives and rep2["excluded_relevant"] >= 1
    assert kept.negatives[:2] == first.negatives[1:3]


def test_negatives_from_a_run_skip_relevant_and_marked_documents(demo_store):
    from embtui.engine.evaluate import EvalRequest, run_evaluation
    from embtui.engine.training.negatives import from_run

    spec = _minilm(demo_store)
    run = run_evaluation(demo_store, EvalRequest("demo", spec, split="train")).run
    data = build_training_data(demo_store, "demo", dev_fraction=0.2)
    p0 = data.pairs[0]
    ranked = [d for d, _ in demo_store.run_rankings(run.id)[p0.qid]]
    top_other = next(d for d in ranked if d != p0.doc_id)
    demo_store.annotations.set_judgment("demo", "train", p0.qid, top_other, 1)
    out, rep = from_run(demo_store, data, run.id, num_negatives=2)
    got = next(p for p in out.pairs if p.qid == p0.qid)
    rel = {d for d, g in demo_store.qrels("demo", "train")[p0.qid].items() if g > 0} | {top_other}
    assert list(got.negatives) == [d for d in ranked if d not in rel][:2]
    assert rep["source"] == "run" and rep["run"] == run.id
    with pytest.raises(EmbtuiError, match="evaluate the model on --split train"):
        test_run = run_evaluation(demo_store, EvalRequest("demo", spec, split="test")).run
        from_run(demo_store, data, test_run.id)


# -- curves and warnings ---------------------------------------------------------------------------
def test_overfitting_and_below_base_warnings():
    c = Curves("ndcg@10", base_dev={"ndcg@10": 0.70})
    c.loss = [(1, 1.0), (2, 0.9), (3, 0.8)]
    c.dev = [(2, {"ndcg@10": 0.65})]
    assert c.check_warnings()[0].startswith("below the base: the first dev evaluation (step 2)")
    c.loss += [(4, 0.5), (5, 0.4), (6, 0.3)]
    c.dev += [(4, {"ndcg@10": 0.64}), (6, {"ndcg@10": 0.60})]
    new = c.check_warnings()
    assert len(new) == 1 and new[0].startswith("overfitting: dev ndcg@10 fell 0.6500 -> 0.6400 -> 0.6000")
    assert c.check_warnings() == []  # each kind fires once
    rising = Curves("ndcg@10", base_dev={"ndcg@10": 0.5}, dev=[(1, {"ndcg@10": 0.6}), (2, {"ndcg@10": 0.7}),
                                                              (3, {"ndcg@10": 0.8})], loss=[(1, 1.0), (3, 0.5)])
    assert rising.check_warnings() == []


def test_train_config_refuses_bad_values():
    for bad, msg in ((dict(loss="triplet"), "unknown loss"), (dict(batch_size=1), "batch of at least 2"),
                     (dict(precision="int8"), "training precision"), (dict(epochs=0), "--epochs"),
                     (dict(matryoshka=(0,)), "--matryoshka"), (dict(metric="p@3"), "dev metric")):
        with pytest.raises(EmbtuiError, match=msg):
            TrainConfig(**bad)
    with pytest.raises(EmbtuiError, match="needs a CUDA device"):
        from embtui.engine.training.finetune import train
        train(None, None, TrainConfig(precision="bf16"), {}, {}, Path("/nonexistent"), Path("/x"), device="cpu")


# -- the training job ------------------------------------------------------------------------------
def _register_tiny(store, tiny_model):
    from embtui.engine.models import ModelSpec

    store.save_model("tiny", ModelSpec(str(tiny_model), name="tiny").to_dict())


def test_finetune_inline_saves_a_loadable_model_with_lineage_and_compares_to_base(demo_store, tiny_model):
    from embtui.api.training import finetune, model_lineage

    _register_tiny(demo_store, tiny_model)
    req = FinetuneRequest("demo", "tiny", "tiny-ft", dev_fraction=0.2, hard_negatives=1,
                          config=TrainConfig(**TINY, loss="mnrl", matryoshka=(32, 16)))
    res = finetune(demo_store.ws, req)
    path = Path(res["path"])
    assert path == demo_store.ws.root / "models" / "tiny-ft"
    from sentence_transformers import SentenceTransformer

    vec = SentenceTransformer(str(path), device="cpu").encode(["a query"])
    assert vec.shape == (1, 32)
    lin = read_lineage(path)
    assert lin == model_lineage(demo_store, "tiny-ft")
    assert lin["base"]["name"] == "tiny" and lin["base"]["fingerprint"].startswith("sha256:")
    assert lin["data"]["hash"].startswith("sha256:") and lin["data"]["negatives"]["source"] == "mined"
    assert lin["dev"]["kind"] == "holdout" and lin["config"]["matryoshka"] == [32, 16]
    assert lin["config"]["seed"] == 42 and "sentence-transformers" in lin["versions"]
    steps = lin["steps"]
    # every eval_steps, and once more at the last step
    assert [s for s, _ in lin["curves"]["dev"]] == sorted(set(range(2, steps + 1, 2)) | {steps})
    assert lin["best_step"] in [s for s, _ in lin["curves"]["dev"]]
    best = max(m["ndcg@10"] for _, m in lin["curves"]["dev"])
    assert lin["best_dev"]["ndcg@10"] == best
    assert demo_store.get_model("tiny-ft")["model"] == str(path)
    assert not (demo_store.ws.root / "models" / ".tiny-ft.training" / "checkpoints").exists()
    # the test run of the new model and the base's, with the paired test
    runs = {r.id: r for r in demo_store.list_runs(project="demo", split="test")}
    assert runs[res["run"]["id"]].model_name == "tiny-ft" and runs[res["base_run"]["id"]].model_name == "tiny"
    from embtui.analysis.stats import paired_tests
    from embtui.engine.compare import run_values

    a = run_values(demo_store, runs[res["run"]["id"]], "ndcg@10")
    b = run_values(demo_store, runs[res["base_run"]["id"]], "ndcg@10")
    t = paired_tests([a[q] for q in sorted(a)], [b[q] for q in sorted(a)])
    assert res["vs_base"]["delta"] == pytest.approx(t.mean_delta, abs=1e-6)
    assert res["vs_base"]["p_permutation"] == pytest.approx(t.p_permutation)
    with pytest.raises(EmbtuiError, match="already exists"):
        finetune(demo_store.ws, req)


def _progress_step(ws: Path, job_id: str) -> int:
    from embtui.jobs.files import read_json

    c = read_json(ws / "models" / ".tiny-kill.training" / "curves.json")
    return int(c.get("step") or 0)


def test_killed_training_resumes_from_its_checkpoint_to_the_same_model(demo_store, tiny_model, monkeypatch):
    """SIGKILL mid-training, `jobs resume`: the final test metrics equal an uninterrupted run's."""
    from embtui.api.training import finetune
    from embtui.jobs.api import get_job, job_result, resume_job

    _register_tiny(demo_store, tiny_model)
    # two CPU jobs at a time: the uninterrupted reference trains here while the resumed worker starts
    monkeypatch.setenv("EMBTUI_JOBS_PER_DEVICE", "2")
    cfg = TrainConfig(epochs=3, batch_size=8, max_seq_length=32, eval_steps=3, dev_corpus=None, seed=5)
    res = finetune(demo_store.ws, FinetuneRequest("demo", "tiny", "tiny-kill", dev_fraction=0.2, config=cfg),
                   detach=True)
    job_id, ws = res["job_id"], demo_store.ws.root
    work = ws / "models" / ".tiny-kill.training" / "checkpoints"
    wait_for(lambda: any((p / "trainer_state.json").exists() for p in work.glob("checkpoint-*"))
             and _progress_step(ws, job_id) >= 5, what="a checkpoint and two more steps")
    pid = get_job(ws, job_id).pid
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: get_job(ws, job_id).state == "interrupted", what="the job seen as interrupted")
    resume_job(ws, job_id)
    ref = finetune(demo_store.ws, FinetuneRequest("demo", "tiny", "tiny-ref", dev_fraction=0.2, config=cfg))
    wait_for(lambda: get_job(ws, job_id).finished, timeout=300, what="the resumed job to finish")
    assert get_job(ws, job_id).state == "done", get_job(ws, job_id, log_lines=40).log_tail
    out = job_result(ws, job_id)
    assert "resuming from checkpoint-" in get_job(ws, job_id, log_lines=200).log_tail
    for m in ("ndcg@10", "recall@100", "mrr@10"):
        assert out["run"][m] == pytest.approx(ref["run"][m], abs=1e-3)
    assert out["best_step"] == ref["best_step"]


def test_cancelled_training_keeps_a_checkpoint_and_resumes(demo_store, tiny_model):
    from embtui.api.training import finetune
    from embtui.jobs.api import cancel_job, get_job, resume_job

    _register_tiny(demo_store, tiny_model)
    cfg = TrainConfig(epochs=4, batch_size=8, max_seq_length=32, eval_steps=50, dev_corpus=None)
    res = finetune(demo_store.ws, FinetuneRequest("demo", "tiny", "tiny-c", dev_fraction=0.2, config=cfg,
                                                  evaluate_test=False), detach=True)
    ws, job_id = demo_store.ws.root, res["job_id"]
    curves = ws / "models" / ".tiny-c.training" / "curves.json"
    wait_for(lambda: curves.exists() and json.loads(curves.read_text()).get("step", 0) >= 2, what="steps")
    cancel_job(ws, job_id)
    wait_for(lambda: get_job(ws, job_id).finished, what="cancel")
    assert get_job(ws, job_id).state == "cancelled"
    cps = list((ws / "models" / ".tiny-c.training" / "checkpoints").glob("checkpoint-*"))
    assert cps, "a cancelled training leaves a checkpoint to resume from"
    assert demo_store.get_model("tiny-c") is None
    resume_job(ws, job_id)
    wait_for(lambda: get_job(ws, job_id).finished, timeout=300, what="the resumed job")
    assert get_job(ws, job_id).state == "done"
    assert demo_store.get_model("tiny-c") is not None


# -- gate and A/B ----------------------------------------------------------------------------------
def test_gate_matches_a_direct_scipy_one_sided_test():
    from scipy import stats

    from embtui.analysis.gate import gate
    from embtui.analysis.stats import SEED, _mean_diff

    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 200)
    worse = np.clip(base - rng.normal(0.05, 0.1, 200), 0, 1)
    res = gate(worse, base, margin=0.01)
    direct = stats.permutation_test((worse + 0.01, base), _mean_diff, permutation_type="samples",
                                    vectorized=True, n_resamples=10_000, alternative="less", rng=SEED)
    assert res.p_permutation == pytest.approx(direct.pvalue)
    assert res.p_ttest == pytest.approx(stats.ttest_rel(worse + 0.01, base, alternative="less").pvalue)
    assert not res.passed and res.verdict.startswith("fail")
    better = gate(np.clip(base + 0.02, 0, 1), base)
    assert better.passed and better.p_permutation > 0.5
    # within the margin: a small loss passes when the margin allows it
    slight = np.clip(base - 0.005, 0, 1)
    assert not gate(slight, base, margin=0.0).passed and gate(slight, base, margin=0.02).passed


def test_gate_cli_exit_codes_on_real_runs(demo_store, tiny_model, capsys):
    """A random-initialised model is a damaged candidate (exit 1); MiniLM against it passes (0)."""
    from embtui.cli.main import main
    from embtui.engine.evaluate import EvalRequest, run_evaluation

    ws = str(demo_store.ws.root)
    _register_tiny(demo_store, tiny_model)
    minilm = run_evaluation(demo_store, EvalRequest("demo", _minilm(demo_store))).run
    assert main(["--workspace", ws, "gate", "--project", "demo", "--baseline", str(minilm.id),
                 "--candidate", "tiny"]) == 1  # evaluated now
    out = capsys.readouterr().out
    assert "fail: the candidate is significantly worse" in out
    assert main(["--workspace", ws, "gate", "--project", "demo", "--baseline", "tiny",
                 "--candidate", str(minilm.id), "--json"]) == 0  # the tiny run is reused
    res = json.loads(capsys.readouterr().out)
    assert res["passed"] and res["baseline"]["model"] == "tiny" and res["delta"] > 0.3
    assert len(demo_store.list_runs(project="demo", split="test")) == 2
    assert main(["--workspace", ws, "gate", "--project", "demo", "--baseline", str(minilm.id),
                 "--candidate", "nosuchmodel"]) == 2


def test_ab_report_equals_direct_scipy_computation(tmp_path):
    from scipy import stats

    from embtui.api.training import ab_test

    rng = np.random.default_rng(1)
    rows = []
    for variant, p_click in (("a", 0.30), ("b", 0.36)):
        for i in range(3000):
            clicked = rng.random() < p_click
            rank = int(rng.integers(1, 11)) if clicked else None
            rows.append({"query": f"q{i}", "variant": variant, "clicked_rank": rank, "timestamp": i})
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = ab_test(log, effect=0.02)
    a, b = res["variants"]
    ca = sum(1 for r in rows if r["variant"] == "a" and r["clicked_rank"])
    cb = sum(1 for r in rows if r["variant"] == "b" and r["clicked_rank"])
    assert (a["clicks"], b["clicks"]) == (ca, cb) and a["ctr"] == ca / 3000
    chi2, p, _, _ = stats.chi2_contingency([[ca, 3000 - ca], [cb, 3000 - cb]], correction=False)
    assert b["p_ctr"] == pytest.approx(p, rel=1e-9) and res["significant"]["b"]
    rr = {v: [1 / r["clicked_rank"] if r["clicked_rank"] else 0.0 for r in rows if r["variant"] == v] for v in "ab"}
    assert b["mrr"] == pytest.approx(np.mean(rr["b"]))
    assert b["p_mrr"] == pytest.approx(stats.ttest_ind(rr["b"], rr["a"], equal_var=False).pvalue)
    assert a["abandonment"] == pytest.approx(1 - ca / 3000)
    # sample size: the textbook figure for 10% -> 12% at alpha .05, power .8 (no continuity correction)
    from embtui.analysis.ab import sample_size

    assert sample_size(0.10, 0.02) == 3841
    # the same log as CSV, with clicked documents and the shown results as JSONL
    csv = tmp_path / "log.csv"
    csv.write_text("variant,clicked_rank\n" + "".join(f"{r['variant']},{r['clicked_rank'] or ''}\n" for r in rows))
    assert ab_test(csv)["variants"] == res["variants"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"variant": "a", "clicked_rank": 2}\n{"variant": "b", "clicked_rank": "x"}\n')
    with pytest.raises(EmbtuiError, match=r"bad.jsonl:2: field 'clicked_rank': not a rank"):
        ab_test(bad)
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"variant": "a", "clicked": "d2", "results": ["d1", "d2"]}\n'
                    '{"variant": "b", "clicked": null, "results": ["d1"]}\n'
                    '{"variant": "b", "clicked": "d9", "results": ["d1"]}\n')
    with pytest.raises(EmbtuiError, match=r"docs.jsonl:3: field 'clicked': clicked document 'd9'"):
        ab_test(docs)


# -- reranker --------------------------------------------------------------------------------------
def test_reranker_training_saves_a_pipeline_and_its_dev_metric_equals_pytrec_eval(demo_store, tiny_model):
    import pytrec_eval
    from sentence_transformers import CrossEncoder

    from embtui.api.training import RerankerRequest, finetune
    from embtui.engine.training.reranker import make_rerank_evaluator

    req = RerankerRequest("demo", str(tiny_model), "tiny-ce", rerank_depth=10, hard_negatives=2,
                          dev_fraction=0.2, config=TrainConfig(**{**TINY, "batch_size": 16, "eval_steps": 3}))
    res = finetune(demo_store.ws, req)
    lin = read_lineage(res["path"])
    assert lin["kind"] == "cross-encoder" and lin["first_stage"]["name"] == "bm25"
    assert lin["data"]["negatives"]["source"] == "run" and lin["data"]["rows"] == 3 * lin["data"]["pairs"]
    pipe = demo_store.get_model("tiny-ce-pipeline")
    assert pipe["pipeline"]["rerank"][0]["kind"] == "cross-encoder"
    assert pipe["pipeline"]["rerank"][0]["model"]["model"] == res["path"]
    assert res["base_run"]["id"] != res["run"]["id"]
    assert demo_store.get_run(res["base_run"]["id"]).model_name == "bm25"
    # the dev evaluator's number, recomputed independently: CrossEncoder.predict + pytrec_eval
    model = CrossEncoder(res["path"], device="cpu")
    data = build_training_data(demo_store, "demo", dev_fraction=0.2)
    corpus = demo_store.corpus("demo")
    text = dict(zip(corpus.ids, corpus.encode_texts()))
    first = demo_store.run_rankings(lin["first_stage"]["run"])
    cands = {q: [d for d, _ in first[q][:10]] for q in data.dev_qrels}
    ev = make_rerank_evaluator(data.queries, text, data.dev_qrels, cands, "ndcg@10", 32)
    ours = ev(model)["dev_ndcg@10"]
    run = {q: {d: float(s) for d, s in zip(c, model.predict([(data.queries[q], text[d]) for d in c]))}
           for q, c in cands.items()}
    ref = pytrec_eval.RelevanceEvaluator(data.dev_qrels, {"ndcg_cut.10"}).evaluate(run)
    assert ours == pytest.approx(np.mean([v["ndcg_cut_10"] for v in ref.values()]), abs=1e-6)


def test_dev_evaluator_equals_numpy_search_scored_by_pytrec_eval(demo_store, tiny_model):
    import pytrec_eval
    from sentence_transformers import SentenceTransformer

    from embtui.engine.models import ModelSpec
    from embtui.engine.training.finetune import dev_corpus_ids, make_dev_evaluator

    data = build_training_data(demo_store, "demo", dev_fraction=0.3)
    corpus = demo_store.corpus("demo")
    text = dict(zip(corpus.ids, corpus.encode_texts()))
    ids = dev_corpus_ids(corpus.ids, data.dev_qrels, 150, 42)
    judged = {d for j in data.dev_qrels.values() for d in j}
    assert len(ids) == 150 and judged <= set(ids)
    model = SentenceTransformer(str(tiny_model), device="cpu")
    ev = make_dev_evaluator(data.queries, {d: text[d] for d in ids}, data.dev_qrels, ModelSpec(str(tiny_model)),
                            "ndcg@10", 32)
    ours = ev(model)
    qids = sorted(data.dev_qrels)
    q = model.encode([data.queries[x] for x in qids], normalize_embeddings=True)
    d = model.encode([text[x] for x in ids], normalize_embeddings=True)
    s = q @ d.T
    run = {qid: {ids[j]: float(s[i, j]) for j in np.argsort(-s[i])[:100]} for i, qid in enumerate(qids)}
    ref = pytrec_eval.RelevanceEvaluator(data.dev_qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    assert ours["dev_ndcg@10"] == pytest.approx(np.mean([v["ndcg_cut_10"] for v in ref.values()]), abs=1e-5)
    assert ours["dev_recall@100"] == pytest.approx(np.mean([v["recall_100"] for v in ref.values()]), abs=1e-5)
    assert ev.primary_metric == "dev_ndcg@10"


def test_out_of_memory_halves_the_batch_and_training_goes_on(demo_store, tiny_model, monkeypatch):
    """A simulated CUDA OOM (the true boundary: no GPU here) at batch 8: the trainer backs off to 4."""
    from sentence_transformers import SentenceTransformerTrainer

    from embtui.api.training import finetune

    real = SentenceTransformerTrainer.train
    seen = []

    def train(self, *a, **k):
        seen.append(self.args.per_device_train_batch_size)
        if self.args.per_device_train_batch_size > 4:
            raise type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory. Tried to allocate 2 GiB")
        return real(self, *a, **k)

    monkeypatch.setattr(SentenceTransformerTrainer, "train", train)
    _register_tiny(demo_store, tiny_model)
    res = finetune(demo_store.ws, FinetuneRequest("demo", "tiny", "tiny-oom", dev_fraction=0.2, evaluate_test=False,
                                                  config=TrainConfig(**{**TINY, "batch_size": 8})))
    lin = read_lineage(res["path"])
    assert seen == [8, 4] and lin["batch_size_used"] == 4
    from embtui.jobs.api import job_log

    assert "out of memory: batch halved to 4" in job_log(demo_store.ws, res["job_id"])


def test_student_distillation_learns_the_teacher_embeddings_from_the_cache(demo_store, tiny_model, tmp_path):
    """A 16-d student of the 32-d tiny teacher: a projection is added, the MSE falls, and the result
    is a registered model with its test run beside the teacher's."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tests_conftest", Path(__file__).with_name("conftest.py"))
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)

    from embtui.api.training import distill
    from embtui.engine.evaluate import EvalRequest, run_evaluation
    from embtui.engine.models import ModelSpec

    _register_tiny(demo_store, tiny_model)
    run_evaluation(demo_store, EvalRequest("demo", ModelSpec(str(tiny_model), name="tiny")))  # teacher cached
    student = conf.build_tiny_model(tmp_path / "student", seed=3, hidden=16)
    res = distill(demo_store, "tiny", "tiny-student", student=str(student), project="demo", epochs=2,
                  batch_size=32, lr=1e-3, max_seq_length=32)
    lin = read_lineage(res["path"])
    assert lin["student"]["dim"] == 16 and res["dim"] == 32
    assert res["loss_last"] < res["loss_first"]
    assert demo_store.get_run(res["base_run"]["id"]).model_name == "tiny"
    from sentence_transformers import SentenceTransformer

    assert SentenceTransformer(res["path"], device="cpu").encode(["x"]).shape == (1, 32)
