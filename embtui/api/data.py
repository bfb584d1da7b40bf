"""Understanding the data: the dataset profile, query logs, the embedding space and drift — what
`embtui inspect`, `embtui import queries`, `embtui space`, `embtui drift` and the Project, Space
and Drift panes call.

The latest drift of each project is kept (``WORKSPACE/drift/PROJECT.json``, written atomically)
so the sidebar and the Drift pane can raise an alert without recomputing anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from embtui.engine.data_profile import ModelTokenizer, profile_dataset
from embtui.engine.drift import drift as _drift
from embtui.engine.drift import resolve_set
from embtui.engine.space import SpaceView, build_space
from embtui.errors import EmbtuiError

if TYPE_CHECKING:
    from embtui.store import Store

__all__ = ["SpaceView", "build_space", "drift", "import_query_log", "inspect", "latest_drift", "point_labels",
           "resolve_set", "tokenize_side_by_side"]


def inspect(store: "Store", project: str, models: Sequence[str] = (), *, near_threshold: float = 0.95,
            progress: Callable[..., None] | None = None) -> dict[str, Any]:
    store.get_project(project)
    if not 0 < near_threshold <= 1:
        raise EmbtuiError(f"--near {near_threshold}: a cosine in (0, 1]")
    return profile_dataset(store, project, models, near_threshold=near_threshold, progress=progress)


def import_query_log(store: "Store", path: str, project: str, log: str, *, replace: bool = False) -> dict[str, Any]:
    from embtui.data.query_logs import read_query_log

    store.get_project(project)
    parsed = read_query_log(path)  # the whole file reads cleanly before anything is stored
    n = store.save_query_log(project, log, parsed.texts, parsed.timestamps, replace=replace)
    return {"project": project, "log": log, "queries": n, "timestamped": parsed.timestamped}


def point_labels(store: "Store", project: str) -> dict[str, str]:
    """The first label put on each document (document-level annotations) and on each query
    (query-level ones) of a project: what the Space pane colours by."""
    from embtui.engine.space import label_field

    out = dict(label_field(store, project, "annotation"))
    for q, labels in store.annotations.query_labels(project).items():
        if labels:
            out.setdefault(q, labels[0])
    return out


def _drift_file(store: "Store", project: str) -> Path:
    return Path(store.ws.root) / "drift" / f"{project}.json"


def drift(store: "Store", project: str, model: str, reference: str, current: str, *,
          save: bool = True, **options: Any) -> dict[str, Any]:
    """Every drift measure for ``current`` against ``reference`` (see engine/drift.py for the set
    names); the result is kept as the project's latest drift when ``current`` is a query log."""
    from embtui.engine.integrity import write_json_atomic

    store.get_project(project)
    out = _drift(store, project, model, reference, current, **options)
    if save and current.startswith("log:"):
        path = _drift_file(store, project)
        path.parent.mkdir(parents=True, exist_ok=True)
        from embtui.api.compare import nan_to_none

        write_json_atomic(path, nan_to_none(out))
    return out


def latest_drift(store: "Store", project: str) -> dict[str, Any] | None:
    """The project's latest saved drift of a query log (None: none yet, or unreadable)."""
    from embtui.engine.integrity import read_json

    return read_json(_drift_file(store, project))


_TOKENIZERS: dict[tuple[str, str], ModelTokenizer] = {}


def _tokenizer(name: str, key: str, spec: Any) -> ModelTokenizer:
    """One tokenizer per (model, spec), kept: the Query pane tokenizes on every pause in typing."""
    tok = _TOKENIZERS.get((name, key))
    if tok is None:
        tok = _TOKENIZERS[(name, key)] = ModelTokenizer(name, spec)
    return tok


def tokenize_side_by_side(store: "Store", models: Sequence[str], text: str) -> list[dict[str, Any]]:
    """How each model's tokenizer cuts ``text``: pieces, [UNK]s and where the max length cuts."""
    from embtui.engine.models import resolve_spec

    out = []
    for name in models:
        spec = resolve_spec(name, store)
        if spec.is_bm25 or spec.is_pipeline:
            continue
        try:
            tok = _tokenizer(name, json.dumps(spec.to_dict(), sort_keys=True, default=str), spec)
        except EmbtuiError as exc:
            out.append({"model": name, "error": str(exc)})
            continue
        pieces, cut = tok.pieces(text)
        unk = tok.tok.id_to_token(tok.unk_id) if tok.unk_id is not None else None
        out.append({"model": name, "pieces": pieces, "count": len(pieces), "cut_at": cut,
                    "max_length": tok.max_length, "unknown": sum(1 for p in pieces if unk and p == unk)})
    return out
