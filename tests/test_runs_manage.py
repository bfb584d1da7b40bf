"""Runs you can manage: which runs count as identical (and are reused), and deleting runs with their files."""

from __future__ import annotations

from pathlib import Path

import pytest

from embtui.engine.evaluate import EvalRequest, run_evaluation
from embtui.engine.models import ModelSpec
from embtui.engine.runs import delete_runs, find_identical_run
from embtui.engine.hnsw import HnswConfig
from embtui.errors import EmbtuiError, NotFound


def test_only_an_unchanged_request_finds_its_run(demo_store, tiny_model: Path) -> None:
    spec = ModelSpec(model=str(tiny_model), name="tiny")
    req = EvalRequest(project="demo", model=spec)
    assert find_identical_run(demo_store, req) is None
    run = run_evaluation(demo_store, req).run
    assert find_identical_run(demo_store, req).id == run.id
    # batch size and device change neither vectors nor rankings: still identical
    same = EvalRequest(project="demo", model=spec.with_overrides(batch_size=7, device="cpu"))
    assert find_identical_run(demo_store, same).id == run.id
    # anything that changes results is a different run
    for other in (
        EvalRequest(project="demo", model=spec.with_overrides(query_prompt="query: ")),
        EvalRequest(project="demo", model=spec.with_overrides(max_seq_length=16)),
        EvalRequest(project="demo", model=spec, split="train"),
        EvalRequest(project="demo", model=spec, index="hnsw"),
        EvalRequest(project="demo", model=spec, depth=1000),
        EvalRequest(project="demo", model=spec, ignore_identical_ids=True),
        EvalRequest(project="demo", model=spec, ks=(10, 20)),
        EvalRequest(project="demo", model=spec, cache_dtype="float16"),
        EvalRequest(project="demo", model=spec, skip_unanswerable=True),
        EvalRequest(project="demo", model=ModelSpec(model=str(tiny_model), name="renamed")),
    ):
        assert find_identical_run(demo_store, other) is None, other
    # a failed run is never reused
    demo_store.fail_run(run.id, "made up")
    assert find_identical_run(demo_store, req) is None


def test_changed_weights_are_not_identical(demo_store, tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    req = EvalRequest(project="demo", model=ModelSpec(model=str(copy), name="copy"))
    run_evaluation(demo_store, req)
    assert find_identical_run(demo_store, req) is not None
    config = next(copy.rglob("config.json"))
    config.write_text(config.read_text().replace("}", ', "note": "retrained"}', 1))
    assert find_identical_run(demo_store, req) is None


def test_hnsw_config_and_reimport_matter(demo_store, tiny_model: Path) -> None:
    from embtui.data.beir import import_beir
    from tests.conftest import DEMO

    spec = ModelSpec(model=str(tiny_model), name="tiny")
    req = EvalRequest(project="demo", model=spec, index="hnsw")
    run = run_evaluation(demo_store, req).run
    assert find_identical_run(demo_store, req).id == run.id
    wider = EvalRequest(project="demo", model=spec, index="hnsw", hnsw=HnswConfig(expansion_search=256))
    assert find_identical_run(demo_store, wider) is None
    bm25 = EvalRequest(project="demo", model=ModelSpec(model="bm25"))
    run_evaluation(demo_store, bm25)
    assert find_identical_run(demo_store, bm25) is not None
    import_beir(demo_store, DEMO, "demo", replace=True)  # a new import: nothing is identical any more
    assert find_identical_run(demo_store, bm25) is None


def test_delete_removes_rows_and_files_no_other_run_uses(demo_store, tiny_model: Path) -> None:
    spec = ModelSpec(model=str(tiny_model), name="tiny")
    first = run_evaluation(demo_store, EvalRequest(project="demo", model=spec, index="hnsw")).run
    second = run_evaluation(demo_store, EvalRequest(project="demo", model=spec, index="hnsw")).run
    index = demo_store.ws.abs(first.index_config["path"])
    assert second.index_config["path"] == first.index_config["path"] and index.exists()
    qid = next(iter(demo_store.queries("demo", "test")))
    demo_store.annotations.add("demo", qid, "negation", run_id=first.id)
    demo_store.annotations.set_judgment("demo", "test", qid, demo_store.corpus("demo").ids[0], run_id=first.id)

    removed = delete_runs(demo_store, [first.id])
    assert removed == [] and index.exists()  # the second run still uses the shared index
    assert [r.id for r in demo_store.list_runs()] == [second.id]
    assert demo_store.run_rankings(first.id) == {} and demo_store.run_query_metrics(first.id) == {}
    (ann,) = demo_store.annotations.find("demo")
    (mark,) = demo_store.annotations.judgments("demo")
    assert ann.run_id is None and mark.run_id is None  # tags and marks outlive the run

    removed = delete_runs(demo_store, [second.id])
    assert removed == [first.index_config["path"]] and not index.exists()
    assert demo_store.list_artifacts("hnsw-index") == []
    with pytest.raises(NotFound, match=f"no run with id {second.id}"):
        delete_runs(demo_store, [second.id])


def test_a_run_a_job_is_writing_is_not_deleted(demo_store) -> None:
    from embtui.engine.evaluate import open_run
    from embtui.jobs.api import submit_eval
    from embtui.store.jobs import JobStore

    req = EvalRequest(project="demo", model=ModelSpec(model="bm25"))
    job_id = submit_eval(demo_store.ws, req, start=False)  # queued, no worker
    run_id = open_run(demo_store, req, job_id=job_id)
    assert JobStore(demo_store.ws).get(job_id).run_id == run_id  # linked in the same transaction
    with pytest.raises(EmbtuiError, match=f"run #{run_id} is still being written by job {job_id}") as err:
        delete_runs(demo_store, [run_id])
    assert f"embtui jobs cancel {job_id}" in str(err.value)
    assert [r.id for r in demo_store.list_runs()] == [run_id]
