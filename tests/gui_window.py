"""Opening a main window over a bundle and waiting for the worker, for the GUI tests."""

from __future__ import annotations

from pathlib import Path

from explorer.core.bundle import Bundle
from explorer.core.config import MatchConfig
from explorer.core.session import Session
from explorer.gui.app import app_context
from explorer.gui.main_window import MainWindow
from explorer.gui.settings import AppSettings

TIMEOUT = 60_000


def open_main_window(qtbot, bundle: Path, settings: AppSettings) -> MainWindow:
    """A shown main window whose first view and query grid are on screen."""
    w = MainWindow(Session(Bundle.open(bundle)), bundle, app_context(settings))
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.viewApplied, timeout=TIMEOUT):
        w.show()
    settle(qtbot, w)
    return w


def settle(qtbot, w: MainWindow) -> None:
    """Wait until the current query's grid (computed by the worker) is on screen."""
    qtbot.waitUntil(lambda: not w.query_pending(), timeout=TIMEOUT)


def apply(qtbot, w: MainWindow, cfg: MatchConfig) -> None:
    with qtbot.waitSignal(w.viewApplied, timeout=TIMEOUT):
        w.set_config(cfg)
    settle(qtbot, w)


def open_on(qtbot, bundle: Path, settings: AppSettings, scope: str,
            cfg: MatchConfig) -> MainWindow:
    """`open_main_window`, then the scope and configuration given, on screen."""
    w = open_main_window(qtbot, bundle, settings)
    with qtbot.waitSignal(w.viewApplied, timeout=TIMEOUT):
        w.state.update(scope=scope, config=cfg)
    settle(qtbot, w)
    return w
