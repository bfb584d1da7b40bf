"""The headless CLI on real data: import, eval (dense and bm25), runs, run files, and its error lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from embtui.cli import main
from tests.conftest import DEMO


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def ws(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    root = tmp_path / "ws"
    code, out, _ = run_cli(capsys, "--workspace", str(root), "import", "beir", str(DEMO), "--project", "demo")
    assert code == 0 and "400" in out
    return root


def test_projects_json_lists_counts(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--workspace", str(ws), "projects", "--json")
    data = json.loads(out)
    assert code == 0
    (p,) = data["projects"]
    assert p["name"] == "demo" and p["documents"] == 400 and p["queries"] == 150
    assert p["splits"]["test"]["queries"] == 100 and p["splits"]["train"]["queries"] == 50


def test_eval_json_and_run_file_agree_with_pytrec_eval(ws: Path, tiny_model: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import pytrec_eval

    run_file = tmp_path / "run.trec"
    code, out, err = run_cli(capsys, "--workspace", str(ws), "eval", "--project", "demo", "--model",
                             str(tiny_model), "--device", "cpu", "--json", "--run-file", str(run_file))
    assert code == 0, err
    (run,) = json.loads(out)["runs"]
    assert run["status"] == "done" and run["info"]["scored"] == 100
    assert run["info"]["max_seq_length"] == 64  # the tiny model's own default, recorded for reproduction
    for name in ("ndcg@10", "mrr@10", "recall@100", "map@100", "p@1", "success@5", "r-precision"):
        assert name in run["metrics"]
    lines = run_file.read_text().splitlines()
    assert len(lines) == 100 * 400  # every query gets min(1000, |corpus|) results
    qid, q0, doc, rank, score, tag = lines[0].split()
    assert q0 == "Q0" and rank == "1" and tag.startswith("embtui-")

    qrels: dict[str, dict[str, int]] = {}
    for line in (DEMO / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        q, d, g = line.split("\t")
        qrels.setdefault(q, {})[d] = int(g)
    trec_run: dict[str, dict[str, float]] = {}
    for line in lines:
        q, _, d, _, s, _ = line.split()
        trec_run.setdefault(q, {})[d] = float(s)
    res = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100", "map_cut.100"}).evaluate(trec_run)
    mean = lambda m: sum(v[m] for v in res.values()) / len(res)  # noqa: E731
    assert abs(mean("ndcg_cut_10") - run["metrics"]["ndcg@10"]) < 1e-9
    assert abs(mean("recall_100") - run["metrics"]["recall@100"]) < 1e-9
    assert abs(mean("map_cut_100") - run["metrics"]["map@100"]) < 1e-9


def test_second_eval_encodes_nothing_and_never_imports_torch(ws: Path, tiny_model: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--workspace", str(ws), "eval", "--project", "demo", "--model", str(tiny_model), "--json"]
    code, out, _ = run_cli(capsys, *args)
    first = json.loads(out)["runs"][0]
    assert code == 0 and first["info"]["encode"]["documents"]["encoded"] == 400
    script = (
        "import sys, json; from embtui.cli import main; rc = main(sys.argv[1:]); "
        "print(json.dumps({'rc': rc, 'torch': 'torch' in sys.modules, "
        "'st': 'sentence_transformers' in sys.modules}), file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    status = json.loads(proc.stderr.strip().splitlines()[-1])
    second = json.loads(proc.stdout)["runs"][0]
    assert status == {"rc": 0, "torch": False, "st": False}
    assert second["info"]["encode"]["documents"] == {**second["info"]["encode"]["documents"], "encoded": 0, "cached": 400}
    assert second["metrics"] == first["metrics"]
    assert second["id"] != first["id"]


def test_bm25_eval_and_runs_listing(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--workspace", str(ws), "eval", "--project", "demo", "--model", "bm25")
    assert code == 0
    assert "bm25" in out and "ndcg@10" in out
    code, out, _ = run_cli(capsys, "--workspace", str(ws), "runs", "--json")
    (run,) = json.loads(out)["runs"]
    assert run["model"] == "bm25" and run["index"]["kind"] == "bm25"
    # BM25 on the demo cut is a strong baseline: a broken tokenizer/stemmer would drop far below this
    assert run["metrics"]["ndcg@10"] > 0.6


def test_models_add_then_eval_by_saved_name(ws: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--workspace", str(ws), "models", "add", "tiny", "--model", str(tiny_model),
                           "--batch-size", "7", "--query-prompt", "query: ")
    assert code == 0
    code, out, _ = run_cli(capsys, "--workspace", str(ws), "models", "--json")
    (m,) = json.loads(out)["models"]
    assert m["name"] == "tiny" and m["batch_size"] == 7 and m["query_prompt"] == "query: "
    code, out, _ = run_cli(capsys, "--workspace", str(ws), "eval", "--project", "demo", "--model", "tiny", "--json")
    run = json.loads(out)["runs"][0]
    assert run["model"] == "tiny" and run["model_spec"]["query_prompt"] == "query: "
    assert run["info"]["encode"]["queries"]["batch_size"] == 7


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["eval", "--project", "nope", "--model", "bm25"], "no project named 'nope'"),
        (["eval", "--project", "demo", "--model", "bm25", "--split", "dev"], "no judgments for split 'dev'"),
        (["eval", "--project", "demo", "--model", "bm25", "--k", "10,x"], "x"),
        (["eval", "--project", "demo", "--model", "bm25", "--device", "gpu7"], "unknown device 'gpu7'"),
        (["eval", "--project", "demo", "--model", "./no/such/model"], "does not exist"),
        (["eval", "--project", "demo", "--model", "bm25", "--batch-size", "0"], "batch size"),
        (["models", "remove", "ghost"], "no saved model named 'ghost'"),
        (["import", "beir", "/no/such/folder", "--project", "x"], "/no/such/folder"),
    ],
)
def test_mistakes_print_one_line_and_exit_nonzero(ws: Path, argv: list[str], needle: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "--workspace", str(ws), *argv)
    assert code != 0
    assert needle in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_import_over_existing_project_needs_replace(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "--workspace", str(ws), "import", "beir", str(DEMO), "--project", "demo")
    assert code == 2 and "--replace" in err
    code, _, _ = run_cli(capsys, "--workspace", str(ws), "import", "beir", str(DEMO), "--project", "demo", "--replace")
    assert code == 0


def test_python_dash_m_and_console_script_work(ws: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "embtui", "--workspace", str(ws), "projects"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "demo" in proc.stdout


def test_hnsw_eval_reports_recall_and_reuses_saved_index(ws: Path, tiny_model: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--workspace", str(ws), "eval", "--project", "demo", "--model", str(tiny_model),
            "--index", "hnsw", "--json"]
    code, out, _ = run_cli(capsys, *args)
    first = json.loads(out)["runs"][0]
    assert code == 0 and first["index"]["kind"] == "hnsw" and first["index"]["reused"] is False
    assert first["info"]["ann_recall@10"] >= 0.95 and first["info"]["index_bytes"] > 0
    assert (ws / first["index"]["path"]).exists()
    code, out, _ = run_cli(capsys, *args)
    second = json.loads(out)["runs"][0]
    assert second["index"]["reused"] is True
    assert second["metrics"] == first["metrics"]
    code, out, _ = run_cli(capsys, "--workspace", str(ws), "eval", "--project", "demo", "--model",
                           str(tiny_model), "--index", "exact", "--json")
    exact = json.loads(out)["runs"][0]
    assert abs(exact["metrics"]["ndcg@10"] - first["metrics"]["ndcg@10"]) < 0.05


def test_devices_json_lists_cpu(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run_cli(capsys, "--workspace", str(tmp_path / "w"), "devices", "--json")
    devices = json.loads(out)["devices"]
    assert code == 0 and devices[0]["id"] == "cpu" and devices[0]["total_memory"] > 0


def test_ignore_identical_ids_drops_the_query_itself(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    docs = [("q1", "apples and pears"), ("d1", "apples and pears grow on trees"), ("d2", "cars and roads")]
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in docs))
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "apples and pears"}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    ws = str(tmp_path / "ws")
    assert run_cli(capsys, "--workspace", ws, "import", "beir", str(folder), "--project", "p")[0] == 0
    rankings = {}
    for flag in ([], ["--ignore-identical-ids"]):
        code, out, _ = run_cli(capsys, "--workspace", ws, "eval", "--project", "p", "--model", "bm25",
                               "--json", *flag)
        run_id = json.loads(out)["runs"][0]["id"]
        from embtui.store import Store

        rankings[bool(flag)] = [d for d, _ in Store(ws).run_rankings(run_id)["q1"]]
    assert rankings[False][0] == "q1"
    assert "q1" not in rankings[True] and rankings[True][0] == "d1"


def test_corpus_larger_than_the_memory_budget_is_searched_from_a_memory_map(demo_store, tiny_model: Path) -> None:
    from embtui.engine.evaluate import EvalRequest, run_evaluation
    from embtui.engine.models import ModelSpec

    spec = ModelSpec(model=str(tiny_model))
    in_ram = run_evaluation(demo_store, EvalRequest(project="demo", model=spec))
    spilled = run_evaluation(demo_store, EvalRequest(project="demo", model=spec, max_in_memory_bytes=1024))
    assert in_ram.run.info["embeddings_memory_mapped"] is False
    assert spilled.run.info["embeddings_memory_mapped"] is True
    assert spilled.run.metrics == in_ram.run.metrics and spilled.rankings == in_ram.rankings
    assert not list(demo_store.ws.runs_dir.glob("*.npy")), "the spill file is removed after the run"
