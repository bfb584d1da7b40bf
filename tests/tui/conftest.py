"""Fixtures for the Textual app's tests: a demo workspace with runs, built once, copied per test."""

from __future__ import annotations

import pytest

from embtui.tui.testing import copy_workspace, template_workspace


@pytest.fixture(scope="session")
def tui_template(tmp_path_factory, tiny_model):
    """The demo project with bm25 and tiny-model runs; never changed, only copied."""
    return template_workspace(tmp_path_factory.getbasetemp() / "tui-template", tiny_model)


@pytest.fixture()
def ws(tui_template, tmp_path):
    """A private copy of the template workspace, free to change."""
    return copy_workspace(tui_template, tmp_path / "ws")
