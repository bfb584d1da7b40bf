"""Comparing runs and writing up the result: per-query deltas with paired tests and Holm, slices,
metrics on corrected judgments, reports (Markdown, HTML, JSON, CSV) and hard-negative exports,
with the number formatting every front end shares."""

from embtui.engine.compare import (compare_metrics, compare_runs, corrected_metrics, default_slices,
                                   slice_comparison, slice_metrics)
from embtui.api.negatives import export_negatives, format_for
from embtui.api.report import (build_report, fmt_p, fmt_signed, fmt_value, nan_to_none,
                                  report_format, write_report)

__all__ = ["build_report", "compare_metrics", "compare_runs", "corrected_metrics", "default_slices",
           "export_negatives", "fmt_p", "fmt_signed", "fmt_value", "format_for", "nan_to_none",
           "report_format", "slice_comparison", "slice_metrics", "write_report"]
