"""Opening a workspace: the one Store every use case works on, where the default workspace is,
and the record types (projects, runs) the front ends display."""

from embtui.store import Corpus, ProjectInfo, RunInfo, Store, Workspace, default_workspace
from embtui.store.db import DB_NAME

__all__ = ["DB_NAME", "Corpus", "ProjectInfo", "RunInfo", "Store", "Workspace", "default_workspace"]
