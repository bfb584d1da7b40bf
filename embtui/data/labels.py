"""Document labels for scoring clusters: a file of ``doc_id`` and ``label`` per row (JSONL, CSV/TSV
or Parquet); a bad row is refused with its file, line and field."""

from __future__ import annotations

import os
from pathlib import Path

from embtui.data.files import display_name, require_file
from embtui.data.interactions import _rows
from embtui.errors import DataError


def read_labels(path: str | os.PathLike[str]) -> dict[str, str]:
    p = Path(path)
    require_file(p, "label file", hint="give --labels annotation or a file of doc_id and label")
    name = display_name(p)
    out: dict[str, str] = {}
    for line, row in _rows(p):
        for fld in ("doc_id", "label"):
            if row.get(fld) in (None, ""):
                raise DataError("missing", file=name, line=line, field=fld,
                                hint="each row needs a doc_id and a label")
        out[str(row["doc_id"])] = str(row["label"])
    if not out:
        raise DataError("the file has no labels", file=name)
    return out
