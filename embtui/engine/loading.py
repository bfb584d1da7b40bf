"""Loading models safely: a sentence-transformers bi-encoder with the spec's precision and length,
or a ``CrossEncoder`` reranker — ``trust_remote_code`` only when the spec opts in, local folders
with the hub offline, pickled weights refused (``torch.load(weights_only=True)``) with one line
that says what to do."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embtui.engine.devices import resolve_device
from embtui.engine.models import ModelSpec, resolve_source
from embtui.errors import EmbtuiError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def pickled_weights_error(spec: ModelSpec, source: str, local: bool) -> EmbtuiError:
    """The one line for a ``pytorch_model.bin`` that holds more than plain tensors."""
    files = sorted(Path(source).rglob("*.bin")) if local else []
    name = str(files[0]) if len(files) == 1 else "pytorch_model.bin"
    return EmbtuiError(
        f"model '{spec.model}': its weights ({name}) are a pickle that holds more than tensors; "
        "embtui loads only safetensors or weights_only checkpoints",
        "if you trust its source, convert it once: python -c \"import torch; from safetensors.torch "
        "import save_file; save_file(torch.load('pytorch_model.bin', weights_only=False), "
        "'model.safetensors')\" in that folder, then remove the .bin")


def is_model2vec(folder: Path) -> bool:
    """A model2vec static model folder: config.json (model2vec's keys, no transformers
    architecture), model.safetensors and tokenizer.json. (model2vec also writes a modules.json; its
    weights file is model2vec's own layout, so it is loaded through model2vec either way.)"""
    if not all((folder / f).exists() for f in ("config.json", "model.safetensors", "tokenizer.json")):
        return False
    import json

    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(config, dict) and "architectures" not in config and "model_type" not in config
            and any(k in config for k in ("embedding_dtype", "vocabulary_quantization", "normalize")))


class StaticModelEncoder:
    """A model2vec static model behind the slice of the ``SentenceTransformer.encode`` signature
    embtui calls. model2vec's own ``encode`` is the reference: it drops unknown tokens and cuts at
    the model's max_length, which sentence-transformers' ``StaticEmbedding.from_model2vec`` does
    not (on SciFact abstracts the two disagree by up to 0.013 in cosine, and by 0.006 NDCG@10 on
    the demo), so embtui runs the model as model2vec does. Numpy on the CPU; ``device`` is accepted
    and ignored."""

    # numpy on the CPU needs no OOM-safe small batches: the encoder sends texts in batches of at
    # least this many (model2vec's own default) and commits chunks of at least 8 of them, so the
    # per-call tokenizer and per-chunk cache costs stay small beside the model's work
    fast_batch = 1024

    def __init__(self, source: str) -> None:
        try:
            from model2vec import StaticModel
        except ImportError:
            raise EmbtuiError("this is a model2vec static model; loading it needs the model2vec package",
                              "pip install model2vec") from None
        self.model = StaticModel.from_pretrained(source)
        self.max_seq_length = self.model.max_length

    def __getitem__(self, i: int) -> Any:  # not a module stack: nothing to swap for ONNX
        return self

    def encode(self, sentences: Any, batch_size: int = 1024, prompt: str | None = None,
               prompt_name: str | None = None, convert_to_numpy: bool = True,
               normalize_embeddings: bool = False, show_progress_bar: bool = False, **_kw: Any) -> Any:
        import numpy as np

        texts = [sentences] if isinstance(sentences, str) else list(sentences)
        if prompt:
            texts = [prompt + t for t in texts]
        max_length = self.max_seq_length if isinstance(self.max_seq_length, int) else None
        out = np.asarray(self.model.encode(texts, max_length=max_length, batch_size=max(batch_size, 1),
                                           use_multiprocessing=False), dtype=np.float32).reshape(len(texts), -1)
        if normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out[0] if isinstance(sentences, str) else out


def load_model(spec: ModelSpec, device: str, onnx_dir: Path | None = None,
               warnings: list[str] | None = None) -> "SentenceTransformer":
    """Load a sentence-transformers model on a device with the spec's precision and length.

    trust_remote_code stays off unless the spec opts in; local folders load with the hub offline.
    Precisions ``onnx`` / ``onnx-int8`` run the transformer through ONNX Runtime on the CPU
    (engine/onnx.py), exported into ``onnx_dir`` once (default ~/.cache/embtui/onnx).
    """
    from embtui.engine.onnx import ONNX_PRECISIONS

    if spec.precision in ONNX_PRECISIONS and not device.startswith("cpu"):
        raise EmbtuiError(f"precision {spec.precision} runs on the CPU, not {device}",
                          "pass --device cpu, or use fp16/bf16 on a GPU")
    source, local = resolve_source(spec)
    if local and is_model2vec(Path(source)):  # numpy only: no torch to import
        if spec.precision != "fp32":
            raise EmbtuiError(f"model '{spec.name}' is a static model2vec model: precision fp32 only",
                              "it is already quantised; use --quantize int8|binary for its vectors")
        return StaticModelEncoder(source)  # type: ignore[return-value]
    if local:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    try:
        model = SentenceTransformer(
            source,
            device=device,
            revision=None if local else spec.revision,
            trust_remote_code=spec.trust_remote_code,
            local_files_only=local,
        )
    except (OSError, ValueError) as exc:
        raise EmbtuiError(f"could not load model '{spec.model}': {str(exc).splitlines()[0]}",
                          "check the id or path; hub models need network the first time") from exc
    except pickle.UnpicklingError:  # torch.load(weights_only=True) refused it: nothing ran
        raise pickled_weights_error(spec, source, local) from None
    if spec.max_seq_length is not None:
        model.max_seq_length = spec.max_seq_length
    if spec.precision == "fp16":
        model.half()
    elif spec.precision == "bf16":
        import torch

        model.to(torch.bfloat16)
    elif spec.precision in ONNX_PRECISIONS:
        import hashlib

        from embtui.engine.models import fingerprint
        from embtui.engine.onnx import use_onnx

        key = hashlib.sha256(str(fingerprint(spec) or source).encode()).hexdigest()[:16]
        folder = onnx_dir or Path.home() / ".cache" / "embtui" / "onnx"
        model = use_onnx(model, spec.precision, folder, key, warnings)
    return model


def cross_encoder(spec: ModelSpec, device: str | None) -> tuple[Any, str]:
    """(the loaded CrossEncoder, the device it is on)."""
    source, local = resolve_source(spec)
    if local:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    used = resolve_device(device or spec.device)
    from sentence_transformers import CrossEncoder
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    try:
        model = CrossEncoder(source, device=used, trust_remote_code=spec.trust_remote_code,
                             local_files_only=local, max_length=spec.max_seq_length,
                             revision=None if local else spec.revision)
    except (OSError, ValueError) as exc:
        raise EmbtuiError(f"could not load cross-encoder '{spec.model}': {str(exc).splitlines()[0]}",
                          "check the id or path; hub models need network the first time") from exc
    except pickle.UnpicklingError:
        raise pickled_weights_error(spec, source, local) from None
    return model, used
