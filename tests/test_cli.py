"""The headless CLI on real data: import, eval (dense and bm25), runs, run files, and its error lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from embtui.cli import main
from tests.conftest import DEMO, copy_demo


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def ws(demo_template: Path, tmp_path: Path) -> Path:
    """The demo imported by `embtui import beir` (a copy of the session's import)."""
    return copy_demo(demo_template, tmp_path / "ws")


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
    proc = subprocess.run([sys.executable, "-c", script, *args, "--force"], capture_output=True, text=True,
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
    code, out, _ = run_cli(capsys, *args, "--force")
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


# -- model names, run reuse and deletion, CLI smalls (issue 11, items 3, 5, 10) -------------------
def _run_count(ws: Path) -> int:
    from embtui.store import Store

    return len(Store(ws).list_runs())


def test_unknown_model_offline_fails_fast_naming_what_is_available(ws: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert run_cli(capsys, "--workspace", str(ws), "models", "add", "lex", "--model", "bm25")[0] == 0
    t0 = time.perf_counter()
    code, out, err = run_cli(capsys, "--workspace", str(ws), "eval", "--project", "demo", "--model", "no-such-model")
    elapsed = time.perf_counter() - t0
    assert code == 2 and elapsed < 1.0, elapsed
    assert "unknown model 'no-such-model'" in err and "HF_HUB_OFFLINE=1" in err
    for name in ("bm25", "all-MiniLM-L6-v2", "lex", "local model folder", "embtui models add"):
        assert name in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert _run_count(ws) == 0
    # detached: no job either
    code, _, err = run_cli(capsys, "--workspace", str(ws), "eval", "--project", "demo", "--model", "no-such-model",
                           "--detach")
    assert code == 2 and "unknown model" in err
    from embtui.jobs import list_jobs

    assert list(list_jobs(str(ws))) == [] and _run_count(ws) == 0
    # a near miss is named
    _, _, err = run_cli(capsys, "--workspace", str(ws), "eval", "--project", "demo", "--model", "all-MiniLM-L6-v3")
    assert "did you mean 'all-MiniLM-L6-v2'" in err


def test_models_add_unknown_id_offline_saves_nothing(ws: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run_cli(capsys, "--workspace", str(ws), "models", "add", "x", "--model", "org/no-such-model")
    assert code == 2 and "unknown model 'org/no-such-model'" in err
    code, out, _ = run_cli(capsys, "--workspace", str(ws), "models", "--json")
    assert json.loads(out)["models"] == []


def test_identical_eval_reuses_the_run_unless_forced(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--workspace", str(ws), "eval", "--project", "demo", "--model", "bm25", "--json"]
    first = json.loads(run_cli(capsys, *args)[1])["runs"][0]
    code, out, err = run_cli(capsys, *args)
    again = json.loads(out)["runs"][0]
    assert code == 0 and again["id"] == first["id"] and again["reused"] is True
    assert f"run #{first['id']} is identical (same model, data, split, index); reused" in err
    assert "--force" in err and _run_count(ws) == 1
    # a different index depth or split is not identical
    other = json.loads(run_cli(capsys, *args, "--split", "train")[1])["runs"][0]
    assert other["id"] != first["id"] and other["split"] == "train"
    forced = json.loads(run_cli(capsys, *args, "--force")[1])["runs"][0]
    assert forced["id"] not in (first["id"], other["id"]) and forced["reused"] is False
    assert forced["metrics"] == first["metrics"] and _run_count(ws) == 3
    # a reused run still writes its run file from the stored rankings
    run_file = ws.parent / "again.trec"
    code, _, err = run_cli(capsys, *args, "--run-file", str(run_file))
    assert code == 0 and "reused" not in err  # depth 1000 differs from the stored runs' depth
    code, _, err = run_cli(capsys, *args, "--run-file", str(run_file))
    assert code == 0 and "reused" in err and len(run_file.read_text().splitlines()) == 100 * 400


def test_runs_delete_needs_confirmation_and_removes_everything(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from embtui.store import Store

    base = ["--workspace", str(ws)]
    run_id = json.loads(run_cli(capsys, *base, "eval", "--project", "demo", "--model", "bm25", "--json")[1])["runs"][0]["id"]
    keep = json.loads(run_cli(capsys, *base, "eval", "--project", "demo", "--model", "bm25", "--force",
                              "--json")[1])["runs"][0]["id"]
    store = Store(ws)
    qid = next(iter(store.queries("demo", "test")))
    store.annotations.add("demo", qid, "acronym", run_id=run_id)
    code, _, err = run_cli(capsys, *base, "runs", "delete", str(run_id))  # stdin is not a terminal
    assert code == 2 and "pass --yes" in err and _run_count(ws) == 2
    code, _, err = run_cli(capsys, *base, "runs", "delete", str(run_id), "999", "--yes")
    assert code == 2 and "no run with id 999" in err and _run_count(ws) == 2  # all or nothing
    code, out, _ = run_cli(capsys, *base, "runs", "delete", str(run_id), "--yes")
    assert code == 0 and f"deleted run(s) #{run_id}" in out
    assert [r.id for r in store.list_runs()] == [keep]
    assert store.run_rankings(run_id) == {} and store.run_query_metrics(run_id) == {}
    assert store.run_rankings(keep) != {}
    (ann,) = store.annotations.find("demo")
    assert ann.label == "acronym" and ann.run_id is None  # the tag outlives the run


def test_eval_default_split_is_the_only_split_or_test(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"query": f"what is {w}", "positive": f"{w} is a thing"}) + "\n"
                             for w in ("apple", "pear", "plum")))
    ws = str(tmp_path / "ws")
    assert run_cli(capsys, "--workspace", ws, "import", "pairs", str(pairs), "--project", "p")[0] == 0
    code, out, err = run_cli(capsys, "--workspace", ws, "eval", "--project", "p", "--model", "bm25", "--json")
    assert code == 0, err
    assert json.loads(out)["runs"][0]["split"] == "train"
    assert run_cli(capsys, "--workspace", ws, "import", "pairs", str(pairs), "--project", "q", "--split", "dev")[0] == 0
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "text": "apples"}) + "\n")
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "apples"}) + "\n")
    for split in ("train", "dev"):
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    assert run_cli(capsys, "--workspace", ws, "import", "beir", str(folder), "--project", "b")[0] == 0
    code, _, err = run_cli(capsys, "--workspace", ws, "eval", "--project", "b", "--model", "bm25")
    assert code == 2 and "no split 'test'" in err and "dev, train" in err


