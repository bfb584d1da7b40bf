"""Which importer a path is for: a BEIR folder or a pairs file, judged from what is on disk."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Detected:
    """``kind`` is "beir", "pairs" or None (nothing importable there yet); ``note`` says why."""

    kind: str | None
    note: str


def detect_import_kind(path: str | os.PathLike[str]) -> Detected:
    """Folder with a corpus.jsonl → BEIR (its splits named); a file of a pairs format → pairs.
    Cheap (a few stat calls), so a form can call it on every keystroke."""
    from embtui.data.pairs import FORMATS

    text = os.fspath(path)
    if not text.strip():
        return Detected(None, "")
    p = Path(text).expanduser()
    try:
        if p.is_dir():
            corpus = [c for c in ("corpus.jsonl", "corpus.jsonl.gz") if (p / c).is_file()]
            if not corpus:
                return Detected(None, "a folder without corpus.jsonl: not a BEIR folder")
            qrels = p / "qrels"
            splits = sorted(f.stem for f in qrels.iterdir()
                            if f.suffix.lower() == ".tsv") if qrels.is_dir() else []
            where = f"splits {', '.join(splits)}" if splits else "no qrels/ splits yet"
            return Detected("beir", f"BEIR folder ({corpus[0]}, {where})")
        if p.is_file():
            kind = FORMATS.get(p.suffix.lower())
            if kind is None:
                return Detected("pairs", f"a {p.suffix or 'extension-less'} file: the pairs "
                                         "importer reads .jsonl, .csv, .tsv and .parquet")
            return Detected("pairs", f"pairs file ({kind.upper()})")
    except OSError as exc:
        return Detected(None, f"cannot read it: {exc.strerror or exc}")
    return Detected(None, "")
