"""Fixtures for the Textual app's tests: a demo workspace with runs, built once, copied per test."""

from __future__ import annotations

import pytest
import textual._wait

from embtui.tui.testing import copy_workspace, template_workspace

FAST_IDLE_STEP_S = 0.005


@pytest.fixture(autouse=True)
def fast_idle(request, monkeypatch):
    """Pilot waits for "CPU idle" after every key and pause: it sleeps in 20 ms steps until a step
    passes with the process under 5 % busy (two such waits per key). The same wait in 5 ms steps
    (still under 5 % busy) types a path of 60 keys in about half the time. What a test waits for is
    unchanged: messages are counted by Pilot, workers by `settle`, jobs by explicit conditions.
    A module sets ``PILOT_IDLE_STEP_S`` to keep another step (the screenshots keep Textual's own)."""
    step = getattr(request.module, "PILOT_IDLE_STEP_S", FAST_IDLE_STEP_S)
    if hasattr(textual._wait, "SLEEP_GRANULARITY") and hasattr(textual._wait, "SLEEP_IDLE"):
        monkeypatch.setattr(textual._wait, "SLEEP_GRANULARITY", step)
        monkeypatch.setattr(textual._wait, "SLEEP_IDLE", step / 20)


@pytest.fixture(scope="session")
def tui_template(tmp_path_factory, tiny_model):
    """The demo project with bm25 and tiny-model runs; never changed, only copied."""
    return template_workspace(tmp_path_factory.getbasetemp() / "tui-template", tiny_model)


@pytest.fixture()
def ws(tui_template, tmp_path):
    """A private copy of the template workspace, free to change."""
    return copy_workspace(tui_template, tmp_path / "ws")
