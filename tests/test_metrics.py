"""Tests for embtui.engine.metrics: agreement with trec_eval (pytrec_eval), tie order, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytrec_eval

from embtui.engine.metrics import (
    QrelsArrays,
    evaluate_indices,
    DEFAULT_KS,
    METRIC_FAMILIES,
    MetricResult,
    evaluate,
    evaluate_arrays,
    evaluate_run,
    metric_names,
    parse_ks,
    rank_run,
)
from embtui.errors import DataError, EmbtuiError

TOL = 1e-9
KS = (1, 3, 5, 10, 100)


# ----------------------------------------------------------------------------- references


def ref_order(docs: dict[str, float]) -> list[str]:
    """trec_eval's order, written independently: float32 score descending, then doc id descending."""
    return [d for d, _ in sorted(docs.items(), key=lambda x: (np.float32(x[1]), x[0]), reverse=True)]


def trec_per_query(qrels, run, ks=KS, level=1) -> dict[str, dict[str, float]]:
    """pytrec_eval's values, renamed to embtui metric names; mrr@k from recip_rank on runs cut at k."""
    cut = ",".join(map(str, ks))
    measures = {f"ndcg_cut.{cut}", f"map_cut.{cut}", f"recall.{cut}", f"P.{cut}", f"success.{cut}", "Rprec"}
    res = pytrec_eval.RelevanceEvaluator(qrels, measures, relevance_level=level).evaluate(run)
    out: dict[str, dict[str, float]] = {}
    for q, m in res.items():
        row = {}
        for k in ks:
            row[f"ndcg@{k}"] = m[f"ndcg_cut_{k}"]
            row[f"map@{k}"] = m[f"map_cut_{k}"]
            row[f"recall@{k}"] = m[f"recall_{k}"]
            row[f"p@{k}"] = m[f"P_{k}"]
            row[f"success@{k}"] = m[f"success_{k}"]
        row["r-precision"] = m["Rprec"]
        out[q] = row
    for k in ks:
        cut_run = {q: {d: docs[d] for d in ref_order(docs)[:k]} for q, docs in run.items()}
        rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=level).evaluate(cut_run)
        for q, m in rr.items():
            out[q][f"mrr@{k}"] = m["recip_rank"]
    return out


def trec_order(docs: dict[str, float]) -> list[str]:
    """The order trec_eval itself gives: one single-relevant-doc query per doc, read back by recip_rank."""
    qrels = {f"q{i}": {d: 1} for i, d in enumerate(docs)}
    run = {f"q{i}": dict(docs) for i in range(len(docs))}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)
    rank = {d: round(1 / rr[f"q{i}"]["recip_rank"]) for i, d in enumerate(docs)}
    return sorted(docs, key=rank.__getitem__)


def assert_matches_trec(result: MetricResult, qrels, run, ks=KS, level=1, skip_unanswerable=False) -> None:
    expected = trec_per_query(qrels, run, ks, level)
    names = metric_names(ks)
    answerable = {q for q, j in qrels.items() if any(g >= level for g in j.values())}
    # trec_eval's convention: every judged query counts, those with no relevant judgment as 0
    relevant = answerable if skip_unanswerable else {q for q, j in qrels.items() if j}
    assert set(result.unanswerable) == relevant - answerable
    assert set(result.scored) == relevant
    assert set(result.per_query) == relevant
    for q in relevant:
        got = result.per_query[q]
        assert list(got) == names
        if q in run:
            want = expected[q]
        else:  # pytrec_eval only reports run queries; a missing query scores 0 everywhere
            want = dict.fromkeys(names, 0.0)
            assert q in result.missing
        for name in names:
            assert abs(got[name] - want[name]) < TOL, (q, name, got[name], want[name])
    for name in names:
        mean = sum(expected[q][name] if q in run else 0.0 for q in relevant) / len(relevant)
        assert abs(result.aggregate[name] - mean) < TOL, name
    # queries pytrec_eval scores but --skip-unanswerable leaves out: judged without a relevant doc
    for q in set(qrels) - relevant:
        assert result.skipped[q] == ("no relevant judgment" if qrels[q] else "no judgments")
    for q in set(run) - set(qrels):
        assert result.skipped[q] == "not judged"


