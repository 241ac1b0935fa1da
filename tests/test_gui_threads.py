"""The engine is the worker's alone: every engine computation the window asks for, the
per-query explanation included, runs on the worker thread, never on the GUI thread."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from explorer.core import engine as engine_module
from explorer.core import explain as explain_module
from explorer.core.bundle import Bundle
from explorer.core.session import Session
from explorer.gui import main_window as main_window_module
from explorer.gui.app import app_context
from explorer.gui.main_window import MainWindow
from explorer.gui.settings import AppSettings

TIMEOUT = 60_000


@pytest.fixture
def threads(monkeypatch) -> list[str]:
    """Names of the threads that called into the engine or explained a query."""
    seen: list[str] = []

    def spy(fn):
        def wrapper(*args, **kwargs):
            seen.append(threading.current_thread().name)
            return fn(*args, **kwargs)
        return wrapper

    for name in ("evaluate", "stage", "space"):
        if hasattr(engine_module.Engine, name):
            monkeypatch.setattr(engine_module.Engine, name, spy(getattr(engine_module.Engine,
                                                                        name)))
    monkeypatch.setattr(main_window_module, "explain_query", spy(explain_module.explain_query))
    return seen


def test_query_clicks_never_touch_the_engine_on_the_gui_thread(qtbot, tiny_bundle: Path,
                                                               tmp_path, threads):
    settings = AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    w = MainWindow(Session(Bundle.open(tiny_bundle)), tiny_bundle, app_context(settings))
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.viewApplied, timeout=TIMEOUT):
        w.show()
    qtbot.waitUntil(lambda: not w.query_pending(), timeout=TIMEOUT)
    for row in (1, 2, 3):
        with qtbot.waitSignal(w.queryShown, timeout=TIMEOUT):
            w.select_query(row)
        assert w.grid.model().rowCount() >= 1
    w.set_near_misses(False)
    qtbot.waitUntil(lambda: not w.query_pending(), timeout=TIMEOUT)
    assert threads, "the spies saw nothing: the test no longer watches the engine"
    assert set(threads) == {"explorer-worker"}, threads
    w.worker.stop()
