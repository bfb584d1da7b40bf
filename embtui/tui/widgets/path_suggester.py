"""Input completion from the file system, shell-style: the longest prefix all matches share."""

from __future__ import annotations

import os

from textual.suggester import Suggester


class PathSuggester(Suggester):
    """Suggests the completion every matching file or folder shares (a folder gets a trailing
    slash once it is the only match), hidden ones only when the typed name starts with a dot.
    Accept with the right arrow, as with any Textual suggestion. With several matches the
    suggestion stops where they differ, as a shell's tab does, instead of jumping to the first."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        return complete_path(value)


def path_matches(value: str) -> list[str]:
    """The entries that extend ``value`` (expanded, folders ending in a slash), sorted."""
    if not value:
        return []
    expanded = os.path.expanduser(value)
    folder, prefix = os.path.split(expanded)
    try:
        names = sorted(os.listdir(folder or "."))
    except OSError:
        return []
    out = []
    for name in names:
        if not name.startswith(prefix):
            continue
        if name.startswith(".") and not prefix.startswith("."):
            continue
        full = os.path.join(folder, name)
        if os.path.isdir(full):
            full += os.sep
        if full == expanded:
            continue
        out.append(full)
    return out


def complete_path(value: str) -> str | None:
    """``value`` extended to the longest prefix of all its matches, or None if that adds nothing."""
    matches = path_matches(value)
    if not matches:
        return None
    expanded = os.path.expanduser(value)
    common = os.path.commonprefix(matches)
    if len(common) <= len(expanded):
        return None
    # keep what the user typed (e.g. "~/") and append the rest
    return value + common[len(expanded):]