def all_paths(qrels, run, ks=KS, level=1) -> list[MetricResult]:
    """The same run through evaluate_run, evaluate on (doc, score) lists and evaluate on id lists."""
    ranked = rank_run(run)
    ids = {q: [d for d, _ in lst] for q, lst in ranked.items()}
    # the search's form: one row of document positions per query, -1 after a short ranking
    pool = sorted({d for lst in ids.values() for d in lst} | {d for j in qrels.values() for d in j})
    at = {d: i for i, d in enumerate(pool)}
    qids = list(ids)
    width = max((len(v) for v in ids.values()), default=0)
    mat = np.full((len(qids), width), -1, dtype=np.int64)
    for i, q in enumerate(qids):
        mat[i, : len(ids[q])] = [at[d] for d in ids[q]]
    return [
        evaluate_run(qrels, run, ks=ks, relevance_level=level),
        evaluate(qrels, ranked, ks=ks, relevance_level=level),
        evaluate(qrels, ids, ks=ks, relevance_level=level),
        evaluate_indices(qrels, qids, pool, mat, ks=ks, relevance_level=level),
        evaluate_indices(QrelsArrays(qrels), qids, pool, mat, ks=ks, relevance_level=level),
    ]


def random_case(seed: int, n_queries: int = 150):
    rng = np.random.default_rng(seed)
    pool = [str(i) for i in range(400)]  # "9" > "10" as strings: numeric and string order differ
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for qi in range(n_queries):
        q = f"q{qi}"
        judged = rng.choice(pool, size=int(rng.integers(1, 30)), replace=False)
        kind = rng.random()
        if kind < 0.08:  # only non-relevant judgments
            qrels[q] = {d: 0 for d in judged}
        else:
            qrels[q] = {d: int(rng.integers(0, 4)) for d in judged}
        if rng.random() < 0.1:  # judged, never ranked
            continue
        depth = int(rng.choice([0, 1, 2, 4, 9, 40, 99, 101, 160]))
        # favour judged docs so that relevant docs appear; the rest are mostly unjudged
        cand = list(dict.fromkeys(list(rng.permutation(judged)) + list(rng.permutation(pool))))
        docs = cand[:depth] if rng.random() < 0.5 else list(rng.choice(pool, size=depth, replace=False))
        style = rng.integers(0, 4)
        if style == 0:  # heavy ties
            scores = rng.integers(0, 4, size=depth).astype(float)
        elif style == 1:  # differences below float32 resolution
            scores = 1.0 + rng.integers(0, 3, size=depth) * 2e-8
        elif style == 2:
            scores = np.round(rng.normal(size=depth), 1)
        else:
            scores = rng.normal(size=depth)
        run[q] = {d: float(s) for d, s in zip(docs, scores)}
    for qi in range(5):  # ranked, never judged
        run[f"extra{qi}"] = {"1": 1.0, "2": 0.5}
    return qrels, run


# ----------------------------------------------------------------------------- agreement


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_runs_match_trec_eval(seed):
    qrels, run = random_case(seed)
    for result in all_paths(qrels, run):
        assert_matches_trec(result, qrels, run)


def index_form(qrels, run, seed: int, drop_unranked_judged: bool = True):
    """The search's form with the awkward parts: a shuffled corpus order that leaves out the judged
    documents no query ranked (judged, not in the corpus), and queries in reversed order."""
    ids = {q: [d for d, _ in lst] for q, lst in rank_run(run).items()}
    ranked_docs = {d for lst in ids.values() for d in lst}
    judged_docs = {d for j in qrels.values() for d in j}
    pool = sorted(ranked_docs | (set() if drop_unranked_judged else judged_docs) | {"never"})
    pool = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))]
    at = {d: i for i, d in enumerate(pool)}
    qids = list(ids)[::-1]
    width = max((len(v) for v in ids.values()), default=0)
    mat = np.full((len(qids), width), -1, dtype=np.int64)
    for i, q in enumerate(qids):
        mat[i, : len(ids[q])] = [at[d] for d in ids[q]]
    return qids, pool, mat


