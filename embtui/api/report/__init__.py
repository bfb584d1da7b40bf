"""Comparison reports as Markdown, one self-contained HTML file, CSV (per query) or JSON, with
every run's full config: one module per format.

:func:`build_report` (model.py) gathers one immutable :class:`Report`; :func:`write_report`
renders it in the format named by the file extension (markdown.py, html.py, tabular.py) and
writes it atomically; text.py holds the formatting they share.
"""

from __future__ import annotations

import os
from pathlib import Path

from embtui.api.report.html import delta_chart_svg, render_html
from embtui.api.report.markdown import render_markdown
from embtui.api.report.model import SUMMARY_METRICS, QueryLine, Report, RunConfig, build_report
from embtui.api.report.tabular import nan_to_none, render_csv, render_json
from embtui.api.report.text import fmt_p, fmt_signed, fmt_value, run_warnings
from embtui.errors import EmbtuiError

__all__ = ["FORMATS", "RENDERERS", "SUMMARY_METRICS", "QueryLine", "Report", "RunConfig",
           "build_report", "delta_chart_svg", "fmt_p", "fmt_signed", "fmt_value", "nan_to_none",
           "render_csv", "render_html", "render_json", "render_markdown", "report_format",
           "run_warnings", "write_report"]

FORMATS = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html", ".csv": "csv",
           ".json": "json"}
RENDERERS = {"markdown": render_markdown, "html": render_html, "csv": render_csv, "json": render_json}


def report_format(path: str | os.PathLike[str]) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise EmbtuiError(f"cannot tell the report format of '{path}'",
                          "name the file .md, .html, .csv or .json")
    return FORMATS[suffix]


def write_report(report: Report, path: str | os.PathLike[str]) -> Path:
    """Render ``report`` in the format given by the extension of ``path`` and write it atomically."""
    fmt = report_format(path)
    text = RENDERERS[fmt](report)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
