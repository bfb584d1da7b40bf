"""`embtui sweep`: a grid of truncations, int8/binary codes, rescoring and HNSW breadth (float32 or
USearch i8/b1 over the codes) over one model, or a pipeline over its reranker's depth, every point a
run from one encoding, with retention against the first point; validation up front."""

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
    assert runs[0]["config"] == {"truncate_dim": None, "precision": "float32", "rescore": 1, "hnsw_ef": None,
                                 "depth": None}
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


def _trec(qrels, run: dict[str, dict[str, float]]) -> dict[str, float]:
    import numpy as np
    import pytrec_eval

    measures = {"ndcg_cut.10", "recall.100"}
    res = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    return {m: float(np.mean([v[m] for v in res.values()])) for m in ("ndcg_cut_10", "recall_100")}


def test_a_depth_sweep_reranks_each_depth_from_one_encoding(tmp_path: Path, tiny_model: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """bm25 → rerank with a bi-encoder at depths 20, 50, 100: one run per depth, deepest first; the
    first encodes its candidates and no point after it encodes anything; each equals plain numpy
    rescoring of bm25's top-depth (sentence-transformers vectors, trec_eval's tie order) scored by
    pytrec_eval, and records the candidate recall of bm25's top-depth."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from embtui.cli.main import main
    from embtui.store import Store
    from tests.conftest import DEMO

    ws = ["--workspace", str(tmp_path / "ws")]
    assert main([*ws, "import", "beir", str(DEMO), "--project", "demo"]) == 0
    assert main([*ws, "pipelines", "add", "cascade", "--retrieve", "bm25", "--rerank", str(tiny_model),
                 "--rerank-depth", "30"]) == 0
    assert main([*ws, "eval", "--project", "demo", "--model", "bm25", "--device", "cpu"]) == 0  # top 100
    capsys.readouterr()
    args = [*ws, "sweep", "--project", "demo", "--model", "cascade", "--depth", "20,100,50",
            "--device", "cpu", "--json"]
    assert main(args) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [r["config"]["depth"] for r in runs] == [100, 50, 20] and len({r["id"] for r in runs}) == 3
    assert [r["model"] for r in runs] == ["cascade depth100", "cascade depth50", "cascade depth20"]
    assert runs[0]["documents_encoded"] > 0  # the deepest point encodes its candidates ...
    assert [r["documents_encoded"] for r in runs[1:]] == [0, 0]  # ... and nothing after it does

    store = Store.open(tmp_path / "ws")
    [bm25_run] = [r for r in store.list_runs(project="demo") if r.model_name == "bm25"]
    bm25 = store.run_rankings(bm25_run.id)
    model = SentenceTransformer(str(tiny_model), device="cpu")
    queries, docs = store.queries("demo", "test"), store.corpus("demo")
    text_of = dict(zip(docs.ids, docs.encode_texts()))
    cand = sorted({d for row in bm25.values() for d, _ in row[:100]})
    assert runs[0]["documents_encoded"] == len(cand)
    d_vec = dict(zip(cand, model.encode([text_of[d] for d in cand], normalize_embeddings=True)))
    qids = list(bm25)
    q_vec = dict(zip(qids, model.encode([queries[q] for q in qids], normalize_embeddings=True)))
    qrels = store.qrels("demo", "test")
    for r in runs:
        depth = r["config"]["depth"]
        run = store.get_run(r["id"])
        stored = store.run_rankings(r["id"])
        rescored = {}
        for q in qids:
            scored = {d: float(np.dot(q_vec[q], d_vec[d])) for d, _ in bm25[q][:depth]}
            # score descending, then doc id descending (trec_eval's order)
            ranked = sorted(scored.items(), key=lambda kv: (-kv[1], tuple(-ord(c) for c in kv[0])))
            rescored[q] = dict(ranked)
            got = [d for d, _ in stored[q]]
            assert got == [d for d, _ in ranked], (depth, q)
        ref = _trec(qrels, rescored)
        assert r["metrics"]["ndcg@10"] == pytest.approx(ref["ndcg_cut_10"], abs=1e-4)
        assert r["metrics"]["recall@100"] == pytest.approx(ref["recall_100"], abs=1e-4)
        ceiling = _trec(qrels, {q: dict(row[:depth]) for q, row in bm25.items()})["recall_100"]
        assert r["candidate_recall"] == pytest.approx(ceiling, abs=1e-6)
        [rerank] = [st for st in run.info["pipeline"]["stages"] if st["stage"].startswith("rerank")]
        assert rerank["depth"] == depth and rerank[f"candidate_recall@{depth}"] == r["candidate_recall"]
        if r is not runs[0]:
            assert r["retention"]["against_run"] == runs[0]["id"]
            assert r["retention"]["ndcg@10"] == pytest.approx(
                r["metrics"]["ndcg@10"] / runs[0]["metrics"]["ndcg@10"], abs=1e-6)
    # the same sweep again reuses every run; the saved pipeline is unchanged
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)["runs"]
    assert [r["id"] for r in again] == [r["id"] for r in runs] and all(r["reused"] for r in again)
    assert store.get_model("cascade")["pipeline"]["rerank"][0]["depth"] == 30


def test_a_depth_sweep_needs_a_reranker(tmp_path: Path, tiny_model: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from embtui.cli.main import main
    from embtui.store import Store
    from tests.conftest import DEMO

    ws = ["--workspace", str(tmp_path / "ws")]
    assert main([*ws, "import", "beir", str(DEMO), "--project", "demo"]) == 0
    assert main([*ws, "pipelines", "add", "twice", "--retrieve", "bm25", "--retrieve", "bm25",
                 "--fuse", "rrf"]) == 0
    assert main([*ws, "pipelines", "add", "short", "--retrieve", "bm25", "--depth", "40",
                 "--rerank", str(tiny_model)]) == 0
    capsys.readouterr()
    sweep = [*ws, "sweep", "--project", "demo", "--depth", "20,50"]
    for model, said in [("bm25", "'bm25' is not a pipeline"), (str(tiny_model), "is not a pipeline"),
                        ("twice", "'twice' is a pipeline without a rerank stage"),
                        ("short", "--depth 50: the reranker of 'short' is handed only 40 candidates")]:
        assert main([*sweep, "--model", model]) == 2
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2, err
    assert main([*sweep, "--model", "short", "--precision", "int8"]) == 2
    assert "--depth sweeps a pipeline's reranker" in capsys.readouterr().err
    assert main([*sweep, "--model", "short", "--depth", "0"]) == 2
    assert Store.open(tmp_path / "ws").list_runs() == []


def test_quantised_points_with_hnsw_use_an_index_over_the_codes(tmp_path: Path, tiny_model: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """--hnsw-ef on int8/binary points searches a USearch i8/b1 index over the codes; 'exact' keeps
    the exact points; every point records its recall against the exact search of the same codes;
    the index is built once per precision and reused by the other rescorings and breadths."""
    from embtui.cli.main import main
    from embtui.store import Store
    from tests.conftest import DEMO

    ws = ["--workspace", str(tmp_path / "ws")]
    assert main([*ws, "import", "beir", str(DEMO), "--project", "demo"]) == 0
    capsys.readouterr()
    args = [*ws, "sweep", "--project", "demo", "--model", str(tiny_model), "--precision", "int8,binary",
            "--rescore", "1,4", "--hnsw-ef", "exact,64", "--device", "cpu", "--json"]
    assert main(args) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert len(runs) == 1 + 2 * 2 * 2
    assert all(r["documents_encoded"] == 0 for r in runs[1:])
    store = Store.open(tmp_path / "ws")
    by = {(r["config"]["precision"], r["config"]["rescore"], r["config"]["hnsw_ef"]): r for r in runs}
    for (precision, rescore, ef), r in by.items():
        run = store.get_run(r["id"])
        if precision == "float32":
            continue
        if ef is None:
            assert run.index_config["kind"] == "exact" and r["ann_recall@10"] is None
            continue
        assert run.index_config["kind"] == "hnsw"
        assert run.index_config["code_index"]["dtype"] == {"int8": "i8", "binary": "b1"}[precision]
        assert run.index_config["hnsw"]["expansion_search"] == 64
        assert run.index_config["reused"] is (rescore == 4)  # built by the x1 point, reused by x4
        ex = store.run_rankings(by[(precision, rescore, None)]["id"])
        ann = store.run_rankings(r["id"])
        recall = sum(len({d for d, _ in ann[q][:10]} & {d for d, _ in ex[q][:10]}) / 10 for q in ex) / len(ex)
        assert r["ann_recall@10"] == pytest.approx(recall, abs=1e-6)
        assert r["index_bytes_per_doc"] > r["bytes_per_doc"]  # the codes plus the graph
    assert by[("int8", 1, 64)]["ann_recall@10"] >= 0.9
    assert f"{tiny_model} int8 x4 ef64" in {r["model"] for r in runs}
    assert main(args) == 0  # the same sweep again: every run, the code-index ones too, is reused
    again = json.loads(capsys.readouterr().out)["runs"]
    assert [r["id"] for r in again] == [r["id"] for r in runs] and all(r["reused"] for r in again)