@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize("block", [1, 64, 1 << 19])  # one row per block, a few rows, all rows
def test_evaluate_indices_blocks_order_and_unknown_docs(monkeypatch, seed, block):
    import embtui.engine.metrics as metrics_module

    monkeypatch.setattr(metrics_module, "_CELL_BLOCK", block)
    qrels, run = random_case(seed)
    qids, pool, mat = index_form(qrels, run, seed)
    prepared = QrelsArrays(qrels)
    at = {d: i for i, d in enumerate(pool)}
    for level in (1, 2):
        for q in (qrels, prepared):
            result = evaluate_indices(q, qids, pool, mat, relevance_level=level, doc_index=at)
            assert_matches_trec(result, qrels, run, level=level)
        result = evaluate_indices(prepared, qids, pool, mat, relevance_level=level, skip_unanswerable=True)
        assert_matches_trec(result, qrels, run, level=level, skip_unanswerable=True)


def test_evaluate_indices_agrees_with_evaluate_field_by_field():
    # every field of the result, not only the values: order of scored, skipped, missing, unanswerable
    qrels, run = random_case(8)
    qrels["empty"] = {}
    qids, pool, mat = index_form(qrels, run, 8)
    want = evaluate(qrels, rank_run(run))
    for q in (qrels, QrelsArrays(qrels)):
        got = evaluate_indices(q, qids, pool, mat)
        assert got.scored == want.scored and got.missing == want.missing
        assert got.unanswerable == want.unanswerable
        assert got.skipped == {k: want.skipped[k] for k in got.skipped} and set(got.skipped) == set(want.skipped)
        assert list(got.per_query) == list(want.per_query)
        for qid, row in want.per_query.items():
            for name, value in row.items():
                assert abs(got.per_query[qid][name] - value) < TOL, (qid, name)


def test_qrels_arrays_positions_are_kept_per_doc_index():
    qa = QrelsArrays({"q1": {"a": 1, "b": 0}, "q2": {}, "q3": {"c": 2}})
    assert qa.qids == ["q1", "q2", "q3"] and qa.counts.tolist() == [2, 0, 1]
    assert qa.doc_ids == ["a", "b", "c"] and qa.grades.tolist() == [1, 0, 2]
    assert "q2" in qa and "q4" not in qa
    index = {"c": 0, "a": 1}
    first = qa.positions(index)
    assert first.tolist() == [1, -1, 0] and qa.positions(index) is first
    assert qa.positions({"b": 0}).tolist() == [-1, 0, -1]


def test_sparse_metrics_equal_the_dense_matrix():
    # the index path scores from the graded cells only; the dense evaluate_arrays is the reference
    from embtui.engine.metrics import _evaluate_hits, metric_names

    rng = np.random.default_rng(0)
    for trial in range(20):
        nq, width = int(rng.integers(1, 40)), int(rng.integers(1, 60))
        grades = rng.integers(0, 4, size=(nq, width)) * (rng.random((nq, width)) < 0.2)
        num_rel = rng.integers(0, 8, size=nq)
        ideal = -np.sort(-rng.integers(0, 4, size=(nq, int(rng.integers(0, 12)))), axis=1)
        names = metric_names((1, 3, 10, 100))
        for level in (1, 2):
            dense = evaluate_arrays(grades, num_rel, ideal, metrics=names, relevance_level=level)
            r, c = np.nonzero(grades)
            sparse = _evaluate_hits(nq, (r[::-1], c[::-1], grades[r, c][::-1]), num_rel, ideal, names, level)
            for name in names:
                np.testing.assert_allclose(sparse[name], dense[name], rtol=0, atol=1e-15, err_msg=name)


def test_random_runs_sorted_path(monkeypatch):
    import embtui.engine.metrics as metrics_module

    monkeypatch.setattr(metrics_module, "_BROADCAST_LIMIT", 0)  # force sort + binary search
    qrels, run = random_case(5, n_queries=80)
    assert_matches_trec(evaluate_run(qrels, run), qrels, run)


def test_random_runs_match_trec_eval_relevance_level_2():
    qrels, run = random_case(7)
    for result in all_paths(qrels, run, level=2):
        assert_matches_trec(result, qrels, run, level=2)


@pytest.mark.parametrize("ks", [(2, 7, 30, 150), (1, 2)])  # (1, 2): R-precision looks deeper than k
def test_random_runs_other_cutoffs(ks):
    qrels, run = random_case(11, n_queries=60)
    for result in all_paths(qrels, run, ks=ks):
        assert_matches_trec(result, qrels, run, ks=ks)


