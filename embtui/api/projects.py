"""Bringing data in: BEIR folders and pairs files (validated, all or nothing), telling which a
path is, and the bundled demo project (imported on first start, evaluated with BM25)."""

from embtui.data.beir import import_beir
from embtui.data.detect import detect_import_kind
from embtui.data.pairs import import_pairs
from embtui.engine.demo import DEMO_PATH, DEMO_PROJECT, ensure_demo, evaluate_demo

__all__ = ["DEMO_PATH", "DEMO_PROJECT", "detect_import_kind", "ensure_demo", "evaluate_demo",
           "import_beir", "import_pairs"]
