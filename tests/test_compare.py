"""Run comparison: paired tests against direct scipy calls, Holm by hand, real demo runs, slices, CLI errors."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from embtui.cli import main
from embtui.analysis.comparison import Comparison, QueryDelta, meta_values
from embtui.analysis.stats import holm, paired_tests
from embtui.engine.compare import compare_runs, run_values, slice_comparison, slice_metrics
from embtui.errors import EmbtuiError
from tests.conftest import DEMO


def bm25_run(store: Any, name: str, project: str = "demo", split: str = "test", **params: Any) -> int:
    from embtui.engine.evaluate import EvalRequest, run_evaluation
    from embtui.engine.models import ModelSpec

    spec = ModelSpec(model="bm25", name=name, bm25=params)
    return run_evaluation(store, EvalRequest(project=project, model=spec, split=split)).run.id


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, int]]:
    """The demo project (400 docs, 100 test queries) with three real BM25 runs and one on train."""
    from embtui.data.beir import import_beir
    from embtui.store import Store

    store = Store.open(tmp_path_factory.mktemp("cmp") / "ws")
    import_beir(store, DEMO, "demo")
    import_beir(store, DEMO, "other")
    ids = {
        "bm25": bm25_run(store, "bm25"),
        "nostem": bm25_run(store, "bm25-nostem", stemmer=None),
        "flat": bm25_run(store, "bm25-k1-0.3", k1=0.3, b=0.2),
        "train": bm25_run(store, "bm25", split="train"),
        "other": bm25_run(store, "bm25", project="other"),
    }
    return store, ids


# -- statistics against scipy ----------------------------------------------------------------------
def test_holm_matches_hand_worked_example() -> None:
    # m = 4 raw p-values: 0.01, 0.04, 0.03, 0.005.
    # Sorted ascending: 0.005 (#4), 0.01 (#1), 0.03 (#3), 0.04 (#2); multipliers m - i + 1 = 4, 3, 2, 1:
    #   0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04
    # running maximum (step-down monotonicity): 0.02, 0.03, 0.06, max(0.06, 0.04) = 0.06
    # back in input order: #1 0.03, #2 0.06, #3 0.06, #4 0.02 -> at alpha 0.05 reject #1 and #4 only
    # (all four raw p-values are < 0.05; Bonferroni would give 0.04, 0.16, 0.12, 0.02).
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-12)
    assert [p < 0.05 for p in adjusted] == [True, False, False, True]  # type: ignore[operator]
    # capped at 1, one value unchanged, missing ones skipped (m counts only real p-values)
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    assert holm([0.02]) == [0.02]
    assert holm([0.01, None, float("nan"), 0.04]) == pytest.approx([0.02, None, None, 0.04])


def _fixed_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    base = rng.uniform(0, 1, 60).round(2)
    run = np.clip(base + rng.normal(0.06, 0.2, 60), 0, 1).round(2)
    run[:8] = base[:8]  # some ties, as IR metrics have
    return run, base


def test_paired_tests_match_direct_scipy_calls() -> None:
    run, base = _fixed_data()
    res = paired_tests(run, base, n_resamples=5000, seed=11)

    t = stats.ttest_rel(run, base)
    assert res.t_statistic == pytest.approx(t.statistic, rel=1e-12)
    assert res.p_ttest == pytest.approx(t.pvalue, rel=1e-12)
    w = stats.wilcoxon(run, base)
    assert res.w_statistic == pytest.approx(w.statistic) and res.p_wilcoxon == pytest.approx(w.pvalue, rel=1e-12)

    def mean_diff(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
        return np.mean(x - y, axis=axis)

    perm = stats.permutation_test((run, base), mean_diff, permutation_type="samples", vectorized=True,
                                  n_resamples=5000, rng=np.random.default_rng(11))
    assert res.p_permutation == pytest.approx(perm.pvalue, rel=1e-12)
    boot = stats.bootstrap((run, base), mean_diff, paired=True, vectorized=True, n_resamples=5000,
                           method="BCa", rng=np.random.default_rng(11))
    assert res.ci_low == pytest.approx(boot.confidence_interval.low, rel=1e-9)
    assert res.ci_high == pytest.approx(boot.confidence_interval.high, rel=1e-9)

    d = run - base
    assert res.mean_delta == pytest.approx(d.mean())
    assert res.effect_size == pytest.approx(d.mean() / d.std(ddof=1))
    assert (res.wins, res.ties, res.losses) == (int((d > 0).sum()), int((d == 0).sum()), int((d < 0).sum()))
    assert res.ci_low < res.mean_delta < res.ci_high
    # the same seed gives the same numbers: reports are reproducible
    assert paired_tests(run, base, n_resamples=5000, seed=11) == res


def test_all_zero_differences_give_p_one_without_warnings() -> None:
    x = np.array([0.5, 1.0, 0.0, 0.25])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = paired_tests(x, x.copy())
    assert (res.p_ttest, res.p_wilcoxon, res.p_permutation) == (1.0, 1.0, 1.0)
    assert (res.ci_low, res.ci_high, res.ties) == (0.0, 0.0, 4)
    assert "zero" in (res.note or "")


# -- real runs on the demo project -------------------------------------------------------------------
def test_compare_real_runs_on_demo(runs: tuple[Any, dict[str, int]]) -> None:
    store, ids = runs
    comp = compare_runs(store, [ids["bm25"], ids["nostem"], ids["flat"]], "ndcg@10")
    assert comp.baseline_id == ids["bm25"] and comp.others == (ids["nostem"], ids["flat"])
    assert len(comp.query_ids) == 100 and not any(comp.dropped.values())
    qm = store.run_query_metrics(ids["nostem"])
    for rid in comp.run_ids:  # means over the common queries = the stored run means here
        assert comp.means[rid] == pytest.approx(store.get_run(rid).metrics["ndcg@10"], abs=1e-12)
    deltas = comp.query_deltas(ids["nostem"])
    assert [d.delta for d in deltas] == sorted(d.delta for d in deltas)
    assert all(d.value == qm[d.query_id]["ndcg@10"] for d in deltas)
    assert deltas[0].text and deltas[0].n_relevant >= 1
    raw = []
    for rid in comp.others:
        t = comp.test_for(rid)
        r = t.result
        assert r.wins + r.ties + r.losses == 100
        x = np.array([comp.values[rid][q] for q in comp.query_ids])
        y = np.array([comp.values[ids["bm25"]][q] for q in comp.query_ids])
        assert r.p_ttest == pytest.approx(stats.ttest_rel(x, y).pvalue, rel=1e-12)
        raw.append(r.p_permutation)
    # Holm across the two runs compared with the baseline
    assert [comp.test_for(r).p_holm["permutation"] for r in comp.others] == pytest.approx(holm(raw))
    # the same comparison on another metric, and one not stored (re-scored from the rankings)
    comp20 = compare_runs(store, [ids["bm25"], ids["nostem"]], "ndcg@20")
    assert 0 < comp20.means[ids["bm25"]] <= 1
    from embtui.engine.metrics import evaluate

    again = evaluate(store.qrels("demo", "test"), store.run_rankings(ids["bm25"]), metrics=["ndcg@20"])
    assert comp20.means[ids["bm25"]] == pytest.approx(again.aggregate["ndcg@20"])
    js = json.loads(json.dumps(comp.to_dict()))
    assert js["tests"][0]["verdict"] in ("better", "worse", "n.s.") and len(js["per_query"]) == 2


def test_stored_and_rescored_values_agree(runs: tuple[Any, dict[str, int]]) -> None:
    store, ids = runs
    run = store.get_run(ids["nostem"])
    stored = run_values(store, run, "mrr@10")
    rescored = run_values(store, run, "mrr@10", store.qrels("demo", "test"))
    assert stored == pytest.approx(rescored)


@pytest.mark.parametrize("which, needle", [
    ("train", "different projects or splits"),
    ("other", "different projects or splits"),
])
def test_compare_refuses_runs_of_other_projects_or_splits(runs: tuple[Any, dict[str, int]], which: str,
                                                          needle: str) -> None:
    store, ids = runs
    with pytest.raises(EmbtuiError, match=needle):
        compare_runs(store, [ids["bm25"], ids[which]])


def test_compare_argument_mistakes(runs: tuple[Any, dict[str, int]]) -> None:
    store, ids = runs
    with pytest.raises(EmbtuiError, match="at least two"):
        compare_runs(store, [ids["bm25"]])
    with pytest.raises(EmbtuiError, match="given twice"):
        compare_runs(store, [ids["bm25"], ids["bm25"]])
    with pytest.raises(EmbtuiError, match="unknown metric"):
        compare_runs(store, [ids["bm25"], ids["flat"]], "ndgc@10")
    with pytest.raises(EmbtuiError, match="needs 500 results"):
        compare_runs(store, [ids["bm25"], ids["flat"]], "ndcg@500")
    with pytest.raises(EmbtuiError, match="not one of the compared runs"):
        compare_runs(store, [ids["bm25"], ids["flat"]], baseline=ids["nostem"])


# -- slices ----------------------------------------------------------------------------------------
def test_slices_by_length_and_relevant_cover_every_query(runs: tuple[Any, dict[str, int]]) -> None:
    store, ids = runs
    comp = compare_runs(store, [ids["bm25"], ids["nostem"]], "ndcg@10", tests=("permutation",))
    texts = store.queries("demo")
    qrels = store.qrels("demo", "test")
    for by in ("length", "length-quantiles", "relevant"):
        table = slice_comparison(store, comp, by, n_resamples=2000)
        assert sum(r.n for r in table.rows) == 100
        for row in table.rows:
            for rid in comp.run_ids:
                expect = np.mean([comp.values[rid][q] for q in row.query_ids])
                assert row.cell(rid).mean == pytest.approx(expect)
            assert row.cell(ids["bm25"]).delta is None
    length = slice_comparison(store, comp, "length", n_resamples=2000)
    for row in length.rows:
        words = {len(texts[q].split()) for q in row.query_ids}
        lo, hi = row.key.split(" ")[0].replace("+", "-1000").split("-")[:2]
        assert all(int(lo) <= w <= int(hi) for w in words)
    rel = slice_comparison(store, comp, "relevant", n_resamples=2000)
    for row in rel.rows:
        counts = {sum(1 for g in qrels[q].values() if g > 0) for q in row.query_ids}
        if row.key == "3+":
            assert min(counts) >= 3
        else:
            assert counts == {int(row.key)}


def test_slice_by_imported_metadata(tmp_path: Path) -> None:
    """Metadata imported with the data (a top-level field and SciFact-style nested evidence labels)."""
    from embtui.data.beir import import_beir
    from embtui.store import Store

    folder = tmp_path / "beir"
    shutil.copytree(DEMO, folder)
    lines = (folder / "queries.jsonl").read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        obj = json.loads(line)
        obj["metadata"] = {"source": "forum" if i % 3 == 0 else "faq",
                           "ev": {"d1": [{"label": "SUPPORT" if i % 2 else "CONTRADICT"}]}}
        out.append(json.dumps(obj))
    (folder / "queries.jsonl").write_text("\n".join(out) + "\n")
    store = Store.open(tmp_path / "ws")
    import_beir(store, folder, "meta")
    a, b = bm25_run(store, "bm25", "meta"), bm25_run(store, "nostem", "meta", stemmer=None)
    table = slice_metrics(store, [a, b], "ndcg@10", by="meta:source", n_resamples=2000)
    assert {r.key for r in table.rows} == {"faq", "forum"} and sum(r.n for r in table.rows) == 100
    nested = slice_metrics(store, [a, b], "ndcg@10", by="meta:ev.*.label", n_resamples=2000)
    assert {r.key for r in nested.rows} == {"SUPPORT", "CONTRADICT"}
    from embtui.engine.compare import default_slices

    assert "meta:source" in default_slices(store, "meta")
    with pytest.raises(EmbtuiError, match="unknown slice"):
        slice_metrics(store, [a, b], by="colour")


def test_meta_values_paths() -> None:
    meta = {"13734012": [{"sentences": [4], "label": "CONTRADICT"}], "99": [{"label": "SUPPORT"}],
            "topic": "bio", "n": 3}
    assert meta_values(meta, "*.label") == ["CONTRADICT", "SUPPORT"]
    assert meta_values(meta, "*.*.label") == ["CONTRADICT", "SUPPORT"]
    assert meta_values(meta, "topic") == ["bio"] and meta_values(meta, "n") == ["3"]
    assert meta_values(meta, "missing") == [] and meta_values({}, "*.label") == []


class _StubStore:
    """Just what slicing reads, for a hand-made comparison with a known answer."""

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts

    def queries(self, project: str, split: str | None = None) -> dict[str, str]:
        return self.texts


def test_slice_flags_on_a_hand_made_case() -> None:
    # 40 queries: 20 short (3 words), 20 long (15 words). The baseline scores 1.0 everywhere; the
    # run scores 1.0 on long queries and 0.0 on short ones -> on the short slice it is worse than the
    # baseline and worse than its own average on the other queries, both with p ~ 0.
    qids = [f"q{i:02d}" for i in range(40)]
    texts = {q: ("a b c" if i < 20 else " ".join(["w"] * 15)) for i, q in enumerate(qids)}
    values = {1: {q: 1.0 for q in qids}, 2: {q: (0.0 if i < 20 else 1.0) for i, q in enumerate(qids)}}
    runs = {rid: type("R", (), {"model_name": f"m{rid}"})() for rid in (1, 2)}
    comp = Comparison("p", "test", "ndcg@10", (1, 2), 1, runs, tuple(qids), values,
                      {1: 1.0, 2: 0.5}, {2: tuple(QueryDelta(q, texts[q], 1, 1.0, values[2][q]) for q in qids)},
                      (), {1: 0, 2: 0})
    table = slice_comparison(_StubStore(texts), comp, "length", n_resamples=2000)
    short, long_ = (table.rows[0], table.rows[1])
    assert short.key == "1-5 words" and long_.key == "11-20 words"
    cell = short.cell(2)
    assert cell.mean == 0.0 and cell.delta == -1.0 and cell.mean_rest == 1.0
    assert cell.worse_than_baseline and cell.worse_than_average
    assert cell.flags == ("below own average", "below baseline")
    assert long_.cell(2).flags == () and long_.cell(2).delta == 0.0
    assert short.cell(1).flags == ()  # the baseline is flat: nothing to flag


# -- CLI -----------------------------------------------------------------------------------------
def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_compare_table_and_json(runs: tuple[Any, dict[str, int]], capsys: pytest.CaptureFixture[str]) -> None:
    store, ids = runs
    ws = str(store.ws.root)
    code, out, err = run_cli(capsys, "--workspace", ws, "compare", str(ids["bm25"]), str(ids["nostem"]),
                             "--by", "length")
    assert code == 0, err
    assert "baseline" in out and "W/T/L" in out and "by query length" in out
    code, out, err = run_cli(capsys, "--workspace", ws, "compare", str(ids["bm25"]), str(ids["nostem"]),
                             str(ids["flat"]), "--metric", "recall@100", "--baseline", str(ids["flat"]),
                             "--json")
    data = json.loads(out)
    assert code == 0 and data["baseline_id"] == ids["flat"] and len(data["tests"]) == 2
    assert all(not math.isnan(t["p_permutation"]) for t in data["tests"])
    assert "per_query" not in data


@pytest.mark.parametrize("argv, needle", [
    (["compare", "1", "999"], "no run with id 999"),
    (["compare", "1", "x2"], "'x2' is not a run id"),
    (["compare", "1", "2", "--metric", "ndcg@"], "unknown metric 'ndcg@'"),
    (["compare", "1"], "at least two runs"),
    (["compare", "RUN_BM25", "RUN_OTHER"], "different projects or splits"),
    (["compare", "RUN_BM25", "RUN_TRAIN"], "different projects or splits"),
    (["compare", "1", "2", "--by", "mood"], "unknown slice 'mood'"),
])
def test_cli_compare_mistakes_print_one_line(runs: tuple[Any, dict[str, int]], argv: list[str], needle: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    store, ids = runs
    argv = [a.replace("RUN_BM25", str(ids["bm25"])).replace("RUN_OTHER", str(ids["other"]))
            .replace("RUN_TRAIN", str(ids["train"])) for a in argv]
    code, out, err = run_cli(capsys, "--workspace", str(store.ws.root), *argv)
    assert code != 0
    assert needle in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_compare_metrics_reads_once_and_agrees_with_compare_runs(runs: tuple[Any, dict[str, int]]) -> None:
    from embtui.engine.compare import compare_metrics

    store, ids = runs
    pair = [ids["bm25"], ids["nostem"], ids["flat"]]
    grid = compare_metrics(store, pair, ["ndcg@10", "recall@100", "ndcg@20"], tests=("permutation",),
                           n_resamples=2000)
    for metric, comp in grid.items():
        single = compare_runs(store, pair, metric, tests=("permutation",), n_resamples=2000)
        assert comp.means == single.means
        assert [t.p_holm for t in comp.tests] == [t.p_holm for t in single.tests]
        assert all(t.marker in ("",) or t.marker[0] in "▲▼" for t in comp.tests)