def test_rank_run_matches_trec_eval_order():
    rng = np.random.default_rng(3)
    ids = [str(i) for i in rng.permutation(40)] + ["a", "B", "é", "ab", ""]
    docs = {d: float(s) for d, s in zip(ids, rng.integers(0, 3, size=len(ids)))}
    order = [d for d, _ in rank_run({"q": docs})["q"]]
    assert order == trec_order(docs)
    assert order == ref_order(docs)


# ----------------------------------------------------------------------------- adversarial


def test_all_tied_scores_order_by_doc_id_descending():
    docs = {d: 0.5 for d in ["1", "2", "9", "10", "100", "11"]}
    ranked = rank_run({"q": docs})["q"]
    assert [d for d, _ in ranked] == ["9", "2", "11", "100", "10", "1"]
    assert [d for d, _ in ranked] == trec_order(docs)
    assert all(s == 0.5 for _, s in ranked)
    qrels = {"q": {"10": 1}}
    for result in all_paths(qrels, {"q": docs}, ks=(1, 5)):
        assert result.per_query["q"]["mrr@5"] == pytest.approx(1 / 5)
        assert result.per_query["q"]["p@1"] == 0.0
        assert_matches_trec(result, qrels, {"q": docs}, ks=(1, 5))


def test_ties_use_float32_like_trec_eval():
    # 1 + 5e-8 rounds to 1.0 in float32 (a tie, so id "a" < "b" loses); 1 + 1e-7 does not.
    run = {"q": {"a": 1.0 + 5e-8, "b": 1.0}, "r": {"a": 1.0 + 1e-7, "b": 1.0}}
    ranked = rank_run(run)
    assert [d for d, _ in ranked["q"]] == ["b", "a"]
    assert [d for d, _ in ranked["r"]] == ["a", "b"]
    assert ranked["q"][1] == ("a", 1.0 + 5e-8)  # original scores are returned
    qrels = {"q": {"a": 1}, "r": {"a": 1}}
    for result in all_paths(qrels, run, ks=(1,)):
        assert result.per_query["q"]["mrr@1"] == 0.0
        assert result.per_query["r"]["mrr@1"] == 1.0
        assert_matches_trec(result, qrels, run, ks=(1,))


def test_zero_grade_judgments_are_not_relevant_and_give_no_gain():
    qrels = {"q": {"a": 0, "b": 2, "c": 0, "d": 1, "e": -1}}
    run = {"q": {"a": 5.0, "c": 4.0, "e": 3.5, "b": 3.0, "x": 2.0, "d": 1.0}}
    for result in all_paths(qrels, run, ks=(1, 3, 5, 10)):
        row = result.per_query["q"]
        assert row["p@3"] == 0.0 and row["mrr@3"] == 0.0 and row["ndcg@3"] == 0.0
        assert row["mrr@5"] == pytest.approx(1 / 4)
        assert_matches_trec(result, qrels, run, ks=(1, 3, 5, 10))


def test_query_with_only_grade_zero_judgments_counts_zero_as_trec_eval():
    qrels = {"good": {"a": 1}, "bad": {"a": 0, "b": 0}, "bad2": {}}
    run = {"good": {"a": 1.0}, "bad": {"a": 1.0, "b": 0.5}}
    for result in all_paths(qrels, run):
        assert result.scored == ("good", "bad")
        assert result.unanswerable == ("bad",)
        assert set(result.per_query["bad"].values()) == {0.0}
        assert result.skipped == {"bad2": "no judgments"}
        assert result.summary() == ("2 queries scored (1 with no relevant judgment, scored 0 as "
                                    "trec_eval does), 1 skipped (1 with an empty judgment list)")
        assert result.aggregate["ndcg@10"] == 0.5
        assert_matches_trec(result, qrels, run)


