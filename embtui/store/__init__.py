"""Workspace store: DuckDB schema, migrations and the typed read/write API (the only SQL in embtui)."""

from embtui.store.api import Corpus, ProjectInfo, Store
from embtui.store.runs import RunInfo
from embtui.store.db import Workspace, default_workspace

__all__ = ["Corpus", "ProjectInfo", "RunInfo", "Store", "Workspace", "default_workspace"]
