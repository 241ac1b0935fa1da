"""The application context handed to every window: the persistent settings, how errors
reach the analyst, and how another bundle is opened. Passing it in (instead of windows
and menus importing the app module) keeps app -> main window -> menus a one-way chain."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QMessageBox, QWidget

from explorer.gui.settings import AppSettings


@dataclass
class AppContext:
    settings: AppSettings
    #: False for --screenshot and other runs nobody watches: errors go to stderr, and
    #: nothing ever opens a dialog (offscreen, a modal dialog would wait forever)
    interactive: bool = True
    #: open_window(path or None for the demo, parent for errors) -> a window or None;
    #: set by explorer.gui.app
    open_window: Callable[[Path | None, QWidget | None], Any] | None = None
    errors: list[str] = field(default_factory=list)  # every error reported, in order

    def error(self, parent: QWidget | None, title: str, message: str) -> None:
        """Tell the analyst: a dialog when someone is watching, else one line on stderr."""
        self.errors.append(message)
        if self.interactive:
            QMessageBox.critical(parent, title, message)
        else:
            print(f"explorer: error: {message}", file=sys.stderr)

    def warning(self, parent: QWidget | None, title: str, message: str) -> None:
        if self.interactive:
            QMessageBox.warning(parent, title, message)
        else:
            print(f"explorer: warning: {message}", file=sys.stderr)