def test_mean_equals_pytrec_eval_with_unanswerable_queries():
    # the defect: 5 judged queries with no relevant doc made the mean higher than trec_eval's
    rng = np.random.default_rng(7)
    qrels, run = {}, {}
    for i in range(40):
        docs = {f"d{j}": float(rng.random()) for j in range(30)}
        run[f"q{i}"] = docs
        grades = {f"d{j}": int(rng.integers(0, 3)) for j in rng.choice(30, 6, replace=False)}
        if i < 5:
            grades = dict.fromkeys(grades, 0)
        qrels[f"q{i}"] = grades
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "map_cut.100", "recall.100"}).evaluate(run)
    for result in all_paths(qrels, run):
        assert len(result.scored) == 40 and len(result.unanswerable) == 5
        for ours, theirs in [("ndcg@10", "ndcg_cut_10"), ("map@100", "map_cut_100"), ("recall@100", "recall_100")]:
            want = sum(v[theirs] for v in ev.values()) / len(ev)
            assert abs(result.aggregate[ours] - want) < TOL, ours
        assert_matches_trec(result, qrels, run)
    old = evaluate_run(qrels, run, skip_unanswerable=True)
    assert len(old.scored) == 35 and old.aggregate["ndcg@10"] > all_paths(qrels, run)[0].aggregate["ndcg@10"]


def test_level_above_grades_keeps_ndcg_gain_as_trec_eval():
    qrels = {"q": {"a": 1, "b": 1}}
    run = {"q": {"a": 2.0, "b": 1.0, "c": 0.5}}
    for result in all_paths(qrels, run, ks=(1, 3), level=2):
        assert result.unanswerable == ("q",)
        assert result.per_query["q"]["ndcg@3"] == 1.0 and result.per_query["q"]["p@3"] == 0.0
        assert_matches_trec(result, qrels, run, ks=(1, 3), level=2)


def test_skip_unanswerable_keeps_the_old_behaviour():
    qrels = {"good": {"a": 1}, "bad": {"a": 0, "b": 0}, "bad2": {}}
    run = {"good": {"a": 1.0}, "bad": {"a": 1.0, "b": 0.5}}
    for result in [evaluate_run(qrels, run, skip_unanswerable=True),
                   evaluate(qrels, rank_run(run), skip_unanswerable=True)]:
        assert result.scored == ("good",)
        assert "bad" not in result.per_query
        assert result.skipped == {"bad": "no relevant judgment", "bad2": "no judgments"}
        assert result.summary() == ("1 query scored, 2 skipped (1 with no relevant judgment, "
                                    "1 with an empty judgment list)")
        assert result.aggregate["ndcg@10"] == 1.0
        assert_matches_trec(result, qrels, run, skip_unanswerable=True)


def test_below_relevance_level_still_gains_in_ndcg():
    # trec_eval's nDCG ignores the relevance level: grade 1 still has gain 1 at level 2
    qrels = {"q": {"a": 1, "b": 2}}
    run = {"q": {"a": 2.0, "b": 1.0}}
    for result in all_paths(qrels, run, ks=(10,), level=2):
        row = result.per_query["q"]
        want = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
        assert row["ndcg@10"] == pytest.approx(want, abs=TOL)
        assert row["mrr@10"] == 0.5 and row["recall@10"] == 1.0 and row["r-precision"] == 0.0
        assert_matches_trec(result, qrels, run, ks=(10,), level=2)


def test_k_larger_than_ranking():
    qrels = {"q": {"a": 1, "b": 1, "c": 3}}
    run = {"q": {"a": 2.0, "z": 1.0}}
    for result in all_paths(qrels, run, ks=(1, 5, 100)):
        row = result.per_query["q"]
        assert row["p@100"] == pytest.approx(1 / 100)  # divided by k, not by the ranking length
        assert row["p@5"] == pytest.approx(1 / 5)
        assert row["recall@100"] == pytest.approx(1 / 3)
        assert row["map@100"] == pytest.approx(1 / 3)  # divided by R, not min(R, k)
        assert row["ndcg@100"] == pytest.approx(1 / (3 + 1 / math.log2(3) + 1 / 2), abs=TOL)
        assert_matches_trec(result, qrels, run, ks=(1, 5, 100))


def test_empty_ranking_and_missing_query_score_zero():
    qrels = {"empty": {"a": 1}, "absent": {"a": 2}, "ok": {"a": 1}}
    run = {"empty": {}, "ok": {"a": 1.0}}
    for result in all_paths(qrels, run):
        assert set(result.scored) == {"empty", "absent", "ok"}
        assert set(result.missing) == {"empty", "absent"}
        assert all(v == 0.0 for q in ("empty", "absent") for v in result.per_query[q].values())
        assert result.aggregate["ndcg@10"] == pytest.approx(1 / 3)
        assert result.summary() == "3 queries scored (2 not in the ranking, scored 0)"
        assert_matches_trec(result, qrels, run)