def test_models_add_existing_name_needs_replace_and_listing_shows_prompts(ws: Path, tiny_model: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--workspace", str(ws), "models"]
    assert run_cli(capsys, *base, "add", "m", "--model", str(tiny_model), "--query-prompt", "query: ")[0] == 0
    code, _, err = run_cli(capsys, *base, "add", "m", "--model", "bm25")
    assert code == 2 and "already saved" in err and "--replace" in err
    code, out, _ = run_cli(capsys, *base, "--json")
    assert json.loads(out)["models"][0]["query_prompt"] == "query: "
    assert run_cli(capsys, *base, "add", "lex", "--model", "bm25")[0] == 0
    code, out, _ = run_cli(capsys, *base)
    header, _, *rows = out.splitlines()
    assert "query prompt" in header and "doc prompt" in header
    row = {line.split()[0]: line for line in rows}
    assert "'query: '" in row["m"] and "fp32" in row["m"]
    assert row["lex"].split() == ["lex", "bm25"]  # no precision / batch / device for a lexical model
    code, out, _ = run_cli(capsys, *base, "add", "m", "--model", "bm25", "--replace")
    assert code == 0 and "replaced model 'm'" in out


def test_devices_lists_cpus_without_importing_torch(tmp_path: Path) -> None:
    script = ("import sys, json; from embtui.cli import main; rc = main(sys.argv[1:]); "
              "print(json.dumps({'rc': rc, 'torch': 'torch' in sys.modules}), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", script, "--workspace", str(tmp_path / "w"), "devices", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == {"rc": 0, "torch": False}
    assert json.loads(proc.stdout)["devices"][0]["id"] == "cpu"
    proc = subprocess.run([sys.executable, "-c", script, "--workspace", str(tmp_path / "w"), "devices", "--json",
                           "--torch"], capture_output=True, text=True, timeout=300)
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == {"rc": 0, "torch": True}
