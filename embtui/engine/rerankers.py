"""Cross-encoder rerankers: load a sentence-transformers ``CrossEncoder`` the way models load
(trust_remote_code only when the spec opts in, local folders with the hub offline, pickled
weights refused), on a resolved device. The scoring loop lives in retrievers/pipeline.py."""

from __future__ import annotations

import os
import pickle
from typing import TYPE_CHECKING, Any

from embtui.engine.devices import resolve_device
from embtui.engine.models import pickled_weights_error, resolve_source
from embtui.errors import EmbtuiError

if TYPE_CHECKING:
    from embtui.engine.models import ModelSpec


def cross_encoder(spec: "ModelSpec", device: str | None) -> tuple[Any, str]:
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