def test_r_precision_looks_past_the_largest_cutoff():
    qrels = {"q": {d: 1 for d in "abcde"}}
    run = {"q": {"x": 9.0, "a": 8.0, "b": 7.0, "y": 6.0, "c": 5.0, "d": 1.0}}
    for result in all_paths(qrels, run, ks=(1, 2)):
        assert result.per_query["q"]["r-precision"] == pytest.approx(3 / 5)
        assert_matches_trec(result, qrels, run, ks=(1, 2))


def test_unjudged_retrieved_docs_are_non_relevant():
    qrels = {"q": {"a": 2, "b": 1}}
    run = {"q": {"u1": 9.0, "u2": 8.0, "a": 7.0, "u3": 6.0, "b": 5.0}}
    for result in all_paths(qrels, run, ks=(1, 3, 5)):
        row = result.per_query["q"]
        assert row["mrr@5"] == pytest.approx(1 / 3)
        assert row["p@5"] == pytest.approx(2 / 5)
        assert row["map@5"] == pytest.approx((1 / 3 + 2 / 5) / 2)
        assert_matches_trec(result, qrels, run, ks=(1, 3, 5))


def test_ranked_query_without_judgments_is_reported():
    result = evaluate({"q": {"a": 1}}, {"q": ["a"], "other": ["a"]})
    assert result.skipped == {"other": "not judged"}
    assert "other" not in result.per_query
    assert result.summary() == "1 query scored, 1 skipped (1 ranked but not in qrels)"


