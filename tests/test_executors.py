"""Encoding on several devices of one server and on a Ray cluster: the same chunks, the same cache,
the same numbers as a local encode; a worker killed mid-encode loses nothing.

The multi-device path runs with two CPU worker processes standing in for GPUs (``--device
cpu,cpu``): the code path is the one ``cuda:0,cuda:1`` takes (one spawned process per device, fed
chunk by chunk, chunks committed by the driver). The Ray tests start a real local cluster with
``ray start --head`` (a separate process tree, as a user's cluster would be) and skip when Ray is not
installed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from embtui.engine.encode import Encoder
from embtui.engine.models import ModelSpec
from embtui.errors import EmbtuiError
from tests.conftest import DEMO

TEXTS = [f"text {i}: {'cells and proteins ' * (i % 9)}in the {i % 13}th sample" for i in range(120)]


def _wait(cond, timeout: float = 120.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# --------------------------------------------------------------------------------------------------
# every device of one server (two CPU workers standing in for cuda:0, cuda:1)


def test_two_device_workers_give_the_local_vectors(tiny_model: Path, tmp_path: Path) -> None:
    spec = ModelSpec(model=str(tiny_model), batch_size=8)
    local, _ = Encoder(spec, tmp_path / "local", chunk_texts=16).encode(TEXTS, "document")
    enc = Encoder(spec, tmp_path / "multi", device="cpu,cpu", chunk_texts=16)
    assert enc.distributed
    multi, stats = enc.encode(TEXTS, "document")
    enc.unload()
    np.testing.assert_allclose(multi, local, atol=1e-6)
    assert stats.encoded == len(TEXTS)
    # both workers took chunks, and each one's throughput is known
    assert set(enc.devices.texts) == {"cpu#0", "cpu#1"}
    assert sum(enc.devices.texts.values()) == len(TEXTS)
    assert all(v > 0 for v in enc.devices.texts.values())
    per = enc.devices.to_dict()
    assert all(d["items_per_s"] > 0 for d in per.values())
    # the chunks are in the cache: a second encode (here, one device) loads no model
    again = Encoder(spec, tmp_path / "multi")
    cached, s2 = again.encode(TEXTS, "document")
    assert s2.encoded == 0 and not again.loaded
    np.testing.assert_array_equal(cached, multi)


def test_a_killed_device_worker_hands_its_chunks_to_the_others(tiny_model: Path, tmp_path: Path) -> None:
    """SIGKILL one device's worker mid-encode: the other device finishes its chunks, the result
    equals a local encode, and the run says which worker stopped."""
    spec = ModelSpec(model=str(tiny_model), batch_size=4)
    texts = TEXTS * 3 + [f"more text {i}" for i in range(200)]
    local, _ = Encoder(spec, tmp_path / "local", chunk_texts=8).encode(texts, "document")
    enc = Encoder(spec, tmp_path / "multi", device="cpu,cpu", chunk_texts=8)
    killed: dict[str, int] = {}

    def kill_one() -> None:
        _wait(lambda: enc._exec is not None and len(enc._exec._procs) == 2, what="two workers")
        pool = enc._exec
        _wait(lambda: sum(enc.devices.texts.values()) > 0, what="a first chunk")
        name, proc = next(iter(pool._procs.items()))
        killed[name] = proc.pid
        os.kill(proc.pid, signal.SIGKILL)

    t = threading.Thread(target=kill_one, daemon=True)
    t.start()
    vecs, stats = enc.encode(texts, "document")
    t.join(timeout=30)
    enc.unload()
    assert killed, "the worker was not killed"
    np.testing.assert_allclose(vecs, local, atol=1e-6)
    assert any("stopped" in w and "other devices" in w for w in enc.load_warnings)


def test_every_device_worker_lost_fails_in_one_line_and_keeps_committed_chunks(
        tiny_model: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"  # a folder that hashes fine but whose weights are gone
    shutil.copytree(tiny_model, broken)
    for weights in broken.rglob("*.safetensors"):
        weights.unlink()
    spec = ModelSpec(model=str(broken), batch_size=4)
    enc = Encoder(spec, tmp_path / "cache", device="cpu,cpu", chunk_texts=8)
    with pytest.raises(EmbtuiError) as err:
        enc.encode(TEXTS, "document")
    enc.unload()
    assert "every encode worker stopped" in err.value.message
    assert "\n" not in err.value.message


def test_device_lists_are_checked_without_torch() -> None:
    from embtui.engine.devices import check_device_name

    assert check_device_name("cuda:0,cuda:1") == "cuda:0,cuda:1"
    assert check_device_name("gpus") == "gpus"
    with pytest.raises(EmbtuiError, match="unknown device 'cuda:x'"):
        check_device_name("cuda:0,cuda:x")


def test_gpus_without_cuda_is_a_clear_error(tiny_model: Path, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    enc = Encoder(ModelSpec(model=str(tiny_model)), tmp_path, device="gpus")
    with pytest.raises(EmbtuiError, match="every CUDA device"):
        enc.encode(TEXTS[:5], "document")


def test_eval_on_two_devices_equals_the_local_run(tiny_model: Path, demo_store, monkeypatch) -> None:
    from embtui.engine.evaluate import EvalRequest, run_evaluation

    spec = ModelSpec(model=str(tiny_model), name="tiny", batch_size=16)
    local = run_evaluation(demo_store, EvalRequest("demo", spec, chunk_texts=64))
    shutil.rmtree(demo_store.ws.cache_dir)
    # the corpus read a window of 150 at a time: each window's chunks go to the workers in turn
    monkeypatch.setattr("embtui.store.api.CORPUS_WINDOW", 150)
    multi = run_evaluation(demo_store, EvalRequest("demo", spec, chunk_texts=64, device="cpu,cpu"))
    for name, value in local.metrics.aggregate.items():
        assert multi.metrics.aggregate[name] == pytest.approx(value, abs=1e-6), name
    devices = multi.run.info["encode"]["devices"]
    assert set(devices) == {"cpu#0", "cpu#1"}
    enc = multi.run.info["encode"]
    assert sum(d["texts"] for d in devices.values()) == enc["documents"]["encoded"] + enc["queries"]["encoded"]


# --------------------------------------------------------------------------------------------------
# a Ray cluster started by the test


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A local Ray head node started with `ray start --head --block` in its own session (its own
    process tree, like a user's cluster), two CPUs; stopped after the module by ending that
    session's processes only (`ray stop` would stop every Ray cluster of this user)."""
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'embtui[ray]'")
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists():
        pytest.skip("the `ray` command is not installed beside this Python")
    port = _free_port()
    tmp = Path(tempfile.mkdtemp(prefix="ray-embtui-", dir="/tmp"))  # Ray's socket paths must be short
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
    cmd = [str(ray_bin), "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
           "--include-dashboard=false", "--disable-usage-stats", "--node-ip-address=127.0.0.1",
           f"--temp-dir={tmp}", "--object-store-memory=150000000"]
    log = open(tmp_path_factory.mktemp("ray-log") / "ray-start.log", "w")
    head = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"

    def up() -> bool:
        if head.poll() is not None:
            raise AssertionError(f"ray start exited with {head.returncode}: see {log.name}")
        out = subprocess.run([str(ray_bin), "status", f"--address={address}"], env=env,
                             capture_output=True, text=True, timeout=60)
        return out.returncode == 0 and "CPU" in out.stdout

    try:
        _wait(up, timeout=180, what="the Ray head node")
        yield address
    finally:
        import psutil

        try:
            pgid = os.getpgid(head.pid)
            members = [p for p in psutil.process_iter() if _same_group(p, pgid)]
            os.killpg(pgid, signal.SIGTERM)
            _, alive = psutil.wait_procs(members, timeout=5)
            for p in alive:
                p.kill()
        except ProcessLookupError:
            pass
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _same_group(proc, pgid: int) -> bool:
    try:
        return os.getpgid(proc.pid) == pgid
    except (ProcessLookupError, PermissionError):
        return False


