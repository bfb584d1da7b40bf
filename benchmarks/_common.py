"""Helpers shared by the benchmark scripts: where SciFact is, what machine this is."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCIFACT = Path(os.environ.get("EMBTUI_SCIFACT", REPO.parent / "shared" / "datasets" / "scifact"))


def machine() -> str:
    import psutil

    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
            f"Python {platform.python_version()}, {platform.system()}")


def scifact_corpus_texts(limit: int | None = None) -> list[str]:
    texts = []
    with open(SCIFACT / "corpus.jsonl") as f:
        for line in f:
            d = json.loads(line)
            texts.append((d.get("title", "") + " " + d["text"]).strip())
            if limit and len(texts) >= limit:
                break
    return texts
