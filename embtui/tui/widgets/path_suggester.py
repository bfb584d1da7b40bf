"""Input completion from the file system: the first entry that extends the typed path."""

from __future__ import annotations

import os

from textual.suggester import Suggester


class PathSuggester(Suggester):
    """Suggests files and folders (folders with a trailing slash), hidden ones only when the
    typed name starts with a dot. Accept with the right arrow, as with any Textual suggestion."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        return complete_path(value)


def complete_path(value: str) -> str | None:
    if not value:
        return None
    expanded = os.path.expanduser(value)
    folder, prefix = os.path.split(expanded)
    try:
        names = sorted(os.listdir(folder or "."))
    except OSError:
        return None
    for name in names:
        if not name.startswith(prefix) or name == prefix and not os.path.isdir(expanded):
            continue
        if name.startswith(".") and not prefix.startswith("."):
            continue
        full = os.path.join(folder, name)
        if os.path.isdir(full):
            full += os.sep
        if full == expanded:
            continue
        # keep what the user typed (e.g. "~/") and append the rest
        return value + full[len(expanded):]
    return None
