"""Distillation for cost: a static model2vec model from any sentence-transformers model.

``model2vec.distill.distill`` runs the teacher over its vocabulary once (token embeddings, PCA to
``pca_dims``, SIF weighting); the result encodes with a table lookup and a mean, 10-100x faster
than the transformer. It is saved under ``<workspace>/models/NAME`` with ``lineage.json``,
registered as a model spec (embtui loads model2vec folders with model2vec itself,
engine/loading.py), and evaluated like any model on the test split, beside its teacher with a
paired test, its size on disk and encoding speed in the result.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from embtui.engine.progress import CancelToken, Progress, ProgressCallback, no_progress
from embtui.errors import EmbtuiError

if TYPE_CHECKING:  # pragma: no cover
    from embtui.store import Store


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def distill_static(store: "Store", teacher: str, name: str, *, project: str | None = None,
                   pca_dims: int | None = 256, test_split: str = "test", device: str | None = None,
                   progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
                   log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    from embtui.engine.devices import resolve_device
    from embtui.engine.evaluate import versions
    from embtui.engine.models import ModelSpec, fingerprint, resolve_source, resolve_spec
    from embtui.engine.training.finetune import write_json_atomic
    from embtui.engine.training.run import (LINEAGE_FILE, check_model_name, check_new_model,
                                            evaluate_against_base, models_dir)

    progress = progress or no_progress
    cancel = cancel or CancelToken()
    check_model_name(name)
    check_new_model(store, name)
    spec = resolve_spec(teacher, store)
    if spec.is_bm25 or spec.is_pipeline:
        raise EmbtuiError(f"'{teacher}' is not a dense model to distill")
    if pca_dims is not None and pca_dims < 1:
        raise EmbtuiError(f"--pca-dims must be positive, got {pca_dims}")
    if project is not None:
        store.get_project(project)
    source, _ = resolve_source(spec)
    dev = resolve_device(device or spec.device)
    try:
        from model2vec.distill import distill
    except ImportError as exc:
        raise EmbtuiError(f"distillation needs model2vec's distill extra: {exc}",
                          "pip install 'skeletoken>=0.6,<0.7' (or model2vec[distill])") from None
    progress(Progress("distill", 0, 1, message=f"distilling {spec.name} with model2vec"))
    t0 = time.perf_counter()
    static = distill(model_name=source, pca_dims=pca_dims, device=dev,
                     trust_remote_code=spec.trust_remote_code)
    seconds = time.perf_counter() - t0
    cancel.check()
    out = models_dir(store) / name
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    static.save_pretrained(str(out))
    progress(Progress("distill", 1, 1))
    dim = int(static.dim) if hasattr(static, "dim") else None
    lineage = {"name": name, "kind": "static (model2vec distill)",
               "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "base": {"name": spec.name, "model": spec.model, "fingerprint": fingerprint(spec, store)},
               "config": {"pca_dims": pca_dims, "method": "model2vec.distill"},
               "dim": dim, "distill_seconds": round(seconds, 2), "device": dev,
               "size_bytes": folder_bytes(out), "teacher_size_bytes": folder_bytes(Path(source)),
               "versions": versions()}
    write_json_atomic(out / LINEAGE_FILE, lineage)
    new = ModelSpec(model=str(out), name=name, batch_size=1024)
    store.save_model(name, new.to_dict())
    log(f"distilled '{spec.name}' into '{name}' ({dim} dims, {lineage['size_bytes'] / 2**20:.1f} MiB, "
        f"{seconds:.0f} s)")
    result: dict[str, Any] = {"model": name, "path": str(out), "dim": dim,
                              "size_mib": round(lineage["size_bytes"] / 2**20, 2),
                              "teacher_size_mib": round(lineage["teacher_size_bytes"] / 2**20, 2),
                              "distill_seconds": round(seconds, 1)}
    if project is not None:
        result.update(evaluate_against_base(store, project, test_split, new, spec, "cpu",
                                            progress=progress, cancel=cancel))
    return result
