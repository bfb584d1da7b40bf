"""The bundled demo: seed an empty workspace with the SciFact-mini project and starter model specs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from embtui.errors import EmbtuiError

if TYPE_CHECKING:  # pragma: no cover
    from embtui.store import Store

DEMO_PATH = Path(__file__).resolve().parents[1] / "demo" / "scifact-mini"
DEMO_PROJECT = "demo"
# Saved once with the demo so a first-time user can evaluate from the UI at once: a lexical
# baseline that needs no model, and the small dense model most people start from.
STARTER_MODELS: tuple[dict[str, str], ...] = (
    {"model": "bm25", "name": "bm25"},
    {"model": "all-MiniLM-L6-v2", "name": "all-MiniLM-L6-v2"},
)


def ensure_demo(store: "Store") -> bool:
    """Import the demo as project 'demo' when the workspace has no project; True if it did.

    Starter model specs are saved only when the workspace has none. Safe against a second
    process seeding the same workspace at the same moment (that one wins, this returns False).
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
    return True
