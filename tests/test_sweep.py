"""`embtui sweep`: a grid of truncations, int8/binary codes and rescoring over one model, every
point a run from one encoding, with retention against the float32 point; validation up front."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embtui.api.sweeps import SweepPoint, sweep_points
from embtui.errors import EmbtuiError


def test_the_grid_puts_the_reference_first_and_skips_meaningless_points() -> None:
    points = sweep_points([16, 8], ["float32", "int8", "binary"], [1, 4])
    assert points[0] == SweepPoint(None, "float32")
    assert SweepPoint(16, "float32", 4) not in points  # no rescoring of float32 vectors
    assert len(points) == 1 + 2 * (1 + 2 * 2)
    assert len(set(points)) == len(points)
    with pytest.raises(EmbtuiError, match="unknown precision 'int4'"):
        sweep_points([16], ["int4"])
    with pytest.raises(EmbtuiError, match="--rescore 0"):
        sweep_points([16], ["int8"], [0])


def test_a_sweep_encodes_once_and_every_point_is_a_run(tmp_path: Path, tiny_model: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from embtui.cli.main import main
    from tests.conftest import DEMO

    ws = ["--workspace", str(tmp_path / "ws")]
    assert main([*ws, "import", "beir", str(DEMO), "--project", "demo"]) == 0
    capsys.readouterr()
    args = [*ws, "sweep", "--project", "demo", "--model", str(tiny_model), "--truncate-dim", "24,16,8",
            "--precision", "float32,int8,binary", "--rescore", "1,4", "--device", "cpu", "--json"]
    assert main(args) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert len(runs) == 1 + 3 * 5 and len({r["id"] for r in runs}) == len(runs)
    assert runs[0]["documents_encoded"] == 400  # the reference point encodes the corpus ...
    assert all(r["documents_encoded"] == 0 for r in runs[1:])  # ... and nothing after it does
    assert runs[0]["config"] == {"truncate_dim": None, "precision": "float32", "rescore": 1, "hnsw_ef": None}
    by_config = {(r["config"]["truncate_dim"], r["config"]["precision"], r["config"]["rescore"]): r for r in runs}
    assert by_config[(8, "binary", 1)]["bytes_per_doc"] == 1 and by_config[(16, "int8", 4)]["bytes_per_doc"] == 16
    assert by_config[(24, "float32", 1)]["bytes_per_doc"] == 24 * 4
    for r in runs[1:]:
        assert r["retention"]["against_run"] == runs[0]["id"]
        assert r["retention"]["ndcg@10"] == pytest.approx(r["metrics"]["ndcg@10"] / runs[0]["metrics"]["ndcg@10"],
                                                           abs=1e-6)
    assert {r["model"] for r in runs} >= {f"{tiny_model} d8 binary x4", f"{tiny_model} d16 int8"}
    # the same sweep again reuses every run
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)["runs"]
    assert [r["id"] for r in again] == [r["id"] for r in runs] and all(r["reused"] for r in again)


def test_a_bad_sweep_makes_no_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from embtui.cli.main import main
    from embtui.store import Store
    from tests.conftest import DEMO

    ws = ["--workspace", str(tmp_path / "ws")]
    assert main([*ws, "import", "beir", str(DEMO), "--project", "demo"]) == 0
    assert main([*ws, "sweep", "--project", "demo", "--model", "nope/zzz", "--precision", "int8"]) == 2
    assert main([*ws, "sweep", "--project", "demo", "--model", "bm25", "--truncate-dim", "x"]) == 2
    assert "must be whole numbers" in capsys.readouterr().err
    assert Store.open(tmp_path / "ws").list_runs() == []
