"""Importers and validation: BEIR folders, pair files (JSONL/CSV/Parquet) into a project."""
