"""Integrity of every artifact: damaged cache chunks and indexes are found, re-encoded or rebuilt, and
warned about; HNSW runs with low recall warn; weight fingerprints cannot go stale; doctor finds and heals."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from embtui.cli import main
from embtui.engine.cache import EmbeddingCache, hash_texts
from embtui.engine.encode import Encoder
from embtui.engine.evaluate import EvalRequest, run_evaluation
from embtui.engine.models import ModelSpec, fingerprint
from embtui.engine.hnsw import HnswConfig
from embtui.store import Store

CHUNK = 64  # texts per chunk: a multiple of the batch size, so a re-encoded chunk runs the same batches


def _eval(store: Store, model: Path, index: str = "exact", hnsw: HnswConfig | None = None):
    req = EvalRequest(project="demo", model=ModelSpec(model=str(model), name="tiny", batch_size=32),
                      device="cpu", index=index, hnsw=hnsw or HnswConfig(), chunk_texts=CHUNK)
    return run_evaluation(store, req)


def _doc_cache(store: Store, model: Path) -> EmbeddingCache:
    return Encoder(ModelSpec(model=str(model)), store.ws.cache_dir, store=store).cache("document")


def _doc_vectors(store: Store, model: Path) -> np.ndarray:
    return _doc_cache(store, model).gather(hash_texts(store.corpus("demo").encode_texts()))


def _garble(path: Path) -> None:
    """Random floats of the same shape and dtype, written over the file in place."""
    arr = np.load(path)
    np.save(path, np.random.default_rng(7).standard_normal(arr.shape).astype(arr.dtype))


def _zero_rows(path: Path, n: int = 10) -> None:
    arr = np.load(path, mmap_mode="r+")
    arr[:n] = 0
    arr.flush()
    del arr


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


@pytest.mark.parametrize("damage", [_garble, _zero_rows, _truncate], ids=["garbled", "zeroed-rows", "truncated"])
def test_damaged_chunk_is_reencoded_with_one_warning_and_metrics_equal_a_clean_run(
        tiny_model: Path, demo_store: Store, damage) -> None:
    clean = _eval(demo_store, tiny_model)
    clean_vecs = _doc_vectors(demo_store, tiny_model)
    chunk = sorted(_doc_cache(demo_store, tiny_model).dir.glob("chunk-*.vectors.npy"))[2]
    damage(chunk)

    healed = _eval(demo_store, tiny_model)  # no ValueError for the truncated one
    warnings = healed.run.info.get("warnings") or []
    assert len(warnings) == 1 and str(chunk) in warnings[0] and "re-encoded" in warnings[0], warnings
    assert healed.run.info["encode"]["documents"]["encoded"] == CHUNK
    assert healed.run.metrics == clean.run.metrics
    np.testing.assert_array_equal(_doc_vectors(demo_store, tiny_model), clean_vecs)
    assert chunk.with_name(chunk.name + ".corrupt").exists()  # kept aside for inspection

    again = _eval(demo_store, tiny_model)  # healed for good: nothing to warn about, nothing encoded
    assert not again.run.info.get("warnings")
    assert again.run.info["encode"]["documents"]["encoded"] == 0


def test_damaged_chunk_warns_on_the_cli_stderr(tiny_model: Path, demo_store: Store,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    w = ["--workspace", str(demo_store.ws.root)]
    assert main(w + ["eval", "--project", "demo", "--model", str(tiny_model), "--device", "cpu"]) == 0
    clean_out = capsys.readouterr()
    assert "warning" not in clean_out.err
    chunk = sorted(_doc_cache(demo_store, tiny_model).dir.glob("chunk-*.vectors.npy"))[0]
    _zero_rows(chunk)
    assert main(w + ["eval", "--project", "demo", "--model", str(tiny_model), "--device", "cpu",
                     "--force"]) == 0  # a new run, not the identical one reused
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1 and str(chunk) in lines[0], err
    runs = demo_store.list_runs("demo")
    assert runs[-1].metrics == runs[-2].metrics


def test_chunk_written_before_checksums_is_adopted_then_guarded(tiny_model: Path, demo_store: Store) -> None:
    clean = _eval(demo_store, tiny_model)
    cache = _doc_cache(demo_store, tiny_model)
    records = sorted(cache.dir.glob("chunk-*.check.json"))
    assert len(records) == len(cache.chunk_ids()) > 1
    for r in records:  # what a cache written by an older embtui looks like
        r.unlink()
    legacy = _eval(demo_store, tiny_model)
    assert not legacy.run.info.get("warnings") and legacy.run.info["encode"]["documents"]["encoded"] == 0
    adopted = json.loads(records[0].read_text())
    assert adopted["legacy"] is True and adopted["rows"] == CHUNK
    _garble(cache.dir / records[0].name.replace(".check.json", ".vectors.npy"))
    healed = _eval(demo_store, tiny_model)
    assert len(healed.run.info["warnings"]) == 1 and healed.run.metrics == clean.run.metrics


def test_concurrent_writers_in_one_process_never_share_temp_names(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "k")
    texts = [f"t{i}" for i in range(10)]
    cache.append(hash_texts(texts[:5]), np.ones((5, 4), np.float32))
    other = EmbeddingCache(tmp_path, "k")  # a second handle does not see the first's in-memory index
    assert other.append(hash_texts(texts[5:]), np.full((5, 4), 2, np.float32)) == 2
    fresh = EmbeddingCache(tmp_path, "k")
    assert fresh.missing(hash_texts(texts)) == []
    assert fresh.gather(hash_texts(texts))[:, 0].tolist() == [1.0] * 5 + [2.0] * 5
    assert not list(tmp_path.rglob("*.tmp"))


def test_failed_chunk_write_removes_what_it_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import embtui.engine.cache as cache_mod

    cache = EmbeddingCache(tmp_path, "k")
    real = cache_mod.atomic_write_bytes
    calls = {"n": 0}

    def full_disk_on_commit(path: Path, data, *, sync_dir: bool = True) -> None:  # a full disk, simulated
        calls["n"] += 1
        if path.name.endswith(".hashes.npy"):
            tmp = path.with_name(path.name + ".x.tmp")
            tmp.write_bytes(bytes(data)[:10])
            tmp.unlink()
            raise OSError(28, "No space left on device")
        real(path, data, sync_dir=sync_dir)

    monkeypatch.setattr(cache_mod, "atomic_write_bytes", full_disk_on_commit)
    with pytest.raises(OSError, match="No space"):
        cache.append(hash_texts(["a", "b"]), np.ones((2, 3), np.float32))
    left = sorted(p.name for p in cache.dir.iterdir())
    assert left == [".lock", "manifest.json"], left
    assert EmbeddingCache(tmp_path, "k").missing(hash_texts(["a", "b"])) == [0, 1]


def _index_file(store: Store) -> Path:
    (path,) = [p for p in store.ws.index_dir.glob("*.usearch")]
    return path


def _garble_index(path: Path) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 4096] = np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with open(path, "r+b") as f:
        f.write(bytes(data))


@pytest.mark.parametrize("damage", [_garble_index, _truncate], ids=["garbled", "truncated"])
def test_damaged_index_is_rebuilt_with_one_warning(tiny_model: Path, demo_store: Store, damage) -> None:
    first = _eval(demo_store, tiny_model, index="hnsw")
    assert first.run.index_config["reused"] is False and not first.run.info.get("warnings")
    assert first.run.info["ann_recall@10"] >= 0.99
    path = _index_file(demo_store)
    assert path.with_name(path.name + ".check.json").exists()
    damage(path)

    rebuilt = _eval(demo_store, tiny_model, index="hnsw")
    warnings = rebuilt.run.info.get("warnings") or []
    assert len(warnings) == 1 and str(path) in warnings[0] and "rebuilt" in warnings[0], warnings
    assert ("truncated" if damage is _truncate else "damaged") in warnings[0]
    assert rebuilt.run.index_config["reused"] is False
    assert rebuilt.run.metrics == first.run.metrics
    after = _eval(demo_store, tiny_model, index="hnsw")
    assert after.run.index_config["reused"] is True and not after.run.info.get("warnings")
    assert after.run.metrics == first.run.metrics


def test_low_hnsw_recall_warns_in_cli_info_and_report(tiny_model: Path, demo_store: Store,
                                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = ["--workspace", str(demo_store.ws.root)]
    base = ["eval", "--project", "demo", "--model", str(tiny_model), "--device", "cpu"]
    assert main(w + base) == 0
    assert main(w + base + ["--index", "hnsw", "--hnsw-connectivity", "2", "--hnsw-expansion-add", "1",
                            "--hnsw-expansion-search", "1"]) == 0
    err = capsys.readouterr().err
    exact, poor = demo_store.list_runs("demo")[-2:]
    assert poor.info["ann_recall@10"] < 0.9
    (warning,) = poor.info["warnings"]
    assert "HNSW recall@10 against exact search" in warning and "--index exact" in warning
    assert f"warning: run {poor.id} (" in err and "HNSW recall@10" in err
    assert not exact.info.get("warnings")
    out = tmp_path / "report.md"
    assert main(w + ["report", str(exact.id), str(poor.id), "--baseline", str(exact.id), "--out", str(out)]) == 0
    text = out.read_text()
    assert f"**Warning**: run {poor.id}" in text and "HNSW recall@10 against exact search" in text


def _rewrite_in_place_keeping_size_and_mtime(path: Path) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-64:] = bytes(255 - b for b in data[-64:])
    with open(path, "r+b") as f:
        f.write(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def _replace_like_cp_p(path: Path) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-64:] = bytes(255 - b for b in data[-64:])
    new = path.with_name(path.name + ".new")
    new.write_bytes(bytes(data))
    shutil.copystat(path, new)
    os.replace(new, path)
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


@pytest.mark.parametrize("change", [_rewrite_in_place_keeping_size_and_mtime, _replace_like_cp_p],
                         ids=["in-place+utime", "cp-p"])
def test_changed_weights_with_same_size_and_mtime_get_a_new_fingerprint(
        tiny_model: Path, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change) -> None:
    import embtui.engine.models as models

    monkeypatch.setattr(models, "_SETTLE_S", 0.0)  # cache hashes of files written a moment ago too
    folder = tmp_path / "weights"
    shutil.copytree(tiny_model, folder)
    spec = ModelSpec(model=str(folder))
    (weights,) = folder.rglob("*.safetensors")
    fp1 = fingerprint(spec, store)
    st = weights.stat()
    key = f"{weights.resolve()}#{models.file_stamp(st)}"
    assert store.cached_file_hash(key, st.st_size, st.st_mtime), "the hash must be cached"
    assert fingerprint(spec, store) == fp1
    change(weights)
    fp2 = fingerprint(spec, store)
    assert fp2 != fp1
    assert fp2 == models.folder_fingerprint(folder)  # what a fresh, uncached hash says


def test_doctor_reports_each_kind_of_damage_and_fix_heals(tiny_model: Path, demo_store: Store,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    clean = _eval(demo_store, tiny_model)
    hnsw_clean = [_eval(demo_store, tiny_model, index="hnsw", hnsw=HnswConfig(dtype=dt)) for dt in ("f32", "f16")]
    w = ["--workspace", str(demo_store.ws.root)]
    assert main(w + ["doctor", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True

    chunks = sorted(_doc_cache(demo_store, tiny_model).dir.glob("chunk-*.vectors.npy"))
    _garble(chunks[0])
    _truncate(chunks[1])
    chunks[2].unlink()  # its hashes and record stay: a missing file
    tmp = chunks[3].with_name("chunk-000999.vectors.npy.4242-1.tmp")
    tmp.write_bytes(b"half a chunk")
    indexes = sorted(demo_store.ws.index_dir.glob("*.usearch"))
    assert len(indexes) == 2
    _garble_index(indexes[0])
    _truncate(indexes[1])

    assert main(w + ["doctor", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    problems = report["problems"]

    def problem(name: str) -> str:
        (line,) = [p for p in problems if name in p]
        return line

    assert "damaged" in problem(chunks[0].name)
    assert "truncated" in problem(chunks[1].name)
    assert "missing" in problem(chunks[2].name)
    assert "damaged" in problem(indexes[0].name)
    assert "truncated" in problem(indexes[1].name)
    assert any(tmp.name in o for o in report["orphans"])

    assert main(w + ["doctor", "--fix"]) == 0
    capsys.readouterr()
    assert main(w + ["doctor", "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["ok"] and after["orphans"] == [] and not after["problems"]

    healed = _eval(demo_store, tiny_model)
    assert healed.run.metrics == clean.run.metrics
    assert healed.run.info["encode"]["documents"]["encoded"] == 3 * CHUNK
    assert not healed.run.info.get("warnings")  # doctor already removed what was damaged
    for dt, ref in zip(("f32", "f16"), hnsw_clean):
        run = _eval(demo_store, tiny_model, index="hnsw", hnsw=HnswConfig(dtype=dt))
        assert run.run.index_config["reused"] is False and run.run.metrics == ref.run.metrics


def test_a_job_logs_the_damage_it_healed(tiny_model: Path, demo_store: Store) -> None:
    from embtui.jobs import job_log, submit_eval
    from embtui.jobs.worker import run_job

    clean = _eval(demo_store, tiny_model)
    chunk = sorted(_doc_cache(demo_store, tiny_model).dir.glob("chunk-*.vectors.npy"))[1]
    _garble(chunk)
    req = EvalRequest(project="demo", model=ModelSpec(model=str(tiny_model), name="tiny", batch_size=32),
                      device="cpu")
    job = submit_eval(demo_store.ws.root, req, start=False, chunk_texts=CHUNK)
    assert run_job(demo_store.ws.root, job) == "done"
    lines = [line for line in job_log(demo_store.ws.root, job).splitlines() if "warning:" in line]
    assert len(lines) == 1 and str(chunk) in lines[0], lines
    assert demo_store.list_runs("demo")[-1].metrics == clean.run.metrics


def test_hnsw_connectivity_one_is_a_one_line_error() -> None:
    from embtui.errors import EmbtuiError

    with pytest.raises(EmbtuiError, match="connectivity must be at least 2, got 1"):
        HnswConfig(connectivity=1)
