"""Exports and reports: hard negatives (datasets + sentence-transformers round trip) and MD/HTML/CSV/JSON reports."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest

from embtui.cli import main
from embtui.api.negatives import export_negatives, negative_rows
from embtui.api.report import build_report, write_report
from tests.conftest import DEMO


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, int, int]:
    """The demo project with two real BM25 runs (stemmed baseline, unstemmed), a tag and an overlay judgment."""
    from embtui.data.beir import import_beir
    from embtui.engine.evaluate import EvalRequest, run_evaluation
    from embtui.engine.models import ModelSpec
    from embtui.store import Store

    store = Store.open(tmp_path_factory.mktemp("report") / "ws")
    import_beir(store, DEMO, "demo")
    base = run_evaluation(store, EvalRequest(project="demo", model=ModelSpec(model="bm25"))).run.id
    other = run_evaluation(store, EvalRequest(project="demo", model=ModelSpec(
        model="bm25", name="bm25-nostem", bm25={"stemmer": None}))).run.id
    return store, base, other


def _failed_query(store: Any, run_id: int) -> tuple[str, list[str], str]:
    """A query whose judged document is not first: (query, ranked doc ids, its relevant doc)."""
    qrels = store.qrels("demo", "test")
    for q, row in sorted(store.run_rankings(run_id).items()):
        ranked = [d for d, _ in row]
        rel = [d for d, g in qrels[q].items() if g > 0]
        if len(rel) == 1 and rel[0] in ranked and 3 <= ranked.index(rel[0]) < 20:
            return q, ranked, rel[0]
    raise AssertionError("no suitable failed query in the demo run")


# -- hard negatives ---------------------------------------------------------------------------------
def test_negatives_are_top_non_relevant_docs_and_respect_the_overlay(tmp_path: Path, store: Any) -> None:
    from embtui.data.beir import import_beir
    from embtui.engine.evaluate import EvalRequest, run_evaluation
    from embtui.engine.models import ModelSpec

    import_beir(store, DEMO, "demo")
    run_id = run_evaluation(store, EvalRequest(project="demo", model=ModelSpec(model="bm25"))).run.id
    q, ranked, rel = _failed_query(store, run_id)
    # a person says the top result is actually relevant, and the second is judged not relevant
    store.annotations.set_judgment("demo", "test", q, ranked[0], 1)
    store.annotations.set_judgment("demo", "test", q, ranked[1], 0)
    rows, counts = negative_rows(store, run_id, max_negatives=3)
    docs = store.documents("demo", ranked)
    text = {d: (t + " " + x).strip() for d, (t, x) in docs.items()}
    query_text = store.queries("demo")[q]
    mine = [r for r in rows if r["anchor"] == query_text]
    # the overlay's relevant doc is a positive too; it ranks first so only the judged doc gets a row
    assert [r["positive"] for r in mine] == [text[rel]]
    expect = [d for d in ranked if d not in (ranked[0], ranked[1], rel)][:3]
    assert [mine[0][f"negative_{j}"] for j in (1, 2, 3)] == [text[d] for d in expect]
    assert counts["failed_queries"] >= 1 and counts["queries"] == len({r["anchor"] for r in rows})
    # --all-queries adds the pairs whose positive was already first
    all_rows, _ = negative_rows(store, run_id, max_negatives=3, all_queries=True)
    assert len(all_rows) > len(rows) and all(set(r) == set(all_rows[0]) for r in all_rows)


def test_negatives_round_trip_through_datasets_and_one_training_step(
        ws: tuple[Any, int, int], tiny_model: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    store, base, _ = ws
    jsonl = export_negatives(store, base, tmp_path / "neg.jsonl", max_negatives=2)
    parquet = export_negatives(store, base, tmp_path / "neg.parquet", max_negatives=2)
    assert jsonl.rows == parquet.rows > 4
    columns = ["anchor", "positive", "negative_1", "negative_2"]
    ds_json = datasets.load_dataset("json", data_files=str(jsonl.path), split="train")
    ds_pq = datasets.load_dataset("parquet", data_files=str(parquet.path), split="train")
    assert ds_json.column_names == ds_pq.column_names == columns
    assert ds_json.to_list() == ds_pq.to_list()
    assert len({row["positive"] for row in ds_json}) > 1

    from sentence_transformers import SentenceTransformer
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    model = SentenceTransformer(str(tiny_model), device="cpu")
    loss = MultipleNegativesRankingLoss(model)
    train = ds_pq.select(range(4))
    if importlib.util.find_spec("accelerate") is not None:
        from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

        args = SentenceTransformerTrainingArguments(
            output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=4, use_cpu=True,
            report_to=[], save_strategy="no", logging_strategy="no", disable_tqdm=True)
        result = SentenceTransformerTrainer(model=model, args=args, train_dataset=train, loss=loss).train()
        assert result.global_step == 1 and result.training_loss > 0
    else:  # the Trainer needs accelerate; the same columns through the loss by hand
        import torch

        features = [model.tokenize(train[c]) for c in train.column_names]
        value = loss(features, torch.empty(0))
        value.backward()
        assert value.item() > 0


def test_cli_export_negatives(ws: tuple[Any, int, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, base, _ = ws
    out = tmp_path / "n.parquet"
    code = main(["--workspace", str(store.ws.root), "export", "negatives", str(base), "--out", str(out),
                 "--max-negatives", "3", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and out.exists() and data["columns"][-1] == "negative_3" and data["rows"] > 0
    for argv, needle in ((["export", "negatives", str(base), "--out", str(tmp_path / "n.txt")],
                          "cannot tell the format"),
                         (["export", "negatives", "424242", "--out", str(out)], "no run with id 424242")):
        code = main(["--workspace", str(store.ws.root), *argv])
        err = capsys.readouterr().err
        assert code != 0 and needle in err and len(err.strip().splitlines()) == 1


# -- reports ----------------------------------------------------------------------------------------
def test_report_files_carry_results_and_full_config(ws: tuple[Any, int, int], tmp_path: Path) -> None:
    store, base, other = ws
    q, ranked, _ = _failed_query(store, base)
    store.annotations.add("demo", q, "acronym", note="for the report")
    store.annotations.set_judgment("demo", "test", q, ranked[0], 1)
    try:
        report = build_report(store, [other, base], "ndcg@10", baseline=base,
                              slices=["length", "relevant", "tag"], top=5)
        paths = {ext: write_report(report, tmp_path / f"r.{ext}") for ext in ("md", "html", "csv", "json")}
    finally:
        store.annotations.remove_judgment("demo", "test", q, ranked[0])
        store.annotations.remove("demo", q, "acronym")
    runs = [store.get_run(r) for r in (other, base)]
    project = store.get_project("demo")
    must_have = [project.dataset_hash, runs[0].info["corpus_hash"], "bm25-nostem", '"stemmer": null',
                 runs[1].model_fingerprint, runs[1].versions["bm25s"], "embtui eval --project demo"]

    page = paths["html"].read_text()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page and "<svg" in page
    for needle in ("<script", "src=", "href=", "<link", "@import", "url("):
        assert needle not in page, needle
    assert not re.search(r"<[^>]*https?:[^>]*>", page), "no network reference in any tag"
    md = paths["md"].read_text()
    for text in (page, md):
        for needle in must_have:
            assert needle.replace('"', "&quot;") in text or needle in text, needle
        assert "Significance" in text and "randomization" in text and "Slices" in text
        assert "Largest losses" in text or "Largest wins" in text
    assert "Corrected judgments (1 added by hand)" in md and "acronym" in md

    comp = report.comparison
    with open(paths["csv"], newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(comp.query_ids) == 100
    row = next(r for r in rows if r["query_id"] == q)
    assert float(row[f"ndcg@10:run{other}"]) == comp.values[other][q]
    assert float(row[f"delta:run{other}-run{base}"]) == pytest.approx(comp.values[other][q] - comp.values[base][q])
    assert row["tags"] == "acronym" and row["slice:length"].endswith("words")

    data = json.loads(paths["json"].read_text())
    assert [c["run_id"] for c in data["configs"]] == [other, base]
    assert data["configs"][0]["model_spec"]["bm25"] == {"stemmer": None}
    assert data["comparison"]["tests"][0]["p_permutation"] == comp.tests[0].result.p_permutation
    assert set(data["corrected"]) == {str(other), str(base)}


def test_cli_report_and_its_errors(ws: tuple[Any, int, int], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    store, base, other = ws
    out = tmp_path / "cli.md"
    code = main(["--workspace", str(store.ws.root), "report", str(base), str(other), "--out", str(out),
                 "--by", "length"])
    stdout = capsys.readouterr().out
    assert code == 0 and out.exists() and "wrote" in stdout
    for argv, needle in ((["report", str(base), str(other), "--out", str(tmp_path / "r.pdf")],
                          "cannot tell the report format"),
                         (["report", str(base), "31337", "--out", str(out)], "no run with id 31337")):
        code = main(["--workspace", str(store.ws.root), *argv])
        err = capsys.readouterr().err
        assert code != 0 and needle in err and len(err.strip().splitlines()) == 1
