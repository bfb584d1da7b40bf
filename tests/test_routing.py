"""Routing: the oracle against numpy, the cross-validated router against scikit-learn's own
cross_val_predict on the same folds, the features by hand, and `embtui route`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from embtui.analysis.routing import oracle_choice, query_features, route
from embtui.errors import EmbtuiError


def test_features_by_hand() -> None:
    corpus = ["the cat sat", "the dog ran", "a cat and a dog"]
    [f] = query_features(["The cat flew 42"], corpus)
    rare = math.log(4)  # (3 documents + 1) / (0 + 1)
    idf = [math.log(4 / 3), math.log(4 / 3), rare, rare]  # the, cat: in 2 of 3; flew and 42 unknown
    assert f == pytest.approx([4, 0.5, np.mean(idf), rare, 0.25])
    assert query_features([""], corpus).tolist() == [[0.0] * 5]


def _data(seed: int = 0, n: int = 120):
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n, 5))
    # run 1 wins where feature 0 is high, run 0 elsewhere (plus noise): a router can learn it
    a = np.clip(0.5 - 0.2 * feats[:, 0] + rng.normal(0, 0.1, n), 0, 1)
    b = np.clip(0.5 + 0.2 * feats[:, 0] + rng.normal(0, 0.1, n), 0, 1)
    qids = [f"q{i:03d}" for i in range(n)]
    values = {7: dict(zip(qids, a)), 9: dict(zip(qids, b))}
    return values, dict(zip(qids, feats)), qids, np.column_stack([a, b]), feats


def test_oracle_and_router_against_numpy_and_sklearn() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    values, features, qids, matrix, x = _data()
    rep = route(values, features, folds=5, seed=3)
    assert rep.query_ids == tuple(qids) and rep.run_ids == (7, 9)
    assert rep.oracle.mean() == pytest.approx(matrix.max(axis=1).mean())
    best = int(np.argmax(matrix.mean(axis=0)))
    y = np.argmax(matrix, axis=1)
    y[matrix[:, best] >= matrix.max(axis=1)] = best
    ref = cross_val_predict(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), x, y,
                            cv=KFold(5, shuffle=True, random_state=3))
    assert rep.router_choice.tolist() == ref.tolist()
    assert rep.router.mean() > matrix.mean(axis=0).max()  # the signal is learnable
    assert sum(rep.router_share().values()) == pytest.approx(1.0)


def test_ties_go_to_the_preferred_run() -> None:
    v = np.array([[1.0, 1.0, 0.5], [0.2, 0.9, 0.9], [0.0, 0.0, 0.0]])
    assert oracle_choice(v).tolist() == [0, 1, 0]
    assert oracle_choice(v, prefer=2).tolist() == [0, 2, 2]


def test_route_refuses_what_it_cannot_do() -> None:
    values, features, *_ = _data(n=8)
    with pytest.raises(EmbtuiError, match="two or more runs"):
        route({7: values[7]}, features)
    with pytest.raises(EmbtuiError, match="too few for 5-fold"):
        route(values, features)


def test_cli_route(demo_store, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from embtui.api.evaluations import plan_evaluation, run_inline
    from embtui.cli.main import main

    outcomes = run_inline(plan_evaluation(demo_store, "demo", ["bm25", str(tiny_model)], split="test",
                                          device="cpu"))
    ids = [str(o.run.id) for o in outcomes]
    ws = ["--workspace", str(demo_store.ws.root)]
    assert main([*ws, "route", *ids, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    means = {r["id"]: r["mean"] for r in out["runs"]}
    assert means == {o.run.id: pytest.approx(o.run.metrics["ndcg@10"]) for o in outcomes}
    assert out["oracle"]["mean"] >= max(means.values()) - 1e-12
    assert out["best_single"]["id"] == max(means, key=means.get)
    assert 0 <= out["router"]["p_vs_best"] <= 1 and out["queries"] == 100
    assert main([*ws, "route", ids[0]]) == 2
    assert "two or more runs" in capsys.readouterr().err
