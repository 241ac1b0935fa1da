"""The Qt binding itself: a release that mismanages reference counts aborts the app after
minutes of use ("deallocating None"), so it is caught here, not by users."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QLabel


def test_void_methods_keep_none_alive(qtbot) -> None:
    label = QLabel("x")
    qtbot.addWidget(label)
    before = sys.getrefcount(None)
    for _ in range(2000):
        label.update()
        label.setText("y")
    # tolerance for unrelated references made meanwhile; the broken binding loses 4000
    assert abs(sys.getrefcount(None) - before) < 100
