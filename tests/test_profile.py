"""Profiles: measured on the project's texts, stored per (model, device, precision), and the cost
model's extrapolation checked by hand from the measured numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from embtui.api.profiles import load_profiles, run_profile
from embtui.engine.profile import Profile
from embtui.errors import EmbtuiError

FAST = {"n_queries": 20, "warmup": 2, "batch_sizes": (1, 8), "sample_docs": 24}


def test_a_dense_profile_measures_and_is_stored(demo_store, tiny_model: Path) -> None:
    prof = run_profile(demo_store, "demo", str(tiny_model), device="cpu", **FAST)
    assert prof.kind == "dense" and prof.device == "cpu" and prof.documents == 400
    lat = prof.latency_ms
    assert lat["n"] == 20 and 0 < lat["p50"] <= lat["p95"] <= lat["p99"]
    assert set(prof.encode["documents"]) == {"1", "8"} and all(v > 0 for v in prof.encode["queries"].values())
    assert prof.bytes_per_doc["float32"] == 32 * 4 and prof.bytes_per_doc["int8"] == 32
    assert prof.bytes_per_doc["binary"] == 4 and prof.bytes_per_doc["hnsw_f32"] > 128
    assert prof.search_ms["exact"]["half_docs"] == 200 and prof.index_build_s > 0
    [stored] = load_profiles(demo_store, "demo")
    assert stored == prof
    again = run_profile(demo_store, "demo", str(tiny_model), device="cpu", **FAST)
    assert load_profiles(demo_store, "demo") == [again]  # the latest replaces the one before


def test_a_quantised_profile_is_its_own_entry(demo_store, tiny_model: Path) -> None:
    run_profile(demo_store, "demo", str(tiny_model), device="cpu", **FAST)
    q = run_profile(demo_store, "demo", str(tiny_model), device="cpu", overrides={"quantize": "binary"}, **FAST)
    assert q.precision == "binary"
    assert sorted(p.precision for p in load_profiles(demo_store, "demo")) == ["binary", "float32"]


def test_a_bm25_profile(demo_store) -> None:
    prof = run_profile(demo_store, "demo", "bm25", **FAST)
    assert prof.kind == "bm25" and prof.encode == {} and prof.bytes_per_doc["index"] > 0
    assert prof.latency_ms["p99"] >= prof.latency_ms["p50"] > 0


def test_the_cost_model_extrapolates_as_it_says() -> None:
    prof = Profile("m", "dense", "cpu", "float32", 1000, 1.0, 100.0, {"p50": 1, "p95": 2, "p99": 3, "mean": 1, "n": 5},
                   {"exact": {"docs": 1000, "ms": 2.0, "half_docs": 500, "half_ms": 1.0},
                    "hnsw": {"docs": 1000, "ms": 0.5}},
                   {"float32": 1536.0, "int8": 384.0}, {"documents": {"16": 200.0, "64": 250.0}})
    cost = prof.cost(10_000_000)
    assert cost["encode_hours"] == pytest.approx(10_000_000 / 250 / 3600, abs=1e-3)
    assert cost["memory_gb"] == {"float32": pytest.approx(15.36), "int8": pytest.approx(3.84)}
    assert cost["exact_ms"] == pytest.approx(2.0 + (1.0 / 500) * (10_000_000 - 1000), abs=1e-3)
    assert cost["hnsw_ms"] == pytest.approx(0.5 * math.log(10_000_000) / math.log(1000), abs=1e-3)
    assert "linear" in cost["exact_ms_note"] and "log(N)" in cost["hnsw_ms_note"]


def test_profile_refuses_pipelines_and_unknown_models(demo_store) -> None:
    from embtui.api.pipelines import make_pipeline

    make_pipeline(demo_store, "p", ["bm25", "bm25"], fuse="rrf")
    with pytest.raises(EmbtuiError, match="'p' is a pipeline"):
        run_profile(demo_store, "demo", "p", **FAST)
    with pytest.raises(EmbtuiError, match="unknown model 'nope/zzz'"):
        run_profile(demo_store, "demo", "nope/zzz", **FAST)
    assert load_profiles(demo_store, "demo") == []


def test_cli_profile_json_with_a_cost(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from embtui.cli.main import main
    from embtui.api.profiles import parse_count
    from tests.conftest import DEMO

    assert [parse_count(x) for x in ("10M", "500k", "2.5m", "1200")] == [10**7, 500_000, 2_500_000, 1200]
    ws = ["--workspace", str(tmp_path / "ws")]
    assert main([*ws, "import", "beir", str(DEMO), "--project", "demo"]) == 0
    capsys.readouterr()
    assert main([*ws, "profile", "--project", "demo", "--model", "bm25", "--queries", "15", "--docs", "1M",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profile"]["latency_ms"]["n"] == 15 and out["cost"]["documents"] == 10**6
    assert main([*ws, "profile", "--project", "demo", "--model", "bm25", "--docs", "lots"]) == 2
    assert "not a number of documents" in capsys.readouterr().err
