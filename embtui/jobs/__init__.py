"""Job runner: detached worker processes, progress, cancel, resume."""
