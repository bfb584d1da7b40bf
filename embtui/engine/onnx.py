"""The ONNX Runtime backend for CPU encoding: a model's transformer exported once to ONNX (and, for
``onnx-int8``, dynamically quantised to int8 weights with ``onnxruntime.quantization``), saved
beside the embedding cache with a checksum record, verified before every use (a damaged file is
exported again, with a warning), and run in place of the torch transformer inside the
sentence-transformers model, so tokenisation, pooling and normalisation stay the model's own.

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
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on traced control flow: not the user's
        torch.onnx.export(Wrapped(hf.float().eval()), args, str(raw), input_names=names,
                          output_names=["last_hidden_state"], opset_version=OPSET, dynamo=False,
                          dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]})
    out = tmp_name(path)
    try:
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            # int8 weights for the matrix products only, one scale per output channel: the word
            # embeddings (Gather) stay float32, which is what keeps the vectors close to fp32
            root = logging.getLogger()
            level = root.level
            root.setLevel(logging.ERROR)  # its advice to pre-process goes to the root logger
            try:
                quantize_dynamic(str(raw), str(out), weight_type=QuantType.QInt8, per_channel=True,
                                 op_types_to_quantize=["MatMul"])
            finally:
                root.setLevel(level)
        else:
            os.replace(raw, out)
        os.replace(out, path)
        write_file_record(path)
    finally:
        for p in (raw, out):
            if p.exists():
                p.unlink()


def use_onnx(model: "SentenceTransformer", precision: str, folder: Path, key: str,
             warnings: list[str] | None = None) -> "SentenceTransformer":
    """Run ``model``'s transformer through ONNX Runtime (exported to ``folder/<key>-<precision>.onnx``
    on first use). ``warnings`` gets a line when a damaged export had to be made again."""
    import torch

    from embtui.engine.integrity import read_json, sidecar_path, verify_file

    ort = _require_runtime()
    if not (hasattr(model[0], "auto_model") or hasattr(model[0], "model")):
        raise EmbtuiError("precisions onnx and onnx-int8 are for transformer models",
                          f"this model's first module is a {type(model[0]).__name__}; use fp32")
    path = Path(folder) / f"{key}-{precision}.onnx"
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
