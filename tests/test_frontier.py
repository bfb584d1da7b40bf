"""The frontier: Pareto sets against an independent sweep (sort by cost, running best quality),
constraints, the text scatter, and the CLI answering "best under constraints" with its test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embtui.analysis.frontier import Point, pareto, scatter, under_constraints


def _sweep_line(q: np.ndarray, c: np.ndarray) -> set[int]:
    """Independent: walk by cost ascending (quality descending within a cost); a point is on the
    frontier when its quality beats every cheaper point's."""
    order = np.lexsort((-q, c))
    best, out = -np.inf, set()
    for i in order:
        if q[i] > best:
            out.add(int(i))
            best = q[i]
    return out


@pytest.mark.parametrize("seed", range(5))
def test_pareto_equals_the_sweep_line(seed: int) -> None:
    rng = np.random.default_rng(seed)
    q = rng.integers(0, 20, 60) / 20  # coarse values: equal qualities and costs happen
    c = rng.integers(1, 15, 60).astype(float)
    points = [Point(i, str(i), float(q[i]), float(c[i])) for i in range(60)]
    assert pareto(points, "p99_ms") == _sweep_line(q, c)


def test_points_without_a_cost_are_left_out() -> None:
    pts = [Point(1, "a", 0.9), Point(2, "b", 0.5, 3.0, 10.0), Point(3, "c", 0.6, 4.0, None)]
    assert pareto(pts, "p99_ms") == {2, 3} and pareto(pts, "bytes_per_doc") == {2}
    assert [p.run_id for p in under_constraints(pts, max_p99_ms=5)] == [3, 2]
    assert [p.run_id for p in under_constraints(pts, max_p99_ms=5, max_bytes_per_doc=50)] == [2]
    assert [p.run_id for p in under_constraints(pts)] == [1, 3, 2]


def test_scatter_marks_the_frontier_and_numbers_the_points() -> None:
    pts = [Point(1, "a", 0.6, 10.0), Point(2, "b", 0.7, 30.0), Point(3, "c", 0.5, 20.0)]
    rows = scatter(pts, "p99_ms", pareto(pts, "p99_ms"), width=40, height=8)
    text = "\n".join(rows)
    assert "●1" in text and "●2" in text and "·3" in text
    assert rows[0].strip().startswith("0.700") and "10" in rows[-1] and "30" in rows[-1]
    assert scatter([Point(1, "a", 0.5)], "p99_ms", set()) == ["(no point has this cost yet)"]


def test_best_under_constraints_tests_against_the_next_best(demo_store, tiny_model: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from embtui.api.evaluations import plan_evaluation, run_inline
    from embtui.api.profiles import run_profile
    from embtui.cli.main import main
    from embtui.engine.compare import compare_runs

    store = demo_store
    outcomes = run_inline(plan_evaluation(store, "demo", ["bm25", str(tiny_model)], split="test", device="cpu"))
    for name in ("bm25", str(tiny_model)):
        run_profile(store, "demo", name, device="cpu", n_queries=10, warmup=1, batch_sizes=(8,), sample_docs=16)
    ws = ["--workspace", str(store.ws.root)]
    assert main([*ws, "frontier", "--project", "demo", "--max-p99", "10000", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {p["run_id"] for p in out["points"]} == {o.run.id for o in outcomes}
    assert all(p["p99_ms"] is not None for p in out["points"])
    best, other = sorted((o.run for o in outcomes), key=lambda r: -r.metrics["ndcg@10"])
    assert out["best"]["run_id"] == best.id and out["best"]["runner_up"] == other.id
    ref = compare_runs(store, [other.id, best.id], "ndcg@10", baseline=other.id).tests[0]
    assert out["best"]["p_value"] == pytest.approx(ref.p_primary) and out["best"]["significant"] == ref.significant
    # memory at 10M documents: bytes per document x N
    assert main([*ws, "frontier", "--project", "demo", "--docs", "10M", "--json"]) == 0
    pts = json.loads(capsys.readouterr().out)["points"]
    dense = next(p for p in pts if p["run_id"] == next(o.run.id for o in outcomes if o.run.model_name != "bm25"))
    assert dense["memory_gb"] == pytest.approx(32 * 4 * 10**7 / 1e9)
    assert main([*ws, "frontier", "--project", "demo", "--max-p99", "0.000001"]) == 0
    assert "no run meets the constraints" in capsys.readouterr().out
