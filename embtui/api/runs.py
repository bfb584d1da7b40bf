"""Runs as the user manages them: deleting (with the indexes no other run uses), the note for a
run reused instead of recomputed, the metric list and index options of a request, TREC run files."""

from embtui.engine.evaluate import EvalRequest, check_run_file, write_trec_run
from embtui.engine.metrics import parse_ks
from embtui.engine.runs import delete_runs, identical_note
from embtui.engine.hnsw import HnswConfig

__all__ = ["EvalRequest", "HnswConfig", "check_run_file", "delete_runs", "identical_note", "parse_ks",
           "write_trec_run"]
