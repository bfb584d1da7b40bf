"""Pure analysis: statistics, run comparison and slices, failures, the metrics table — data in,
results out. Nothing here opens the store, a file or a model (tests/test_architecture.py says so),
so the CLI, the TUI, the report writer and a notebook share one implementation."""
