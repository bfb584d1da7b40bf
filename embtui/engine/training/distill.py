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


def distill_student(store: "Store", teacher: str, student: str, name: str, *, project: str,
                    epochs: float = 1.0, batch_size: int = 32, lr: float = 1e-4,
                    max_seq_length: int | None = 256, seed: int = 42, test_split: str = "test",
                    device: str | None = None, progress: ProgressCallback | None = None,
                    cancel: CancelToken | None = None,
                    log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """A smaller student trained to reproduce the teacher's embeddings (sentence-transformers'
    ``MSELoss``) on the project's documents and training queries. The teacher's vectors come from
    embtui's embedding cache (encoded once, if they are not there yet). A student whose dimension
    differs from the teacher's gets a linear ``Dense`` projection to it (then normalised again when
    the teacher's vectors are). Evaluated on the test split beside the teacher."""
    import torch
    from datasets import Dataset
    from sentence_transformers import (SentenceTransformer, SentenceTransformerTrainer,
                                       SentenceTransformerTrainingArguments)
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize
    from transformers.trainer_callback import PrinterCallback

    from embtui.engine.devices import resolve_device
    from embtui.engine.encode import Encoder
    from embtui.engine.evaluate import versions
    from embtui.engine.loading import load_model
    from embtui.engine.models import ModelSpec, fingerprint, resolve_spec
    from embtui.engine.training.finetune import write_json_atomic
    from embtui.engine.training.run import (LINEAGE_FILE, check_model_name, check_new_model,
                                            evaluate_against_base, models_dir)

    progress = progress or no_progress
    cancel = cancel or CancelToken()
    check_model_name(name)
    check_new_model(store, name)
    t_spec, s_spec = resolve_spec(teacher, store), resolve_spec(student, store)
    for spec in (t_spec, s_spec):
        if spec.is_bm25 or spec.is_pipeline:
            raise EmbtuiError(f"'{spec.name}' is not a dense model")
    info = store.get_project(project)
    dev = resolve_device(device or "auto")
    docs = store.corpus(project).encode_texts()
    queries = list(store.queries(project, "train").values()) if "train" in info.splits else []
    enc = Encoder(t_spec, store.ws.cache_dir, store=store, device=dev)
    d_vec, d_stats = enc.encode(docs, "document", progress=progress, cancel=cancel)
    q_vec, _ = enc.encode(queries, "query", progress=progress, cancel=cancel) if queries else (None, None)
    log(f"teacher vectors: {d_stats.cached} documents from the cache, {d_stats.encoded} encoded now")
    texts = docs + queries
    import numpy as np

    labels = d_vec if q_vec is None else np.vstack([d_vec, q_vec])
    model = load_model(s_spec, dev)
    if max_seq_length:
        model.max_seq_length = max_seq_length
    s_dim, t_dim = model.get_embedding_dimension(), labels.shape[1]
    if s_dim != t_dim:
        mods = [m for m in model if not isinstance(m, Normalize)]
        mods.append(Dense(s_dim, t_dim, activation_function=torch.nn.Identity()))
        if t_spec.normalize:
            mods.append(Normalize())
        model = SentenceTransformer(modules=mods, device=dev)
        log(f"student dimension {s_dim} != teacher's {t_dim}: a linear projection is trained with it")
    data = Dataset.from_dict({"text": texts, "label": labels.astype(np.float32).tolist()})
    work = models_dir(store) / f".{name}.training"
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work), num_train_epochs=epochs, per_device_train_batch_size=batch_size,
        learning_rate=lr, warmup_ratio=0.1, seed=seed, data_seed=seed, save_strategy="no",
        report_to="none", use_cpu=dev == "cpu", dataloader_num_workers=0, disable_tqdm=True,
        logging_steps=10)
    from embtui.engine.training.finetune import Curves, _callback

    curves = Curves("ndcg@10")
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data,
                                         loss=losses.MSELoss(model),
                                         callbacks=[_callback(curves, work / "curves.json", progress, cancel,
                                                              batch_size, log)])
    trainer.remove_callback(PrinterCallback)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    trainer.train()
    cancel.check()
    out = models_dir(store) / name
    if out.exists():
        shutil.rmtree(out)
    trainer.model.save_pretrained(str(out))
    lineage = {"name": name, "kind": "student (MSELoss to the teacher's embeddings)",
               "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "base": {"name": t_spec.name, "model": t_spec.model, "fingerprint": fingerprint(t_spec, store)},
               "student": {"name": s_spec.name, "model": s_spec.model, "dim": s_dim},
               "data": {"project": project, "documents": len(docs), "queries": len(queries)},
               "config": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
                          "max_seq_length": max_seq_length},
               "dim": t_dim, "train_seconds": round(time.perf_counter() - t0, 2), "device": dev,
               "curves": curves.to_dict(), "size_bytes": folder_bytes(out),
               "teacher_size_bytes": folder_bytes(Path(resolve_source_path(t_spec))), "versions": versions()}
    write_json_atomic(out / LINEAGE_FILE, lineage)
    new = ModelSpec(str(out), name=name, max_seq_length=max_seq_length, normalize=t_spec.normalize)
    store.save_model(name, new.to_dict())
    loss = curves.loss
    result: dict[str, Any] = {"model": name, "path": str(out), "dim": t_dim,
                              "size_mib": round(lineage["size_bytes"] / 2**20, 2),
                              "teacher_size_mib": round(lineage["teacher_size_bytes"] / 2**20, 2),
                              "train_seconds": lineage["train_seconds"],
                              "loss_first": loss[0][1] if loss else None, "loss_last": loss[-1][1] if loss else None}
    result.update(evaluate_against_base(store, project, test_split, new, t_spec, dev, progress=progress,
                                        cancel=cancel))
    return result


def resolve_source_path(spec: Any) -> str:
    from embtui.engine.models import resolve_source

    return resolve_source(spec)[0]
