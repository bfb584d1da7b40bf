"""Profiling a model on a project: measure it (engine/profile.py), store the result per (model,
device, precision), and read the stored profiles back beside the runs — the latency and memory axes
of the frontier."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from embtui.engine.models import resolve_spec
from embtui.engine.profile import Profile, profile_model

if TYPE_CHECKING:
    from embtui.store import Store

__all__ = ["Profile", "load_profiles", "run_profile"]


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