def _cli(ws: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "embtui", "--workspace", str(ws), *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def local_metrics(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    """The tiny model's metrics on the demo project, evaluated here in one process: what every Ray
    run must equal (computed once for the module; the evaluation is deterministic)."""
    from embtui.data.beir import import_beir
    from embtui.store import Store

    ws = tmp_path_factory.mktemp("local-ws")
    import_beir(Store.open(ws), DEMO, "demo")
    return _metrics(_cli(ws, "eval", "--project", "demo", "--model", str(tiny_model), "--json"))


def _metrics(proc: subprocess.CompletedProcess) -> dict[str, float]:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)["runs"][0]["metrics"]


@pytest.mark.slow
def test_eval_on_a_ray_cluster_equals_the_local_run(ray_cluster: str, tiny_model: Path, demo_store,
                                                    local_metrics: dict[str, float]) -> None:
    """`embtui eval --executor ray` on the demo project (a real SciFact subset) gives the local run's
    metrics to 1e-6, and every chunk came back through the cluster."""
    ws = demo_store.ws.root
    model = str(tiny_model)
    local = local_metrics
    proc = _cli(ws, "eval", "--project", "demo", "--model", model, "--json", "--force",
                "--executor", "ray", "--ray-address", ray_cluster)
    remote = _metrics(proc)
    for name, value in local.items():
        assert remote[name] == pytest.approx(value, abs=1e-6), name
    run = json.loads(proc.stdout)["runs"][0]
    info = demo_store.get_run(run["id"]).info
    assert info["encode"]["executor"] == "ray"
    assert all(w.startswith("ray:") for w in info["encode"]["devices"])
    enc = info["encode"]
    assert sum(d["texts"] for d in enc["devices"].values()) == enc["documents"]["encoded"] + enc["queries"]["encoded"]


def _ray_task_pids() -> list[int]:
    import psutil

    out = []
    for p in psutil.process_iter(["cmdline", "name"]):
        try:
            title = " ".join(p.info["cmdline"] or []) + " " + (p.info["name"] or "")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "_ray_encode_chunk" in title:
            out.append(p.pid)
    return out


@pytest.mark.slow
def test_a_ray_worker_killed_mid_encode_still_ends_with_identical_metrics(
        ray_cluster: str, tiny_model: Path, demo_store, local_metrics: dict[str, float]) -> None:
    ws = demo_store.ws.root
    model = str(tiny_model)
    local = local_metrics
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "EMBTUI_CHUNK_TEXTS": "8"}
    # small chunks and a slow-ish batch size so the encode lasts long enough to kill a task's worker
    proc = subprocess.Popen([sys.executable, "-m", "embtui", "--workspace", str(ws), "eval", "--project",
                             "demo", "--model", model, "--json", "--force", "--batch-size", "1",
                             "--executor", "ray", "--ray-address", ray_cluster, "--chunk-texts", "8"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    killed = []
    try:
        _wait(lambda: bool(_ray_task_pids()) or proc.poll() is not None, timeout=300,
              what="a Ray worker running an encode task")
        pids = _ray_task_pids()
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed, "the encode finished before a Ray worker could be killed"
    assert proc.returncode == 0, err[-3000:]
    remote = json.loads(out)["runs"][0]["metrics"]
    for name, value in local.items():
        assert remote[name] == pytest.approx(value, abs=1e-6), name


def test_ray_unreachable_is_one_line(tiny_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    port = _free_port()  # nothing listens there
    enc = Encoder(ModelSpec(model=str(tiny_model)), tmp_path, executor="ray",
                  ray_address=f"127.0.0.1:{port}")
    with pytest.raises(EmbtuiError) as err:
        enc.encode(TEXTS[:5], "document")
    assert "cannot reach the Ray cluster" in err.value.message


@pytest.mark.slow
def test_a_detached_ray_eval_is_a_job_that_outlives_the_cli(ray_cluster: str, tiny_model: Path, demo_store,
                                                           local_metrics: dict[str, float]) -> None:
    """`embtui eval --detach --executor ray`: the CLI returns at once with a job id, the job's
    worker (not the CLI) drives the cluster, and `jobs follow` ends with the run's metrics equal to
    a local run's."""
    ws = demo_store.ws.root
    model = str(tiny_model)
    local = local_metrics
    sub = _cli(ws, "eval", "--project", "demo", "--model", model, "--json", "--force", "--detach",
               "--executor", "ray", "--ray-address", ray_cluster, "--chunk-texts", "64")
    assert sub.returncode == 0, sub.stderr[-3000:]
    job_id = json.loads(sub.stdout)["job_ids"][0]
    follow = _cli(ws, "jobs", "follow", job_id, "--json")
    assert follow.returncode == 0, follow.stderr[-3000:] + follow.stdout[-3000:]
    from embtui.jobs import get_job

    job = get_job(ws, job_id)
    assert job.state == "done"
    run = demo_store.get_run(job.run_id)
    for name, value in local.items():
        assert run.metrics[name] == pytest.approx(value, abs=1e-6), name
    assert run.info["encode"]["executor"] == "ray"



# --------------------------------------------------------------------------------------------------
# a detached job over several devices holds a slot of each


def test_a_multi_device_job_takes_a_slot_of_every_device_or_none(tmp_path: Path) -> None:
    from embtui.engine.evaluate import EvalRequest
    from embtui.jobs.files import job_devices, try_slot, try_slots, wait_for_slot
    from embtui.jobs.worker import _job_device

    locks = tmp_path / "locks"
    busy = try_slot(locks, "cuda:1", 1)  # another job runs on cuda:1
    assert busy is not None
    assert try_slots(locks, "cuda:0,cuda:1", 1) is None
    free0 = try_slot(locks, "cuda:0", 1)
    assert free0 is not None, "a device taken while waiting for the other must be let go again"
    free0.release()
    assert wait_for_slot(locks, "cuda:1,cuda:0", 1, stop=lambda: True, poll_s=0.01) is None  # cancelled
    busy.release()
    both = try_slots(locks, "cuda:1,cuda:0", 1)
    assert both is not None and both.devices == ["cuda:0", "cuda:1"]
    assert both.describe(1) == "cuda:0 slot 0 of 1, cuda:1 slot 0 of 1"
    assert try_slot(locks, "cuda:0", 1) is None and try_slot(locks, "cuda:1", 1) is None
    both.release()
    assert try_slot(locks, "cuda:1", 1) is not None

    spec = ModelSpec(model="sentence-transformers/all-MiniLM-L6-v2", name="m")
    assert _job_device(EvalRequest("p", spec, device="cpu,cpu")) == "cpu,cpu"
    assert job_devices("cpu,cpu") == ["cpu"]  # two workers on one device: one slot of it
    assert _job_device(EvalRequest("p", spec, device="cpu")) == "cpu"
    # a Ray job queues for the cluster, and its GPUs need not exist on the driver
    assert _job_device(EvalRequest("p", spec, device="cuda", executor="ray")) == "ray"
