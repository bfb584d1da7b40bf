"""The ONNX Runtime backend: vectors equal to torch's (fp32 export) or close (int8 weights), the
export made once and verified before every use (a damaged one is made again, with a warning), and
GPU devices refused in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

from embtui.engine.encode import Encoder  # noqa: E402
from embtui.engine.models import ModelSpec  # noqa: E402
from embtui.engine.onnx import EXPORT_VERSION  # noqa: E402
from embtui.errors import EmbtuiError  # noqa: E402

TEXTS = [f"sentence number {i} about {'cats' if i % 2 else 'the weather'} and more words" for i in range(40)]


def _vectors(model: Path, root: Path, precision: str) -> tuple[np.ndarray, Encoder]:
    enc = Encoder(ModelSpec(str(model), precision=precision), root / "cache", device="cpu")
    return enc.encode(TEXTS, "document")[0], enc


def test_onnx_vectors_match_torch(tiny_model: Path, tmp_path: Path) -> None:
    ref, _ = _vectors(tiny_model, tmp_path, "fp32")
    fp32, enc = _vectors(tiny_model, tmp_path, "onnx")
    assert np.abs(fp32 - ref).max() < 1e-5
    exported = sorted((tmp_path / "onnx").glob("*.onnx"))
    assert [p.name.endswith(f"-onnx-v{EXPORT_VERSION}.onnx") for p in exported] == [True]
    assert (tmp_path / "onnx" / (exported[0].name + ".check.json")).exists()
    int8, _ = _vectors(tiny_model, tmp_path, "onnx-int8")
    assert float(np.min(np.sum(int8 * ref, axis=1))) > 0.98  # cosine: int8 weights stay close
    assert not np.array_equal(int8, ref)


def test_the_export_is_reused_and_a_damaged_one_made_again(tiny_model: Path, tmp_path: Path) -> None:
    _vectors(tiny_model, tmp_path, "onnx")
    [path] = (tmp_path / "onnx").glob("*.onnx")
    stamp = path.stat().st_mtime_ns
    enc = Encoder(ModelSpec(str(tiny_model), precision="onnx", name="again"), tmp_path / "cache2", device="cpu")
    enc.model()
    assert path.stat().st_mtime_ns == stamp and enc.load_warnings == []  # reused as it was
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    enc = Encoder(ModelSpec(str(tiny_model), precision="onnx"), tmp_path / "cache3", device="cpu")
    vecs = enc.encode(TEXTS, "document")[0]
    assert any("damaged" in w and "exported it again" in w for w in enc.load_warnings)
    ref, _ = _vectors(tiny_model, tmp_path / "x", "fp32")
    assert np.abs(vecs - ref).max() < 1e-5  # never garbage from the damaged file


def test_onnx_runs_on_the_cpu_only(tiny_model: Path) -> None:
    from embtui.engine.loading import load_model

    with pytest.raises(EmbtuiError, match="precision onnx-int8 runs on the CPU, not cuda:0"):
        load_model(ModelSpec(str(tiny_model), precision="onnx-int8"), "cuda:0")


def test_the_int8_export_is_fused_and_keeps_the_first_ffn_down_projections_float(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx

    monkeypatch.setattr("embtui.engine.onnx.FP32_FFN_LAYERS", 1)  # the tiny model has 2 layers
    _vectors(tiny_model, tmp_path, "onnx-int8")
    [path] = (tmp_path / "onnx").glob("*.onnx")
    nodes = onnx.load(str(path)).graph.node
    ops = [n.op_type for n in nodes]
    assert ops.count("QAttention") == 2 and "SkipLayerNormalization" in ops  # fused, QKV in int8
    gelu = {o for n in nodes if n.op_type in ("Gelu", "BiasGelu", "FastGelu") for o in n.output}
    down = [n.op_type for n in nodes if n.input and n.input[0] in gelu]
    assert len(down) == 2 and down[0] == "MatMul" and down[1] != "MatMul"  # layer 1 float32, 2 int8
    assert ops.count("MatMulInteger") + ops.count("DynamicQuantizeMatMul") > 0  # the rest int8


def test_an_export_of_an_older_recipe_is_not_reused(tiny_model: Path, tmp_path: Path) -> None:
    from embtui.engine.integrity import write_file_record

    _vectors(tiny_model, tmp_path, "onnx")
    [path] = (tmp_path / "onnx").glob("*.onnx")
    old = path.with_name(path.name.replace(f"-v{EXPORT_VERSION}.onnx", ".onnx"))  # version 1's name
    old.write_bytes(b"not the current recipe")
    write_file_record(old)  # verifies: only its name tells it apart
    path.unlink()
    enc = Encoder(ModelSpec(str(tiny_model), precision="onnx", name="again"), tmp_path / "cache2", device="cpu")
    vecs = enc.encode(TEXTS, "document")[0]
    assert path.exists() and enc.model().onnx_path == str(path)  # made again, the old file left alone
    ref, _ = _vectors(tiny_model, tmp_path / "x", "fp32")
    assert np.abs(vecs - ref).max() < 1e-5


def test_vectors_and_runs_of_an_older_export_are_never_served(tiny_model) -> None:
    """The ONNX export's recipe version is part of the model's fingerprint for onnx precisions, so
    the embedding cache key and identical-run reuse change with it; torch precisions keep theirs."""
    from embtui.engine import onnx as onnx_mod
    from embtui.engine.models import ModelSpec, cache_key, fingerprint

    torch_fp = fingerprint(ModelSpec(model=str(tiny_model)))
    spec = ModelSpec(model=str(tiny_model), precision="onnx-int8")
    fp = fingerprint(spec)
    assert fp == f"{torch_fp}+onnx-export-v{onnx_mod.EXPORT_VERSION}"
    key = cache_key(spec, fp, "document")
    old = cache_key(spec, f"{torch_fp}+onnx-export-v{onnx_mod.EXPORT_VERSION - 1}", "document")
    assert key != old
