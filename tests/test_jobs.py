"""Background jobs: detached workers that survive their parent, SIGKILL + resume, cancel, device queue,
OOM back-off memory, dead-worker detection, the jobs/doctor CLI."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from embtui.cli import main
from embtui.engine.evaluate import EvalRequest
from embtui.engine.models import ModelSpec
from embtui.jobs import cancel_job, follow_job, get_job, job_log, list_jobs, resume_job, submit_eval
from embtui.jobs.api import pid_runs_job
from embtui.jobs.files import write_json_atomic
from embtui.store import Store
from embtui.store.jobs import JobStore
from tests.conftest import DEMO, REPO

TIMEOUT = 120  # generous: the machine is shared


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch):
    """Workers inherit OMP_NUM_THREADS=1: on 2 busy cores torch's default threads crawl."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _req(model: Path, batch: int = 4, name: str = "") -> EvalRequest:
    return EvalRequest(project="demo", model=ModelSpec(model=str(model), name=name, batch_size=batch),
                       device="cpu")


def _wait(pred: Callable[[], Any], timeout: float = TIMEOUT, what: str = "condition",
          poll_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(poll_s)


class _Every:
    """A cached check that re-runs at most every ``interval`` s (keeps tight polls off the DB)."""

    def __init__(self, fn: Callable[[], Any], interval: float = 0.3) -> None:
        self.fn, self.interval, self.at, self.value = fn, interval, 0.0, None

    def __call__(self) -> Any:
        if time.monotonic() - self.at >= self.interval:
            self.value, self.at = self.fn(), time.monotonic()
        return self.value


def _committed_chunks(ws: Path) -> int:
    return sum(1 for _ in (ws / "cache").glob("*/chunk-*.hashes.npy"))


def _finish(ws: Path, job_id: str) -> Any:
    info = follow_job(ws, job_id, lambda _: None, poll_s=0.1, timeout_s=TIMEOUT)
    assert info.finished, f"job {job_id} still {info.state}:\n{job_log(ws, job_id)}"
    return info


def _demo(root: Path) -> Store:
    from embtui.data.beir import import_beir

    store = Store.open(root)
    import_beir(store, DEMO, "demo")
    return store


def _all_vectors(store: Store, model: Path) -> np.ndarray:
    """Every document and query vector of the demo, read from the workspace cache."""
    from embtui.engine.cache import hash_texts
    from embtui.engine.encode import Encoder

    enc = Encoder(ModelSpec(model=str(model)), store.ws.cache_dir, store=store)
    docs = hash_texts(store.corpus("demo").encode_texts())
    queries = hash_texts(store.queries("demo", "test").values())
    vecs = np.concatenate([enc.cache("document").gather(docs), enc.cache("query").gather(queries)])
    assert not enc.loaded and vecs.shape[0] == 500
    return vecs


def test_sigkill_at_random_points_then_resume_equals_uninterrupted(tiny_model: Path, tmp_path: Path) -> None:
    ref = _demo(tmp_path / "ref")
    crash = _demo(tmp_path / "crash")
    req = _req(tiny_model)
    ref_job = submit_eval(ref.ws.root, req, chunk_texts=4)  # runs alongside, in its own workspace
    job = submit_eval(crash.ws.root, req, chunk_texts=4)
    seed = int(time.time())
    rng = random.Random(seed)
    kills = []
    # 100 document chunks then 25 query chunks; kill three times at random points inside them
    for lo, hi in ((2, 35), (40, 75), (80, 118)):
        target = rng.randint(lo, hi)
        ended = _Every(lambda: get_job(crash.ws.root, job, log_lines=0).finished)
        # past the target chunk with a worker running (on a loaded machine a resumed job can
        # still be queued when the chunks committed before the last kill already pass the target)
        reached = _wait(lambda: (_committed_chunks(crash.ws.root) >= target
                                 and get_job(crash.ws.root, job, log_lines=0).state == "running")
                        or ended(), what=f"chunk {target}", poll_s=0.002)
        assert reached and get_job(crash.ws.root, job, log_lines=0).state == "running", \
            f"seed {seed}: job ended before kill at chunk {target}"
        time.sleep(rng.uniform(0, 0.015))  # anywhere inside the next chunk's write
        info = get_job(crash.ws.root, job, log_lines=0)
        os.kill(info.pid, signal.SIGKILL)
        kills.append(_committed_chunks(crash.ws.root))
        dead = _wait(lambda: get_job(crash.ws.root, job, log_lines=0).state == "interrupted",
                     timeout=10, what="interrupted")
        assert dead
        after = get_job(crash.ws.root, job, log_lines=0)
        assert "gone" in (after.error or "")
        assert crash.get_run(after.run_id).status == "failed"  # no run left 'running'
        resume_job(crash.ws.root, job)
    final = _finish(crash.ws.root, job)
    ref_final = _finish(ref.ws.root, ref_job)
    assert final.state == "done" and ref_final.state == "done", (seed, job_log(crash.ws.root, job))
    assert kills == sorted(kills) and kills[0] < 100, (seed, kills)

    runs = crash.list_runs()
    assert [r.id for r in runs] == [final.run_id] and runs[0].status == "done"  # one run, finished
    assert JobStore(crash.ws).get(job).attempts == 4
    enc = runs[0].info["encode"]
    assert enc["documents"]["cached"] + enc["queries"]["cached"] >= kills[-1] * 4 - 4  # re-used chunks
    ref_run = ref.get_run(ref_final.run_id)
    np.testing.assert_array_equal(_all_vectors(crash, tiny_model), _all_vectors(ref, tiny_model))
    assert runs[0].metrics == ref_run.metrics
    assert crash.run_rankings(final.run_id) == ref.run_rankings(ref_final.run_id)

    from embtui.jobs.doctor import check_workspace

    report = check_workspace(crash.ws.root)
    assert report.ok, report.problems
    assert main(["--workspace", str(crash.ws.root), "doctor"]) == 0
    fixed = check_workspace(crash.ws.root, fix=True)
    assert fixed.ok and check_workspace(crash.ws.root).orphans == []


def test_detached_jobs_outlive_the_cli_and_a_killed_tmux_session(tiny_model: Path, demo_store: Store,
                                                                 tmp_path: Path) -> None:
    ws = demo_store.ws.root
    base = [sys.executable, "-m", "embtui", "--workspace", str(ws), "eval", "--project", "demo",
            "--device", "cpu", "--batch-size", "8", "--detach", "--json", "--force"]  # never a reused run
    t0 = time.monotonic()
    out = subprocess.run(base + ["--model", str(tiny_model), "--model", str(tiny_model)],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    ids = json.loads(out.stdout)["job_ids"]
    assert len(ids) == 2 and time.monotonic() - t0 < 30
    first = get_job(ws, ids[0])
    assert first.state in ("queued", "running")  # the CLI has exited; its job has not
    assert first.pid and os.getsid(first.pid) == first.pid  # own session: no SIGHUP from a terminal

    if shutil.which("tmux"):
        sock = f"embtui-test-{os.getpid()}"
        out_file = tmp_path / "detach.json"
        cmd = " ".join(base + ["--model", str(tiny_model), ">", str(out_file), "; sleep 600"])
        subprocess.run(["tmux", "-L", sock, "new-session", "-d", "-s", "t", f"cd {REPO} && {cmd}"],
                       check=True, timeout=30)
        try:
            _wait(lambda: out_file.exists() and out_file.read_text().strip().endswith("}"),
                  what="tmux eval --detach")
        finally:
            subprocess.run(["tmux", "-L", sock, "kill-server"], timeout=30)  # closes the "terminal"
        data = json.loads(out_file.read_text())
        assert data["job_ids"] == [data["job_id"]]
        time.sleep(0.5)
        info = get_job(ws, data["job_id"])
        assert info.state != "interrupted"
        if not info.finished:
            assert pid_runs_job(info.pid, info.id)  # the worker lives on after the hang-up
        ids.append(data["job_id"])

    for job_id in ids:
        info = _finish(ws, job_id)
        assert info.state == "done", job_log(ws, job_id)
        assert demo_store.get_run(info.run_id).status == "done"
    assert [j.state for j in list_jobs(ws)] == ["done"] * len(ids)


class _FakeOOM(RuntimeError):
    pass


_FakeOOM.__name__ = "OutOfMemoryError"


def test_oom_backoff_is_remembered_per_model_and_device(tiny_model: Path, demo_store: Store,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import embtui.engine.encode as encode
    from embtui.engine.models import fingerprint
    from embtui.jobs.worker import model_key, run_job

    ws = demo_store.ws.root
    sizes: list[int] = []
    limit = {"max": 4}
    real_load = encode.load_model

    def load_small_gpu(spec, device):
        model = real_load(spec, device)
        real = model.encode

        def flaky(texts, **kw):
            sizes.append(len(texts))
            if len(texts) > limit["max"]:
                raise _FakeOOM("CUDA out of memory. Tried to allocate 2.00 GiB")
            return real(texts, **kw)

        model.encode = flaky
        return model

    monkeypatch.setattr(encode, "load_model", load_small_gpu)
    req = _req(tiny_model, batch=16)
    job = submit_eval(ws, req, start=False, chunk_texts=64)
    assert run_job(ws, job) == "done"  # the worker's main function, in-process
    assert sizes[:3] == [16, 8, 4] and set(sizes[3:]) <= {4}
    assert get_job(ws, job).batch_size == 4
    key = model_key(req.model, fingerprint(req.model, demo_store))
    assert JobStore(demo_store.ws).remembered_batch_size(key, "cpu") == 4
    assert "remembered batch size 4" in job_log(ws, job)

    # next time the same model starts at the batch size that worked: no OOM round-trips
    shutil.rmtree(demo_store.ws.cache_dir)
    sizes.clear()
    job2 = submit_eval(ws, req, start=False, chunk_texts=64)
    assert run_job(ws, job2) == "done"
    assert sizes and max(sizes) == 4
    assert "starting at batch size 4" in job_log(ws, job2)

    # out of memory even at batch size 1: the job fails with a message saying so, no stuck run
    shutil.rmtree(demo_store.ws.cache_dir)
    limit["max"] = 0
    job3 = submit_eval(ws, req, start=False, chunk_texts=64)
    assert run_job(ws, job3) == "failed"
    info = get_job(ws, job3)
    assert "even with batch size 1" in info.error
    assert demo_store.get_run(info.run_id).status == "failed"


def _big_project(store: Store, root: Path, copies: int = 5) -> int:
    """The demo's documents ``copies`` times over (new ids, each text made unique) as project
    'big', so an encode takes long enough for a cancel to land mid-way even on a busy machine.
    Returns the number of documents."""
    from embtui.data.beir import import_beir

    src = store.corpus("demo")
    folder = root / "big"
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w") as f:
        for c in range(copies):
            for i, (d, t, x) in enumerate(zip(src.ids, src.titles, src.texts)):
                f.write(json.dumps({"_id": f"{d}-{c}", "title": t, "text": f"{x} (copy {c}.{i})"}) + "\n")
    queries = store.queries("demo", "test")
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n"
                                                  for q, t in queries.items()))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{src.ids[0]}-0\t1\n" for q in queries))
    import_beir(store, folder, "big")
    return copies * len(src.ids)


def test_device_queue_and_cancel_release_device_and_keep_chunks(tiny_model: Path, demo_store: Store,
                                                                  tmp_path: Path) -> None:
    ws = demo_store.ws.root
    n_docs = _big_project(demo_store, tmp_path)
    req = replace(_req(tiny_model), project="big")
    first = submit_eval(ws, req, chunk_texts=4)
    second = submit_eval(ws, req, chunk_texts=4)  # jobs start in submission order
    _wait(lambda: _committed_chunks(ws) >= 5, what="first chunks", poll_s=0.002)
    a, b = get_job(ws, first), get_job(ws, second)
    assert a.state == "running" and a.device == "cpu"
    assert b.state == "queued"  # one CPU job at a time: the second waits for the slot
    _wait(lambda: get_job(ws, second, log_lines=0).stage == "waiting for cpu", timeout=30,
          what="second worker waiting")
    cancel_job(ws, first)  # at once: the first job must still be encoding when the cancel lands
    # a second embtui session on the same workspace works alongside the workers and this one
    other = subprocess.run([sys.executable, "-m", "embtui", "--workspace", str(ws), "jobs", "--json"],
                           capture_output=True, text=True, timeout=60, cwd=REPO)
    assert other.returncode == 0, other.stderr
    assert {j["id"]: j["state"] for j in json.loads(other.stdout)["jobs"]}[second] in ("queued", "running",
                                                                                       "done")
    a = _finish(ws, first)
    assert a.state == "cancelled", job_log(ws, first)
    assert demo_store.get_run(a.run_id).status == "cancelled"
    kept = _committed_chunks(ws)
    assert 5 <= kept < (n_docs + 100) // 4

    b = _finish(ws, second)  # the released slot goes to the waiting job
    assert b.state == "done", job_log(ws, second)
    rows = {r.id: r for r in JobStore(demo_store.ws).list()}
    assert rows[second].started_at >= rows[first].finished_at
    encode_stats = demo_store.get_run(b.run_id).info["encode"]["documents"]
    assert encode_stats["cached"] >= 5 * 4 - 4 and encode_stats["encoded"] < n_docs

    # the cancelled job can be resumed later: it finishes its own run from the cache alone
    resume_job(ws, first)
    a = _finish(ws, first)
    assert a.state == "done" and demo_store.get_run(a.run_id).info["encode"]["documents"]["encoded"] == 0


def test_dead_workers_are_reported_interrupted(demo_store: Store, tiny_model: Path) -> None:
    ws = demo_store.ws.root
    js = JobStore(demo_store.ws)
    # a worker that stopped writing its heartbeat (hung, or on a machine that went away)
    hung = submit_eval(ws, _req(tiny_model), start=False)
    assert js.set_worker(hung, os.getpid(), "elsewhere") and js.claim(hung, os.getpid())
    write_json_atomic(ws / "jobs" / hung / "progress.json",
                      {"pid": os.getpid(), "heartbeat": time.time() - 120, "stage": "encode documents"})
    # a pid that now belongs to some other program
    reused = submit_eval(ws, _req(tiny_model), start=False)
    other = subprocess.Popen(["sleep", "30"])
    try:
        assert js.set_worker(reused, other.pid, __import__("socket").gethostname())
        assert js.claim(reused, other.pid)
        states = {j.id: j for j in list_jobs(ws)}
    finally:
        other.kill()
        other.wait()
    assert states[hung].state == "interrupted" and "no heartbeat" in states[hung].error
    assert states[reused].state == "interrupted" and "gone" in states[reused].error
    assert js.get(hung).state == "interrupted"  # persisted, not only reported
    # a queued job without a worker is just waiting to be started
    idle = submit_eval(ws, _req(tiny_model), start=False)
    assert get_job(ws, idle).state == "queued"
    cancel_job(ws, idle)
    assert get_job(ws, idle).state == "cancelled"


def test_jobs_cli_and_doctor_find_and_fix_damage(tiny_model: Path, demo_store: Store,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from embtui.jobs.worker import run_job

    ws = demo_store.ws.root
    job = submit_eval(ws, _req(tiny_model, batch=32), start=False, chunk_texts=128)
    assert run_job(ws, job) == "done"
    w = ["--workspace", str(ws)]

    assert main(w + ["jobs", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["jobs"]
    for key in ("id", "state", "progress", "pid", "run_id", "device", "items_per_s", "eta_s"):
        assert key in row
    assert row["state"] == "done" and row["progress"] == 1.0 and row["device"] == "cpu"
    assert main(w + ["jobs"]) == 0 and job in capsys.readouterr().out
    assert main(w + ["jobs", "follow", job[:15]]) == 0  # a unique prefix is enough
    assert f"job {job} done (run {row['run_id']})" in capsys.readouterr().out
    assert main(w + ["jobs", "log", job]) == 0 and "done: run" in capsys.readouterr().out
    assert main(w + ["jobs", "resume", job]) == 2 and "already done" in capsys.readouterr().err
    assert main(w + ["jobs", "cancel", "nope"]) == 2 and "no job" in capsys.readouterr().err

    assert main(w + ["doctor", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True

    # damage: a truncated chunk, half-written leftovers, a job folder without a row,
    # an artifact whose file is gone, a run stuck in 'running'
    chunk = sorted((ws / "cache").glob("*/chunk-*.vectors.npy"))[0]
    chunk.write_bytes(chunk.read_bytes()[:200])
    (chunk.parent / "chunk-000999.vectors.npy.tmp").write_bytes(b"partial")
    (ws / "jobs" / "ghost").mkdir()
    demo_store.register_artifact("indexes/gone.usearch", "hnsw-index", 1, {})
    stuck = demo_store.create_run("demo", "test", "m", model_spec={}, model_fingerprint=None,
                                  device="cpu", index_config={}, versions={})
    assert main(w + ["doctor", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    text = "\n".join(report["problems"])
    assert chunk.name in text and "gone.usearch" in text and f"run {stuck} is stuck" in text
    assert any("chunk-000999" in o for o in report["orphans"]) and "jobs/ghost" in report["orphans"]

    assert main(w + ["doctor", "--fix"]) == 0
    capsys.readouterr()
    assert main(w + ["doctor", "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["ok"] and after["orphans"] == []
    assert demo_store.get_run(stuck).status == "failed"


@pytest.mark.parametrize("columns", [40, 60, 80, 120, 200])
def test_follow_bar_fits_the_terminal_so_it_redraws_in_place(columns: int) -> None:
    """A line longer than the terminal wraps, and `\\r` then redraws only its last row: the
    follow bar would scroll instead of updating in place (seen at 100 columns on SciFact)."""
    from types import SimpleNamespace

    from embtui.cli.jobs import FollowBar as _Bar

    j = SimpleNamespace(id="261201-133034-19a3", state="running", progress=0.37, stage="encode documents",
                        done=1917, total=5183, items_per_s=34.6, eta_s=95.0, batch_size=32, finished=False,
                        message="")
    bar = _Bar()
    bar.tty = True
    line = bar.line(j, columns)
    assert len(line) <= columns - 1
    assert line.startswith("running [")
    if columns >= 80:  # room for everything: counts, speed, ETA and batch all shown
        assert line.endswith("37% encode documents 1917/5183 35/s eta 1m35s batch 32")
    j.message = "resumed: 1,936 already cached"  # a resume's note is the first thing to go
    line = bar.line(j, columns)
    assert len(line) <= columns - 1 and line.startswith("running [")
    if columns >= 120:
        assert "(resumed: 1,936 already cached)" in line
    bar.tty = False  # a pipe or log file gets the full line, with the job id, one per stage
    assert bar.line(j, 0).startswith("261201-133034-19a3 running ")
    assert "(resumed: 1,936 already cached)" in bar.line(j, 0)


def test_progress_never_goes_backwards_across_a_kill_and_resume(tiny_model: Path, demo_store: Store,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Killed at 40 % of the document encode and resumed, the job's progress (as `embtui jobs`,
    `jobs follow` and the Jobs pane read it) counts what is done of the whole corpus, never the
    remaining part, and says how much the resume found cached."""
    from embtui.engine.cache import hash_texts
    from embtui.engine.encode import Encoder
    from embtui.cli.jobs import FollowBar as _Bar
    from embtui.jobs.files import try_slot

    ws = demo_store.ws.root
    req = _req(tiny_model)
    job = submit_eval(ws, req, chunk_texts=4)  # 100 document chunks of 4
    seen: list[Any] = []

    def sample() -> Any:
        info = get_job(ws, job, log_lines=0)
        seen.append(info)
        return info

    reached = _wait(lambda: _committed_chunks(ws) >= 40 or sample().finished, what="40 chunks",
                    poll_s=0.005)
    info = sample()
    assert reached and info.state == "running" and info.stage == "encode documents", info
    assert info.total == 400
    os.kill(info.pid, signal.SIGKILL)
    _wait(lambda: sample().state == "interrupted", timeout=10, what="interrupted")
    before = max(i.progress for i in seen)
    assert 0 < before < 0.82  # progress files are written a few times a second: it may lag the cache
    texts = demo_store.corpus("demo").encode_texts()
    cache = Encoder(req.model, demo_store.ws.cache_dir, store=demo_store).cache("document")
    cached = 400 - len(cache.missing(hash_texts(texts)))
    assert cached >= 160

    held = []  # every CPU slot: the resumed worker waits, showing the progress it resumes from
    while (lock := try_slot(Path(ws) / "jobs" / "locks", "cpu", 8)) is not None:
        held.append(lock)
    try:
        resume_job(ws, job)
        assert sample().progress >= before  # before the new worker has written anything
        waiting = _wait(lambda: "waiting" in (i := sample()).stage and i, what="waiting for cpu")
        assert waiting.progress == pytest.approx(before, abs=1e-4)
        capsys.readouterr()
        assert main(["--workspace", str(ws), "jobs"]) == 0
        assert f"{100 * before:.0f}%" in capsys.readouterr().out
    finally:
        for lock in held:
            lock.release()
    _wait(lambda: sample().finished, what="resumed job done", poll_s=0.005)
    assert seen[-1].state == "done", job_log(ws, job)

    progress = [i.progress for i in seen]
    assert progress == sorted(progress), progress  # never backwards, kill and resume included
    resumed = [i for i in seen[seen.index(waiting):] if i.stage == "encode documents"]
    assert resumed, [(i.stage, i.progress) for i in seen]
    assert all(i.total == 400 for i in resumed)  # the whole corpus, not the 240 left
    # the encoder's reports (after the stage's 0-of-400 start event) count the cached ones as done
    resumed = [i for i in resumed if i.message]
    assert resumed and resumed[0].done >= cached
    assert resumed[0].message == f"resumed: {cached:,} already cached"
    assert f"resumed: {cached:,} already cached" in _Bar().line(resumed[0], 0)  # jobs follow
    assert f"encode documents: resumed: {cached:,} already cached" in job_log(ws, job)
