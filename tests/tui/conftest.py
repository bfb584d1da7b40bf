"""Fixtures for the Textual app's tests: a demo workspace with runs, built once, copied per test."""

from __future__ import annotations

import gc

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


COLLECT_EVERY = 25  # tests between full collections (the garbage of at most this many apps waits)
_since_collect = [COLLECT_EVERY]


@pytest.fixture(autouse=True)
def frozen_heap():
    """Every object alive when a test starts (torch, transformers, Textual: ~1M in this process) is
    frozen out of the collector's reach for the test, as the app does for itself once its model stack
    is loaded (embtui/tui/heap.py): each full collection then walks only what the test made, instead of
    ~0.6 s over everything (24 % of these tests' time went to full collections). The app's unmount
    unfreezes, and so does this fixture; a full collection every ``COLLECT_EVERY`` tests frees the
    garbage that was frozen with the rest."""
    if _since_collect[0] >= COLLECT_EVERY:
        gc.collect()
        _since_collect[0] = 0
    _since_collect[0] += 1
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(scope="session")
def tui_template(tmp_path_factory, tiny_model):
    """The demo project with bm25 and tiny-model runs; never changed, only copied."""
    return template_workspace(tmp_path_factory.getbasetemp() / "tui-template", tiny_model)


@pytest.fixture()
def ws(tui_template, tmp_path):
    """A private copy of the template workspace, free to change."""
    return copy_workspace(tui_template, tmp_path / "ws")