def test_duplicate_doc_ids_keep_first_occurrence():
    qrels = {"q": {"c": 1, "b": 1}}
    # deduped: [b, c] -> p@2 = 1; without dedupe the second "b" would push "c" out of the top 2
    result = evaluate(qrels, {"q": ["b", "b", "c"]}, ks=(1, 2))
    assert result.per_query["q"]["p@2"] == 1.0
    result = evaluate(qrels, {"q": [("x", 3.0), ("c", 2.0), ("x", 1.0), ("b", 0.5)]}, ks=(3,))
    assert result.per_query["q"]["p@3"] == pytest.approx(2 / 3)
    assert result.per_query["q"]["map@3"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_hand_worked_example():
    qrels = {"q": {"d1": 3, "d2": 0, "d3": 1, "d4": 2}}
    ranking = ["d2", "d1", "dX", "d3"]  # grades 0, 3, unjudged, 1; R = 3
    result = evaluate(qrels, {"q": ranking}, ks=(1, 3, 5))
    l3, l5 = math.log2(3), math.log2(5)
    idcg = 3 + 2 / l3 + 1 / 2
    want = {
        "ndcg@1": 0.0, "ndcg@3": (3 / l3) / idcg, "ndcg@5": (3 / l3 + 1 / l5) / idcg,
        "mrr@1": 0.0, "mrr@3": 0.5, "mrr@5": 0.5,
        "map@1": 0.0, "map@3": (1 / 2) / 3, "map@5": (1 / 2 + 2 / 4) / 3,
        "recall@1": 0.0, "recall@3": 1 / 3, "recall@5": 2 / 3,
        "p@1": 0.0, "p@3": 1 / 3, "p@5": 2 / 5,
        "success@1": 0.0, "success@3": 1.0, "success@5": 1.0,
        "r-precision": 1 / 3,
    }
    assert list(result.per_query["q"]) == list(want)
    for name, value in want.items():
        assert abs(result.per_query["q"][name] - value) < 1e-12, name
    assert result.aggregate == result.per_query["q"]
    assert result.per_query["q"]["ndcg@3"] == pytest.approx(0.397490, abs=1e-6)


# ----------------------------------------------------------------------------- API details


def test_parse_ks():
    assert parse_ks("10,1,3,3") == (1, 3, 10)
    assert parse_ks(" 5 , 1 ") == (1, 5)
    assert parse_ks("100") == (100,)
    for bad in ["0", "-1", "a", "", "  ", "1,,3", "1,", "1.5", "3,0"]:
        with pytest.raises(EmbtuiError):
            parse_ks(bad)
    with pytest.raises(EmbtuiError, match="'0' must be at least 1"):
        parse_ks("1,0")
    with pytest.raises(EmbtuiError, match="'a' is not a positive integer"):
        parse_ks("a")


def test_metric_names_order():
    assert metric_names((3, 1)) == [
        "ndcg@1", "ndcg@3", "mrr@1", "mrr@3", "map@1", "map@3", "recall@1", "recall@3",
        "p@1", "p@3", "success@1", "success@3", "r-precision",
    ]
    assert len(metric_names()) == len(DEFAULT_KS) * len(METRIC_FAMILIES) + 1
    with pytest.raises(EmbtuiError):
        metric_names((0,))


def test_selected_metrics_and_validation():
    qrels = {"q": {"a": 1}}
    result = evaluate(qrels, {"q": ["x", "a"]}, metrics=["r-precision", "mrr@2", "ndcg@7"])
    assert list(result.aggregate) == ["r-precision", "mrr@2", "ndcg@7"]
    assert result.aggregate["mrr@2"] == 0.5
    for bad in (["ndcg@0"], ["NDCG@10"], ["foo@3"], ["ndcg"], []):
        with pytest.raises(EmbtuiError):
            evaluate(qrels, {"q": ["a"]}, metrics=bad)
    with pytest.raises(EmbtuiError):
        evaluate(qrels, {"q": ["a"]}, relevance_level=0)


def test_nan_score_is_rejected():
    run = {"q": {"a": float("nan"), "b": 1.0}}
    with pytest.raises(DataError, match="NaN"):
        rank_run(run)
    with pytest.raises(DataError, match="NaN"):
        evaluate_run({"q": {"b": 1}}, run)


def test_nothing_scored():
    result = evaluate({"q": {"a": 0}}, {}, skip_unanswerable=True)
    assert result.scored == () and result.per_query == {}
    assert math.isnan(result.aggregate["ndcg@10"])
    assert result.summary() == "0 queries scored, 1 skipped (1 with no relevant judgment)"
    result = evaluate({"q": {}}, {})
    assert result.scored == () and math.isnan(result.aggregate["ndcg@10"])
    result = evaluate({"q": {"a": 0}}, {})
    assert result.scored == ("q",) and result.missing == ("q",) and result.aggregate["ndcg@10"] == 0.0


def test_evaluate_arrays_direct():
    grades = np.array([[0, 2], [1, 0]])  # narrower than k: missing columns read as 0
    out = evaluate_arrays(grades, np.array([1, 2]), np.array([[2, 0], [1, 1]]), ks=(1, 3))
    assert set(out) == set(metric_names((1, 3)))
    np.testing.assert_allclose(out["ndcg@3"], [1 / math.log2(3), 1 / (1 + 1 / math.log2(3))])
    np.testing.assert_allclose(out["p@3"], [1 / 3, 1 / 3])
    np.testing.assert_allclose(out["mrr@1"], [0, 1])
    np.testing.assert_allclose(out["r-precision"], [0, 1 / 2])
    # R == 0 scores 0 rather than dividing by zero
    out = evaluate_arrays(np.array([[1]]), np.array([0]), np.array([[0]]), ks=(1,))
    assert all(v[0] == 0.0 for v in out.values())


def test_huge_cutoff_costs_what_the_ranking_length_does():
    # --k 100000000 on a small project once allocated proportional to k (20 GB, OOM-killed)
    import tracemalloc

    qrels, run = random_case(3, n_queries=50)
    n = max(len(d) for d in run.values())
    big = 100_000_000
    tracemalloc.start()
    results = all_paths(qrels, run, ks=(big,))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 * 2**20, peak
    small = evaluate_run(qrels, run, ks=(n + 50,))
    for result in results:
        for fam in ("ndcg", "mrr", "map", "recall", "success"):
            assert abs(result.aggregate[f"{fam}@{big}"] - small.aggregate[f"{fam}@{n + 50}"]) < TOL, fam
        assert abs(result.aggregate[f"p@{big}"] - small.aggregate[f"p@{n + 50}"] * (n + 50) / big) < TOL
