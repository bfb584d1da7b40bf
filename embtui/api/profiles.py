"""Profiling a model on a project: measure it (engine/profile.py), store the result per (model,
device, precision), and read the stored profiles back beside the runs — the latency and memory axes
of the frontier."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from embtui.engine.models import resolve_spec
from embtui.engine.profile import Profile, profile_model
from embtui.errors import EmbtuiError

if TYPE_CHECKING:
    from embtui.store import Store

__all__ = ["Profile", "load_profiles", "parse_count", "run_profile"]


def run_profile(store: "Store", project: str, model: str, *, device: str | None = None,
                overrides: dict[str, Any] | None = None, progress: Callable[[str], None] | None = None,
                **options: Any) -> Profile:
    """Measure ``model`` (a saved name, hub id, path or bm25, with ``overrides``) on ``project``'s
    texts and store the profile; an unknown model or project fails before anything runs."""
    from embtui.engine.devices import check_device_name

    if device:
        check_device_name(device)
    store.get_project(project)
    spec = resolve_spec(model, store, **(overrides or {}))
    prof = profile_model(store, project, spec, device or spec.device, progress=progress, **options)
    store.save_profile(project, prof.model, prof.device, prof.precision, spec.to_dict(), prof.to_dict())
    return prof


def load_profiles(store: "Store", project: str) -> list[Profile]:
    """The project's stored profiles (the latest per model, device and precision)."""
    return [Profile.from_dict(p["result"]) for p in store.list_profiles(project)]


def parse_count(text: str) -> int:
    """``10M``, ``500k``, ``2.5M`` or a plain number of documents."""
    raw = text.strip().lower().replace("_", "").replace(",", "")
    scale = {"k": 10**3, "m": 10**6, "b": 10**9}.get(raw[-1:], 1)
    try:
        value = float(raw[:-1] if scale > 1 else raw) * scale
    except ValueError:
        raise EmbtuiError(f"--docs '{text}' is not a number of documents", "e.g. --docs 10M") from None
    if value < 1:
        raise EmbtuiError(f"--docs {text}: at least one document")
    return int(value)
