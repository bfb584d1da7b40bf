"""The ONNX Runtime backend for CPU encoding: a model's transformer exported once to ONNX, its graph
fused by ONNX Runtime's transformer optimizer (attention, LayerNorm, GELU; kept only when its output
matches the plain export), and, for ``onnx-int8``, dynamically quantised to int8 weights with
``onnxruntime.quantization`` (the fused attention's QKV projection and every matrix product, except
the feed-forward down-projection of the first ``FP32_FFN_LAYERS`` layers, which stays float32: its
GELU input has the outliers that cost the most accuracy, most of all early in the stack). Saved beside the embedding cache with a checksum record, verified before every use (a
damaged file is exported again, with a warning), and run in place of the torch transformer inside
the sentence-transformers model, so tokenisation, pooling and normalisation stay the model's own.
The file name carries ``EXPORT_VERSION``: an export made by an older recipe is never reused.

Written here because sentence-transformers' own ``backend="onnx"`` needs ``optimum``, whose
releases pin an older ``transformers`` than the one sentence-transformers 6 runs with.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from types import MethodType
from typing import TYPE_CHECKING, Any

from embtui.errors import EmbtuiError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

ONNX_PRECISIONS = ("onnx", "onnx-int8")
OPSET = 17
# 1: plain export, int8 on every MatMul; 2: fused graph, every FFN down fp32; 3: fused graph, int8
# QKV too, the first FP32_FFN_LAYERS FFN downs fp32
EXPORT_VERSION = 3
FP32_FFN_LAYERS = 2
_GELU_OPS = {"Gelu", "BiasGelu", "FastGelu", "QuickGelu"}


def _require_runtime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise EmbtuiError("precision onnx needs onnxruntime and onnx",
                          "pip install 'embtui[onnx]' (or onnxruntime onnx)") from None
    return onnxruntime


def _export(model: "SentenceTransformer", path: Path, quantize: bool) -> None:
    import torch

    from embtui.engine.integrity import tmp_name, write_file_record

    module = model[0]
    hf = getattr(module, "auto_model", None) or getattr(module, "model")
    prepare = getattr(module, "preprocess", None) or module.tokenize  # preprocess in ST >= 6
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in prepare(["a b"])]

    class Wrapped(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:
            return self.inner(**dict(zip(names, args)), return_dict=True).last_hidden_state

    sample = prepare(["an example text", "a second, longer example text"])
    args = tuple(sample[n] for n in names)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = tmp_name(path.with_suffix(".fp32.onnx"))
    fused = tmp_name(path.with_suffix(".fused.onnx"))
    attn = getattr(hf.config, "_attn_implementation", None)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on traced control flow: not the user's
        _set_attention(hf, "eager")  # traced as plain MatMul/Softmax, the pattern the optimizer fuses
        try:
            torch.onnx.export(Wrapped(hf.float().eval()), args, str(raw), input_names=names,
                              output_names=["last_hidden_state"], opset_version=OPSET, dynamo=False,
                              dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]})
        finally:
            _set_attention(hf, attn)
    out = tmp_name(path)
    try:
        feeds = {n: sample[n].numpy() for n in names}
        if _optimize(raw, fused, hf.config, feeds):
            os.replace(fused, raw)
        if quantize:
            import onnx
            from onnxruntime.quantization import QuantType, quantize_dynamic

            # int8 weights for the matrix products only, one scale per output channel: the word
            # embeddings (Gather), the attention scores and the first FFN downs stay float32
            root = logging.getLogger()
            level = root.level
            root.setLevel(logging.ERROR)  # its advice to pre-process goes to the root logger
            try:
                quantize_dynamic(str(raw), str(out), weight_type=QuantType.QInt8, per_channel=True,
                                 op_types_to_quantize=["MatMul", "Attention"],
                                 nodes_to_exclude=_ffn_down(raw)[:FP32_FFN_LAYERS],
                                 extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
            finally:
                root.setLevel(level)
        else:
            os.replace(raw, out)
        os.replace(out, path)
        write_file_record(path)
    finally:
        for p in (raw, fused, out):
            if p.exists():
                p.unlink()


def _set_attention(hf: Any, name: str | None) -> None:
    setter = getattr(hf, "set_attn_implementation", None)
    if name and setter is not None:
        try:
            setter(name)
        except (ValueError, ImportError, AttributeError):  # a model that knows only its own attention
            pass


def _optimize(raw: Path, dest: Path, config: Any, feeds: dict[str, Any]) -> bool:
    """Fuse ``raw`` with ONNX Runtime's transformer optimizer into ``dest``; True when the fused graph
    gives the plain graph's output (within float rounding) on ``feeds``, else the plain one is kept."""
    import numpy as np
    import onnxruntime as ort

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the optimizer's notes on each fusion it tried
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        fused = optimize_model(str(raw), model_type="bert", opt_level=1,
                               num_heads=int(getattr(config, "num_attention_heads", 0) or 0),
                               hidden_size=int(getattr(config, "hidden_size", 0) or 0))
        fused.save_model_to_file(str(dest))
        a, b = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
                for p in (raw, dest))
        return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-3, atol=1e-4))
    except Exception:  # noqa: BLE001 - an architecture the optimizer does not know: the plain export
        return False
    finally:
        root.setLevel(level)


def _ffn_down(path: Path) -> list[str]:
    """The MatMuls that take a GELU's output (each feed-forward block's down-projection), in order."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    gelu_out = {o for n in graph.node if n.op_type in _GELU_OPS for o in n.output}
    return [n.name for n in graph.node if n.op_type == "MatMul" and n.input and n.input[0] in gelu_out]


def onnx_file_name(key: str, precision: str) -> str:
    return f"{key}-{precision}-v{EXPORT_VERSION}.onnx"


def use_onnx(model: "SentenceTransformer", precision: str, folder: Path, key: str,
             warnings: list[str] | None = None) -> "SentenceTransformer":
    """Run ``model``'s transformer through ONNX Runtime (exported to
    ``folder/<key>-<precision>-v<EXPORT_VERSION>.onnx`` on first use). ``warnings`` gets a line when
    a damaged export had to be made again."""
    import torch

    from embtui.engine.integrity import read_json, sidecar_path, verify_file

    ort = _require_runtime()
    if not (hasattr(model[0], "auto_model") or hasattr(model[0], "model")):
        raise EmbtuiError("precisions onnx and onnx-int8 are for transformer models",
                          f"this model's first module is a {type(model[0]).__name__}; use fp32")
    path = Path(folder) / onnx_file_name(key, precision)
    if path.exists():
        record = read_json(sidecar_path(path))
        why = "has no checksum record" if record is None else verify_file(path, record)
        if why:
            if warnings is not None:
                warnings.append(f"ONNX export {path.name} {why}; exported it again")
            path.unlink()
    if not path.exists():
        _export(model, path, quantize=precision == "onnx-int8")
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    module = model[0]

    def forward(self: Any, features: dict[str, Any], **_kw: Any) -> dict[str, Any]:
        feeds = {n: features[n].cpu().numpy() for n in inputs}
        hidden = session.run(None, feeds)[0]
        features["token_embeddings"] = torch.from_numpy(hidden)
        return features

    module.forward = MethodType(forward, module)
    model.onnx_path = str(path)  # type: ignore[attr-defined]
    return model
